/**
 * Shared helpers for the MQTT 5 feature tests in tests/v5: byte builders for
 * hand-made packets, a splitter that cuts the raw byte stream a RawClient
 * received into frames (for byte-exact checks that the mqtt-packet parser
 * would hide, e.g. the order of repeated User Properties or an empty topic
 * next to a Topic Alias), and a pool of raw clients closed after each test.
 */
import { expect } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { waitFor } from "../helpers/broker.ts";
import { type Packet, RawClient } from "../helpers/raw.ts";

// ---- byte builders -----------------------------------------------------------

export const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
export const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
/** A length-prefixed UTF-8 string / binary field. */
export const field = (s: string | Buffer | number[]) => {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s);
  return Buffer.concat([u16(b.length), b]);
};
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
/** A whole packet: first byte, Remaining Length, body. */
export function frame(b0: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([b0]), varint(body.length), body]);
}

/** v5 property encoders (identifier byte + value). */
export const P = {
  pfi: (v: number) => Buffer.from([0x01, v]),
  expiry: (s: number) => Buffer.concat([Buffer.from([0x02]), u32(s)]),
  contentType: (s: string) => Buffer.concat([Buffer.from([0x03]), field(s)]),
  responseTopic: (s: string) => Buffer.concat([Buffer.from([0x08]), field(s)]),
  correlation: (b: Buffer) => Buffer.concat([Buffer.from([0x09]), field(b)]),
  subId: (n: number) => Buffer.concat([Buffer.from([0x0b]), varint(n)]),
  alias: (n: number) => Buffer.concat([Buffer.from([0x23]), u16(n)]),
  user: (k: string, v: string) => Buffer.concat([Buffer.from([0x26]), field(k), field(v)]),
};

/** A PUBLISH built by hand; `props` are raw v5 property bytes (omitted for 3.1.1). */
export function publishBytes(o: {
  v5: boolean;
  topic: string;
  qos?: 0 | 1 | 2;
  retain?: boolean;
  dup?: boolean;
  packetId?: number;
  props?: Buffer;
  payload?: Buffer | string;
}): Buffer {
  const qos = o.qos ?? 0;
  const parts: Buffer[] = [field(o.topic)];
  if (qos > 0) parts.push(u16(o.packetId ?? 1));
  if (o.v5) {
    const p = o.props ?? Buffer.alloc(0);
    parts.push(varint(p.length), p);
  }
  parts.push(Buffer.from(o.payload ?? "x"));
  return frame(0x30 | (o.dup ? 8 : 0) | (qos << 1) | (o.retain ? 1 : 0), ...parts);
}

// ---- reading raw frames ------------------------------------------------------

/** Cut a byte stream into whole MQTT frames (an incomplete tail is ignored). */
export function splitFrames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    let rl = 0;
    let mul = 1;
    let p = pos + 1;
    for (;;) {
      if (p >= buf.length) return out;
      const b = buf[p++]!;
      rl += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) break;
    }
    if (p + rl > buf.length) return out;
    out.push(buf.subarray(pos, p + rl));
    pos = p + rl;
  }
  return out;
}

/** Every frame the raw client has received so far, in order (CONNACK included). */
export function framesOf(c: RawClient): Buffer[] {
  return splitFrames(Buffer.concat(c.received));
}

/** Only the PUBLISH frames received so far. */
export function publishFramesOf(c: RawClient): Buffer[] {
  return framesOf(c).filter((f) => f[0]! >> 4 === 3);
}

export interface RawPublish {
  qos: number;
  dup: boolean;
  retain: boolean;
  /** Raw topic bytes (empty when an outbound Topic Alias stands in for it). */
  topic: Buffer;
  packetId: number;
  /** Raw property section without its length (v5), else null. */
  props: Buffer | null;
  payload: Buffer;
}

/** Decode a PUBLISH frame into its raw parts. */
export function parsePublish(f: Buffer, v5: boolean): RawPublish {
  const b0 = f[0]!;
  let p = 1;
  while (f[p++]! & 0x80);
  const tlen = f.readUInt16BE(p);
  p += 2;
  const topic = f.subarray(p, p + tlen);
  p += tlen;
  const qos = (b0 >> 1) & 3;
  let packetId = 0;
  if (qos > 0) {
    packetId = f.readUInt16BE(p);
    p += 2;
  }
  let props: Buffer | null = null;
  if (v5) {
    let len = 0;
    let mul = 1;
    for (;;) {
      const b = f[p++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) break;
    }
    props = f.subarray(p, p + len);
    p += len;
  }
  return { qos, dup: (b0 & 8) !== 0, retain: (b0 & 1) !== 0, topic, packetId, props, payload: f.subarray(p) };
}

