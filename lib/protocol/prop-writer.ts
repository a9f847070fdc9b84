/**
 * @module prop-writer
 * Encodes v5 properties for the hand-written server packets (CONNACK,
 * DISCONNECT), one Buffer per property — identifier and value together — so
 * an encoder that must stay within the client's Maximum Packet Size
 * ([MQTT-3.1.2-24]) drops a property whole or keeps it whole, never a
 * header without its value. Also the size arithmetic those encoders share.
 */
import { varintSize, writeVarint } from "./varint.ts";

/** The largest string or binary value a two-byte length can carry (v5 §1.5.4, §1.5.6). */
const MAX_FIELD = 65_535;

/** Encode one property as an indivisible part. */
export const prop = {
  byte(id: number, v: number): Buffer {
    return Buffer.from([id, v]);
  },
  u16(id: number, v: number): Buffer {
    const b = Buffer.allocUnsafe(3);
    b[0] = id;
    b.writeUInt16BE(v, 1);
    return b;
  },
  u32(id: number, v: number): Buffer {
    const b = Buffer.allocUnsafe(5);
    b[0] = id;
    b.writeUInt32BE(v, 1);
    return b;
  },
  /** Binary Data; null when longer than a two-byte length allows. */
  bin(id: number, v: Uint8Array): Buffer | null {
    if (v.length > MAX_FIELD) return null;
    const b = Buffer.allocUnsafe(3 + v.length);
    b[0] = id;
    b.writeUInt16BE(v.length, 1);
    b.set(v, 3);
    return b;
  },
  /** UTF-8 Encoded String; null when its encoding is longer than a two-byte length allows. */
  str(id: number, v: string): Buffer | null {
    return prop.bin(id, Buffer.from(v, "utf8"));
  },
};

/** Whole packet size for a variable header of `fixed` bytes, then a property section of `plen` bytes. */
export function packetSize(fixed: number, plen: number): number {
  const rl = fixed + varintSize(plen) + plen;
  return 1 + varintSize(rl) + rl;
}

/**
 * From `parts` in order of importance, the ones that fit one after another
 * in a packet of at most `maxSize` bytes whose variable header has `fixed`
 * bytes before the properties. A part that does not fit is skipped whole and
 * smaller ones after it may still go in.
 */
export function fitParts(parts: readonly Buffer[], fixed: number, maxSize: number): { parts: Buffer[]; len: number } {
  const kept: Buffer[] = [];
  let len = 0;
  for (const part of parts) {
    if (packetSize(fixed, len + part.length) <= maxSize) {
      kept.push(part);
      len += part.length;
    }
  }
  return { parts: kept, len };
}

/**
 * Write the packet: first byte `b0`, Remaining Length, the `fixed` variable
 * header bytes, Property Length `plen`, the parts. Returns the end position.
 */
export function writePacket(b: Buffer, p: number, b0: number, fixed: readonly number[], parts: readonly Buffer[], plen: number): number {
  b[p++] = b0;
  p = writeVarint(b, p, fixed.length + varintSize(plen) + plen);
  for (const x of fixed) b[p++] = x;
  p = writeVarint(b, p, plen);
  for (const part of parts) {
    b.set(part, p);
    p += part.length;
  }
  return p;
}
