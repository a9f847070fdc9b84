/**
 * Shared helpers for the MQTT 5 feature tests in tests/v5: v5 property
 * encoders and a PUBLISH builder for hand-made packets, a splitter that cuts
 * the raw byte stream a RawClient received into frames (for byte-exact checks
 * that the mqtt-packet parser would hide, e.g. the order of repeated User
 * Properties or an empty topic next to a Topic Alias), and packet helpers for
 * raw clients. The generic byte builders are in ../helpers/bytes.ts, the pool
 * of raw clients closed after each test in ../helpers/pool.ts.
 */
import { expect } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { waitFor } from "../helpers/broker.ts";
import { field, publishBytes as rawPublishBytes, u16, u32, varint } from "../helpers/bytes.ts";
import type { Packet, RawClient } from "../helpers/raw.ts";

// ---- v5 properties and PUBLISH ------------------------------------------------

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
  return rawPublishBytes({ ...o, flags: (o.dup ? 8 : 0) | (qos << 1) | (o.retain ? 1 : 0) });
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