/** Split a raw property section into its entries: identifier and the whole entry's bytes. */
export function propEntries(props: Buffer): { id: number; bytes: Buffer }[] {
  const sizes: Record<number, number | "str" | "pair" | "var"> = {
    0x01: 1, 0x02: 4, 0x03: "str", 0x08: "str", 0x09: "str", 0x0b: "var", 0x23: 2, 0x26: "pair",
  };
  const out: { id: number; bytes: Buffer }[] = [];
  let p = 0;
  while (p < props.length) {
    const s = p;
    const id = props[p++]!;
    const t = sizes[id];
    if (t === undefined) throw new Error(`unexpected PUBLISH property 0x${id.toString(16)}`);
    if (t === "str") p += 2 + props.readUInt16BE(p);
    else if (t === "pair") {
      p += 2 + props.readUInt16BE(p);
      p += 2 + props.readUInt16BE(p);
    } else if (t === "var") {
      while (props[p++]! & 0x80);
    } else p += t;
    out.push({ id, bytes: props.subarray(s, p) });
  }
  return out;
}

// ---- clients -------------------------------------------------------------------

let seq = 0;
/** A Client ID unique in this process. */
export const uid = (tag: string) => `${tag}-${++seq}-${process.pid}`;

/**
 * Raw clients opened by the current test, destroyed after it even when it
 * fails, so a failing test cannot leave connections behind for the next.
 */
export class Pool {
  private opened: { c: RawClient; id: string; rb: RunningBroker }[] = [];

  /** Connect (CONNACK 0x00 required) with a fresh Client ID unless opts.clientId is given. */
  async raw(rb: RunningBroker, version: 4 | 5, tag: string, opts: Record<string, unknown> = {}): Promise<RawClient & { id: string }> {
    const id = (opts.clientId as string | undefined) ?? uid(tag);
    const c = (await RawClient.connected(rb.port, version, { ...opts, clientId: id })) as RawClient & { id: string };
    c.id = id;
    this.opened.push({ c, id, rb });
    return c;
  }

  /** A connected socket without CONNECT (for handshakes the test checks itself). */
  async socket(rb: RunningBroker, version: 4 | 5, id = ""): Promise<RawClient> {
    const c = await RawClient.connect(rb.port, version);
    this.opened.push({ c, id, rb });
    return c;
  }

  track(c: RawClient, id: string, rb: RunningBroker): void {
    this.opened.push({ c, id, rb });
  }

  async cleanup(): Promise<void> {
    const list = this.opened.splice(0);
    for (const o of list) o.c.destroy();
    await waitFor(() => list.every((o) => o.id === "" || !o.rb.broker.sessions.get(o.id)?.conn), 3000, "test clients detached");
  }
}

/** SUBSCRIBE and return the SUBACK (skipping anything else that arrives first). */
export async function subscribe(
  c: RawClient,
  subscriptions: Record<string, unknown>[],
  properties?: Record<string, unknown>,
  messageId = 1,
): Promise<Packet> {
  c.send({ cmd: "subscribe", messageId, subscriptions, ...(properties ? { properties } : {}) });
  const ack = await c.nextOf("suback");
  expect(ack.messageId).toBe(messageId);
  return ack;
}

let pubId = 0;
/** PUBLISH through a raw client and, for QoS > 0, wait for its PUBACK / complete the QoS 2 flow. */
export async function publish(
  c: RawClient,
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1 | 2 = 1,
  extra: Record<string, unknown> = {},
): Promise<Packet | null> {
  const messageId = (pubId % 60000) + 1;
  pubId++;
  c.send({ cmd: "publish", topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos, retain: false, ...(qos > 0 ? { messageId } : {}), ...extra });
  if (qos === 0) return null;
  if (qos === 1) {
    const a = await c.nextOf("puback");
    expect(a.messageId).toBe(messageId);
    return a;
  }
  const rec = await c.nextOf("pubrec");
  expect(rec.messageId).toBe(messageId);
  c.send({ cmd: "pubrel", messageId });
  expect((await c.nextOf("pubcomp")).messageId).toBe(messageId);
  return rec;
}

/** Collect PUBLISH packets until one satisfies `last` (included); other packet types are skipped. */
export async function publishesUntil(c: RawClient, last: (p: Packet) => boolean, ms = 3000): Promise<Packet[]> {
  const out: Packet[] = [];
  for (;;) {
    const p = await c.nextOf("publish", ms);
    out.push(p);
    if (last(p)) return out;
  }
}

export const text = (p: Packet) => Buffer.from(p.payload as Buffer).toString();

/** v5: the next packet is DISCONNECT with `code`; then the socket closes and nothing else arrives. */
export async function expectDisconnect(c: RawClient, code: number, ms = 3000): Promise<Packet> {
  const d = await c.next(ms);
  expect(d.cmd).toBe("disconnect");
  expect(d.reasonCode).toBe(code);
  expect(await c.waitClose(3000)).toBe(true);
  expect(c.pending()).toEqual([]); // nothing after DISCONNECT [MQTT-3.14.4-1]
  return d;
}

/** Drop the socket without DISCONNECT and wait until the broker has detached the session. */
export async function drop(rb: RunningBroker, c: RawClient, clientId: string): Promise<void> {
  c.destroy();
  await waitFor(() => (rb.broker.sessions.get(clientId)?.conn ?? null) === null, 3000, `${clientId} detached`);
}
