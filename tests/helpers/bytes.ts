/**
 * Byte builders for hand-made MQTT packets: what no client library would
 * send (invalid UTF-8, broken lengths, repeated properties, ...), built field
 * by field. Independent of lib/ (the code under test).
 */

/** A two-byte big-endian integer. */
export const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

/** A four-byte big-endian integer. */
export const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A length-prefixed string / binary field from raw bytes (so invalid UTF-8 can be sent). */
export const field = (s: string | Buffer | number[]) => {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s);
  return Buffer.concat([u16(b.length), b]);
};

/** A Variable Byte Integer (Remaining Length, property lengths, Subscription Identifier). */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** A whole packet: first byte (type and flags), Remaining Length, body. */
export function frame(b0: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([b0]), varint(body.length), body]);
}

/** v5 property bytes, given as [id, ...value bytes]. */
export const prop = (id: number, ...value: (number | Buffer)[]) =>
  Buffer.concat([Buffer.from([id]), ...value.map((v) => (typeof v === "number" ? Buffer.from([v]) : v))]);

/** `u16` as a plain byte list, for spreading into `number[]` literals. */
export const u16List = (n: number): number[] => [...u16(n)];

/** `field` as a plain byte list, for spreading into `number[]` literals. */
export const fieldList = (s: string | number[]): number[] => [...field(s)];

export interface ConnectSpec {
  name?: string;
  level?: number;
  /** Connect Flags byte; default 0x02 (Clean Session / Clean Start). */
  flags?: number;
  keepalive?: number;
  /** Raw v5 property bytes (only written when level is 5 and this is set, else an empty property section). */
  props?: Buffer;
  /** Payload fields, already length-prefixed. */
  payload: Buffer[];
  /** Extra bytes after the last field. */
  trailing?: Buffer;
}

/** A CONNECT built by hand: protocol name and level, flags, keep alive, (v5) properties, payload fields. */
export function connectBytes(c: ConnectSpec): Buffer {
  const level = c.level ?? 4;
  const parts: Buffer[] = [field(c.name ?? (level === 3 ? "MQIsdp" : "MQTT")), Buffer.from([level, c.flags ?? 0x02]), u16(c.keepalive ?? 0)];
  if (level === 5) {
    const p = c.props ?? Buffer.alloc(0);
    parts.push(varint(p.length), p);
  }
  parts.push(...c.payload);
  if (c.trailing) parts.push(c.trailing);
  return frame(0x10, ...parts);
}

/**
 * A PUBLISH built by hand. `topic` may be raw bytes; `props` (v5) are raw
 * property bytes. `flags` is the low nibble of the fixed header (DUP, QoS,
 * RETAIN); a packet identifier is written when its QoS bits are not 0.
 */
export function publishBytes(o: { v5: boolean; topic: string | number[]; flags?: number; packetId?: number; props?: Buffer; payload?: Buffer | string }): Buffer {
  const flags = o.flags ?? 0;
  const qos = (flags >> 1) & 3;
  const parts: Buffer[] = [field(o.topic)];
  if (qos > 0) parts.push(u16(o.packetId ?? 1));
  if (o.v5) {
    const p = o.props ?? Buffer.alloc(0);
    parts.push(varint(p.length), p);
  }
  parts.push(Buffer.from(o.payload ?? "x"));
  return frame(0x30 | flags, ...parts);
}
