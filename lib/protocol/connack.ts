/**
 * @module connack
 * Hand-written encoder for the success CONNACK, which every connection gets
 * (mqtt-packet's generate() costs more than the rest of a CONNECT). The v5
 * properties that are the same for every client (our limits and
 * capabilities) are encoded once; per-client ones are appended.
 * tests/unit/connack.test.ts checks the result with mqtt-packet's parser.
 */
import { varintSize, writeVarint } from "./fast-codec.ts";
import type { Output } from "./output.ts";

/** Per-client v5 CONNACK properties. */
export interface ConnackExtras {
  assignedClientIdentifier?: string;
  sessionExpiryInterval?: number;
  serverKeepAlive?: number;
  responseInformation?: string;
  authenticationMethod?: string;
  authenticationData?: Buffer;
}

/** Capabilities told to every v5 client. */
export interface ConnackLimits {
  receiveMaximum: number;
  maximumPacketSize: number;
  topicAliasMaximum: number;
}

/** Encodes v5 property lists into a small scratch array of byte chunks. */
class PropWriter {
  parts: Buffer[] = [];
  len = 0;
  byte(id: number, v: number): void {
    this.push(Buffer.from([id, v]));
  }
  u16(id: number, v: number): void {
    const b = Buffer.allocUnsafe(3);
    b[0] = id;
    b.writeUInt16BE(v, 1);
    this.push(b);
  }
  u32(id: number, v: number): void {
    const b = Buffer.allocUnsafe(5);
    b[0] = id;
    b.writeUInt32BE(v, 1);
    this.push(b);
  }
  bin(id: number, v: Buffer): void {
    const b = Buffer.allocUnsafe(3);
    b[0] = id;
    b.writeUInt16BE(v.length, 1);
    this.push(b);
    this.push(v);
  }
  str(id: number, v: string): void {
    this.bin(id, Buffer.from(v, "utf8"));
  }
  private push(b: Buffer): void {
    this.parts.push(b);
    this.len += b.length;
  }
}

export class ConnackEncoder {
  private readonly common: Buffer;
  /** The same properties one by one, most important first (see writeV5's fallback). */
  private readonly commonParts: Buffer[];

  constructor(limits: ConnackLimits) {
    const w = new PropWriter();
    w.u16(0x21, limits.receiveMaximum);
    w.u32(0x27, limits.maximumPacketSize);
    w.u16(0x22, limits.topicAliasMaximum);
    // The four "available" flags equal their defaults (absent = 1); sent to be explicit,
    // and the first to go when the client's Maximum Packet Size is tiny.
    w.byte(0x25, 1); // Retain Available
    w.byte(0x28, 1); // Wildcard Subscription Available
    w.byte(0x29, 1); // Subscription Identifiers Available
    w.byte(0x2a, 1); // Shared Subscription Available
    this.commonParts = w.parts;
    this.common = Buffer.concat(w.parts);
  }

  /** 3.1 / 3.1.1 CONNACK 0x00 ([MQTT-3.2.2-1..3]: bit 0 is Session Present). */
  writeV3(out: Output, sessionPresent: boolean): void {
    const p = out.reserve(4);
    const b = out.buf;
    b[p] = 0x20;
    b[p + 1] = 2;
    b[p + 2] = sessionPresent ? 1 : 0;
    b[p + 3] = 0;
    out.len = p + 4;
  }

  /**
   * v5 CONNACK 0x00 with our capabilities and the client's extras. The
   * whole packet stays within the client's Maximum Packet Size
   * ([MQTT-3.1.2-24]): if everything does not fit, the per-client extras go
   * first, then our capabilities in order of importance while they fit.
   */
  writeV5(out: Output, sessionPresent: boolean, x: ConnackExtras | null, maxSize = 268_435_460): void {
    let extra: PropWriter | null = null;
    if (x !== null) {
      extra = new PropWriter();
      if (x.sessionExpiryInterval !== undefined) extra.u32(0x11, x.sessionExpiryInterval);
      if (x.assignedClientIdentifier !== undefined) extra.str(0x12, x.assignedClientIdentifier);
      if (x.serverKeepAlive !== undefined) extra.u16(0x13, x.serverKeepAlive);
      if (x.responseInformation !== undefined) extra.str(0x1a, x.responseInformation);
      if (x.authenticationMethod !== undefined) extra.str(0x15, x.authenticationMethod);
      if (x.authenticationData !== undefined) extra.bin(0x16, x.authenticationData);
    }
    let parts: Buffer[] = extra === null ? [this.common] : [...extra.parts, this.common];
    let plen = this.common.length + (extra?.len ?? 0);
    if (size(plen) > maxSize) {
      parts = [];
      plen = 0;
      for (const part of [...(extra?.parts ?? []), ...this.commonParts]) {
        if (size(plen + part.length) <= maxSize) {
          parts.push(part);
          plen += part.length;
        }
      }
    }
    const rl = 2 + varintSize(plen) + plen;
    let p = out.reserve(1 + varintSize(rl) + rl);
    const b = out.buf;
    b[p++] = 0x20;
    p = writeVarint(b, p, rl);
    b[p++] = sessionPresent ? 1 : 0;
    b[p++] = 0; // reason: Success
    p = writeVarint(b, p, plen);
    for (const part of parts) {
      b.set(part, p);
      p += part.length;
    }
    out.len = p;
  }
}

/** Whole CONNACK size for a property section of `plen` bytes. */
const size = (plen: number) => {
  const rl = 2 + varintSize(plen) + plen;
  return 1 + varintSize(rl) + rl;
};
