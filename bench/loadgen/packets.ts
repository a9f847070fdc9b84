/**
 * @module loadgen/packets
 * The MQTT wire format as the load generator needs it, with no run state:
 * hand-encoded CONNECT and SUBSCRIBE bodies, the pre-encoded PUBLISH template
 * and its payload layout, the v5 property walker, and the framer that cuts the
 * broker's packets out of socket chunks.
 *
 * Payload layout (little endian): nonce u32, publisher id u32, sequence u64,
 * send time u64 (ns from Bun.nanoseconds()), then filler. Per message the
 * publisher patches only the sequence (offset 8) and the time (offset 16).
 */

/** Bytes of payload header; --size is raised to this. */
export const PAYLOAD_HDR = 24;
export const TWO32 = 4294967296;
const MAX_PACKET = 64 << 20;

const enc = new TextEncoder();

export function encVarint(d: Uint8Array, p: number, v: number): number {
  do {
    let b = v & 127;
    v = Math.floor(v / 128);
    if (v) b |= 128;
    d[p++] = b;
  } while (v);
  return p;
}
export function wr32(d: Uint8Array, p: number, v: number): void {
  d[p] = v & 255;
  d[p + 1] = (v >>> 8) & 255;
  d[p + 2] = (v >>> 16) & 255;
  d[p + 3] = v >>> 24;
}
export function rd32(d: Uint8Array, p: number): number {
  return (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16) | (d[p + 3]! << 24)) >>> 0;
}
function u16(v: number): number[] {
  return [(v >> 8) & 255, v & 255];
}
function str(s: string): number[] {
  const b = enc.encode(s);
  return [...u16(b.length), ...b];
}

// ---------------------------------------------------------------- encoding
/**
 * CONNECT body. `keepSession` asks for a session that outlives the connection:
 * 3.1.1 by Clean Session 0; v5 by Clean Start 1 plus a Session Expiry, so that
 * a leftover session from an earlier run never carries over.
 */
export function connectBody(
  ver: number,
  keepalive: number,
  keepSession: boolean,
  sessionExpiry: number,
  cid: string,
): number[] {
  const flags = ver === 5 || !keepSession ? 0x02 : 0x00;
  const body = [...str("MQTT"), ver, flags, ...u16(keepalive)];
  if (ver === 5) {
    if (keepSession && sessionExpiry > 0) {
      const e = sessionExpiry >>> 0;
      body.push(5, 0x11, (e >>> 24) & 255, (e >>> 16) & 255, (e >>> 8) & 255, e & 255);
    } else body.push(0);
  }
  body.push(...str(cid));
  return body;
}

/** SUBSCRIBE body for one filter, packet id 1. */
export function subscribeBody(ver: number, topic: string, qos: number): number[] {
  const body = [...u16(1)];
  if (ver === 5) body.push(0);
  body.push(...str(topic), qos);
  return body;
}

/** v5 DISCONNECT body with Session Expiry 0: ends a session whose CONNECT set a non-zero expiry. */
export const DISCONNECT_END_SESSION = [0x00, 0x05, 0x11, 0, 0, 0, 0];

export interface PubTemplate {
  tmpl: Uint8Array;
  /** Offset of the packet id (QoS > 0 only, else 0). */
  offPid: number;
  /** Offset of the payload. */
  offPay: number;
}

/** One complete PUBLISH with the nonce and publisher id filled in and sequence/time zeroed. */
export function publishTemplate(
  topic: string,
  qos: number,
  ver: number,
  size: number,
  nonce: number,
  pubId: number,
): PubTemplate {
  const tb = enc.encode(topic);
  const rl = 2 + tb.length + (qos ? 2 : 0) + (ver === 5 ? 1 : 0) + size;
  const hdr = new Uint8Array(5);
  hdr[0] = 0x30 | (qos << 1);
  const hl = encVarint(hdr, 1, rl);
  const t = new Uint8Array(hl + rl);
  t.set(hdr.subarray(0, hl));
  let p = hl;
  t[p++] = tb.length >> 8;
  t[p++] = tb.length & 255;
  t.set(tb, p);
  p += tb.length;
  let offPid = 0;
  if (qos) {
    offPid = p;
    p += 2;
  }
  if (ver === 5) t[p++] = 0;
  const offPay = p;
  for (let i = 0; i < size; i++) t[p + i] = 97 + (i % 26);
  wr32(t, p, nonce);
  wr32(t, p + 4, pubId);
  t.fill(0, p + 8, p + 24);
  return { tmpl: t, offPid, offPay };
}

// ------------------------------------------------------------ v5 properties
export interface Props {
  recvMax: number;
  serverKa: number;
}

/**
 * Walk a v5 property block at b[off] (varint length first), filling `pr` with
 * the two properties the load generator obeys. Returns the offset after the
 * block, or -1 if it is malformed or has an unknown property.
 */
export function skipProps(b: Uint8Array, off: number, end: number, pr: Props | null): number {
  let pl = 0, mul = 1, i = off;
  for (;;) {
    if (i >= end || i - off >= 4) return -1;
    const x = b[i++]!;
    pl += (x & 127) * mul;
    mul *= 128;
    if (!(x & 128)) break;
  }
  const pend = i + pl;
  if (pend > end) return -1;
  if (!pr) return pend;
  while (i < pend) {
    const id = b[i++]!;
    switch (id) {
      case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
        i += 1;
        break;
      case 0x13: case 0x21: case 0x22: case 0x23:
        if (id === 0x21) pr.recvMax = (b[i]! << 8) | b[i + 1]!;
        if (id === 0x13) pr.serverKa = (b[i]! << 8) | b[i + 1]!;
        i += 2;
        break;
      case 0x02: case 0x11: case 0x18: case 0x27:
        i += 4;
        break;
      case 0x0b: {
        while (i < pend && b[i]! & 128) i++;
        i++;
        break;
      }
      case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1a: case 0x1c: case 0x1f:
        i += 2 + ((b[i]! << 8) | b[i + 1]!);
        break;
      case 0x26:
        i += 2 + ((b[i]! << 8) | b[i + 1]!);
        i += 2 + ((b[i]! << 8) | b[i + 1]!);
        break;
      default:
        return -1;
    }
    if (i > pend) return -1;
  }
  return pend;
}

// ------------------------------------------------------------------ framing
/**
 * Handles one packet: first byte h, body b[o, o + rl). Returns FRAME_ERR if it
 * is unexpected or malformed, FRAME_STOP once the connection has closed (the
 * rest of the chunk is dropped), else FRAME_OK.
 */
export type OnFrame<C> = (c: C, h: number, b: Uint8Array, o: number, rl: number) => number;
export const FRAME_OK = 0, FRAME_ERR = -1, FRAME_STOP = 1;
const STOPPED = -2;

/** Per-socket carry-over: bytes of a frame split across chunks. */
export interface Carry {
  rb: Uint8Array;
  rw: number;
}

/**
 * Handle every complete frame in b[pos, end). Returns the offset of the first
 * byte not consumed (start of a partial frame), -1 on a protocol error, or
 * STOPPED when a handler said the connection closed.
 */
function parseFrames<C>(c: C, b: Uint8Array, pos: number, end: number, on: OnFrame<C>): number {
  while (end - pos >= 2) {
    let i = pos + 1, rl = 0, mul = 1, done = false;
    while (i < end && i < pos + 5) {
      const x = b[i++]!;
      rl += (x & 127) * mul;
      mul *= 128;
      if (!(x & 128)) {
        done = true;
        break;
      }
    }
    if (!done) {
      if (i >= pos + 5) return -1;
      break;
    }
    if (rl > MAX_PACKET) return -1;
    if (end - i < rl) break;
    const r = on(c, b[pos]!, b, i, rl);
    if (r < 0) return -1;
    if (r > 0) return STOPPED;
    pos = i + rl;
  }
  return pos;
}

/** Total length of the frame starting at b[0] (n bytes known): -1 header incomplete, -2 malformed. */
function frameLen(b: Uint8Array, n: number): number {
  let rl = 0, mul = 1;
  for (let i = 1; i < 5; i++) {
    if (i >= n) return -1;
    const x = b[i]!;
    rl += (x & 127) * mul;
    mul *= 128;
    if (!(x & 128)) return rl > MAX_PACKET ? -2 : i + 1 + rl;
  }
  return -2;
}

function rbReserve(c: Carry, need: number): void {
  if (c.rb.length >= need) return;
  let nc = c.rb.length || 1024;
  while (nc < need) nc *= 2;
  const nb = new Uint8Array(nc);
  nb.set(c.rb.subarray(0, c.rw));
  c.rb = nb;
}

/**
 * Feed one socket chunk through `on`. Frames are parsed in place; only a frame
 * split across chunks is copied (into c.rb). Returns false on a protocol error.
 */
export function readFrames<C extends Carry>(c: C, chunk: Uint8Array, on: OnFrame<C>): boolean {
  const len = chunk.length;
  let pos = 0;
  if (c.rw > 0) {
    // finish the frame split across chunks, copying only its bytes
    for (;;) {
      const need = frameLen(c.rb, c.rw);
      if (need === -2) return false;
      if (need === -1) {
        if (pos >= len) return true;
        rbReserve(c, c.rw + 1);
        c.rb[c.rw++] = chunk[pos++]!;
        continue;
      }
      rbReserve(c, need);
      const take = Math.min(need - c.rw, len - pos);
      c.rb.set(chunk.subarray(pos, pos + take), c.rw);
      c.rw += take;
      pos += take;
      if (c.rw < need) return true;
      const r = parseFrames(c, c.rb, 0, need, on);
      c.rw = 0;
      if (r === -1) return false;
      if (r === STOPPED) return true;
      break;
    }
  }
  const r = parseFrames(c, chunk, pos, len, on);
  if (r === -1) return false;
  if (r === STOPPED) return true;
  if (r < len) {
    rbReserve(c, len - r);
    c.rb.set(chunk.subarray(r, len), 0);
    c.rw = len - r;
  }
  return true;
}
