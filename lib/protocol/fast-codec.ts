/**
 * @module fast-codec
 * Hand-written decoders and encoders for the hot packets: PUBLISH, PUBACK,
 * PUBREC, PUBREL, PUBCOMP, PINGREQ/PINGRESP. mqtt-packet stays the reference:
 * tests/unit/fast-codec.test.ts checks these byte for byte against it.
 *
 * Decoders read one complete frame (`buf[start..end)` is the variable header
 * and payload) and throw `MqttError` on malformed input. Encoders write into
 * a connection's `Output` without allocating.
 */
import type { Message, QoS } from "../message.ts";
import type { Output } from "./output.ts";
import {
  CONTENT_TYPE,
  CORRELATION_DATA,
  MESSAGE_EXPIRY_INTERVAL,
  PAYLOAD_FORMAT_INDICATOR,
  REASON_STRING,
  RESPONSE_TOPIC,
  SUBSCRIPTION_IDENTIFIER,
  TOPIC_ALIAS,
  USER_PROPERTY,
} from "./property-table.ts";
import { MqttError, RC } from "./reason-codes.ts";
import { decodeUtf8 } from "./validate.ts";
import { readVarint, varintEnd, varintSize, writeVarint } from "./varint.ts";

export { varintSize, writeVarint } from "./varint.ts";

export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;

function malformed(msg: string): never {
  throw new MqttError(RC.MALFORMED_PACKET, msg);
}

function protocolError(msg: string): never {
  throw new MqttError(RC.PROTOCOL_ERROR, msg);
}

/**
 * The last topic decoded on one connection. Publishers usually repeat their
 * topic, so when the bytes are the same the string (with its cached hash, for
 * the route cache) and an owned copy of the bytes (for encoding) are reused
 * instead of decoding and validating again.
 */
export interface TopicCache {
  lastTopicBytes: Buffer | null;
  lastTopic: string;
}

/** Fields of an inbound PUBLISH; one shared instance, valid until the next decode. */
export interface PublishFields {
  topic: string;
  /** Owned UTF-8 bytes of `topic` (null for an empty topic). */
  topicBytes: Buffer | null;
  /** The frame and the payload's place in it (copy it to keep it). */
  buf: Buffer;
  payloadStart: number;
  end: number;
  /** A view of the payload (into the frame). */
  readonly payload: Buffer;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  packetId: number;
  /** v5 pass-through properties (a view into the frame), or null. */
  props: Buffer | null;
  /** Message Expiry Interval in seconds, or -1 when absent. */
  expiry: number;
  /** Inbound Topic Alias, or 0 when absent. */
  alias: number;
  /** Payload Format Indicator (0 when absent). */
  pfi: number;
}

const pub: PublishFields = {
  topic: "",
  topicBytes: null,
  buf: Buffer.alloc(0),
  payloadStart: 0,
  end: 0,
  get payload(): Buffer {
    return this.buf.subarray(this.payloadStart, this.end);
  },
  qos: 0,
  retain: false,
  dup: false,
  packetId: 0,
  props: null,
  expiry: -1,
  alias: 0,
  pfi: 0,
};

/**
 * Decode a PUBLISH frame. `flags` is the low nibble of the fixed header.
 * Checks: QoS 3 ([MQTT-3.3.1-4]), DUP on QoS 0 ([MQTT-3.3.1-2], treated as
 * malformed), packet id 0 (3.1.1 [MQTT-2.3.1-1], 5 [MQTT-2.2.1-3]), UTF-8 of the
 * topic ([MQTT-3.3.2-1]), v5 property ids, types, duplicates and placement
 * (a client may not send a Subscription Identifier, [MQTT-3.3.4-6]).
 */
const defaultCache: TopicCache = { lastTopicBytes: null, lastTopic: "" };

export function decodePublish(buf: Buffer, start: number, end: number, flags: number, v5: boolean, cache: TopicCache = defaultCache): PublishFields {
  const qos = (flags >> 1) & 3;
  if (qos === 3) malformed("PUBLISH with QoS 3"); // [MQTT-3.3.1-4]
  const dup = (flags & 8) !== 0;
  if (dup && qos === 0) malformed("PUBLISH QoS 0 with DUP set"); // [MQTT-3.3.1-2]
  let p = start;
  if (p + 2 > end) malformed("PUBLISH too short for topic length");
  const tlen = (buf[p]! << 8) | buf[p + 1]!;
  p += 2;
  if (p + tlen > end) malformed("PUBLISH topic runs past the packet");
  if (tlen === 0) {
    pub.topic = "";
    pub.topicBytes = null;
  } else {
    const c = cache.lastTopicBytes;
    if (c === null || c.length !== tlen || !sameBytes(c, buf, p)) {
      cache.lastTopic = decodeUtf8(buf, p, p + tlen);
      const b = Buffer.allocUnsafe(tlen);
      buf.copy(b, 0, p, p + tlen);
      cache.lastTopicBytes = b;
    }
    pub.topic = cache.lastTopic;
    pub.topicBytes = cache.lastTopicBytes;
  }
  p += tlen;
  pub.packetId = 0;
  if (qos > 0) {
    if (p + 2 > end) malformed("PUBLISH too short for packet identifier");
    pub.packetId = (buf[p]! << 8) | buf[p + 1]!;
    p += 2;
    if (pub.packetId === 0) protocolError("PUBLISH with packet identifier 0");
  }
  pub.props = null;
  pub.expiry = -1;
  pub.alias = 0;
  pub.pfi = 0;
  if (v5) p = decodePublishProps(buf, p, end);
  pub.qos = qos as QoS;
  pub.retain = (flags & 1) !== 0;
  pub.dup = dup;
  pub.buf = buf;
  pub.payloadStart = p;
  pub.end = end;
  return pub;
}

function sameBytes(a: Buffer, buf: Buffer, p: number): boolean {
  const n = a.length;
  if (n > 32) return a.compare(buf, p, p + n) === 0;
  for (let i = 0; i < n; i++) if (a[i] !== buf[p + i]) return false;
  return true;
}

function readString(buf: Buffer, p: number, end: number): number {
  if (p + 2 > end) malformed("property string runs past the packet");
  const n = (buf[p]! << 8) | buf[p + 1]!;
  if (p + 2 + n > end) malformed("property string runs past the packet");
  decodeUtf8(buf, p + 2, p + 2 + n);
  return p + 2 + n;
}

function decodePublishProps(buf: Buffer, p: number, end: number): number {
  const len = readVarint(buf, p, end);
  if (len < 0) malformed("bad property length");
  p = varintEnd;
  const pend = p + len;
  if (pend > end) malformed("properties run past the packet");
  const pstart = p;
  let seen = 0; // bit set of single-valued properties already seen
  let cut = false; // true when alias or expiry must be removed from the pass-through bytes
  let keep: number[] | null = null; // [start, end) pairs of pass-through entries when cut
  while (p < pend) {
    const id = buf[p]!;
    const s = p++;
    let bit = 0;
    let pass = true;
    switch (id) {
      case PAYLOAD_FORMAT_INDICATOR: {
        if (p + 1 > pend) malformed("property runs past its section");
        const v = buf[p++]!;
        if (v > 1) malformed("Payload Format Indicator must be 0 or 1");
        pub.pfi = v;
        bit = 1;
        break;
      }
      case MESSAGE_EXPIRY_INTERVAL:
        if (p + 4 > pend) malformed("property runs past its section");
        pub.expiry = buf.readUInt32BE(p);
        p += 4;
        bit = 2;
        pass = false;
        break;
      case CONTENT_TYPE:
        p = readString(buf, p, pend);
        bit = 4;
        break;
      case RESPONSE_TOPIC: {
        if (p + 2 > pend) malformed("property runs past its section");
        const n = (buf[p]! << 8) | buf[p + 1]!;
        if (p + 2 + n > pend) malformed("property runs past its section");
        const t = decodeUtf8(buf, p + 2, p + 2 + n);
        // A Response Topic is a topic name: no wildcards [MQTT-3.3.2-14]
        if (t.length === 0 || t.includes("+") || t.includes("#")) protocolError("invalid Response Topic");
        p += 2 + n;
        bit = 8;
        break;
      }
      case CORRELATION_DATA: {
        if (p + 2 > pend) malformed("property runs past its section");
        const n = (buf[p]! << 8) | buf[p + 1]!;
        if (p + 2 + n > pend) malformed("property runs past its section");
        p += 2 + n;
        bit = 16;
        break;
      }
      case TOPIC_ALIAS:
        if (p + 2 > pend) malformed("property runs past its section");
        pub.alias = (buf[p]! << 8) | buf[p + 1]!;
        if (pub.alias === 0) throw new MqttError(RC.TOPIC_ALIAS_INVALID, "Topic Alias 0"); // [MQTT-3.3.2-8]
        p += 2;
        bit = 32;
        pass = false;
        break;
      case USER_PROPERTY: // [MQTT-1.5.7-1]: both halves are UTF-8 strings
        p = readString(buf, p, pend);
        p = readString(buf, p, pend);
        break;
      case SUBSCRIPTION_IDENTIFIER:
        protocolError("a client PUBLISH must not carry a Subscription Identifier"); // [MQTT-3.3.4-6]
      default:
        malformed(`property 0x${id.toString(16)} is not allowed in PUBLISH`);
    }
    if (bit !== 0) {
      if (seen & bit) protocolError(`property 0x${id.toString(16)} appears twice`);
      seen |= bit;
    }
    if (!pass) {
      if (!cut) {
        cut = true;
        keep = s > pstart ? [pstart, s] : [];
      }
    } else if (cut) {
      keep!.push(s, p);
    }
  }
  if (!cut) {
    pub.props = len > 0 ? buf.subarray(pstart, pend) : null;
  } else if (keep!.length > 0) {
    let total = 0;
    for (let i = 0; i < keep!.length; i += 2) total += keep![i + 1]! - keep![i]!;
    const out = Buffer.allocUnsafe(total);
    let o = 0;
    for (let i = 0; i < keep!.length; i += 2) o += buf.copy(out, o, keep![i]!, keep![i + 1]!);
    pub.props = out;
  }
  return pend;
}

/** Result of decoding an ack; shared, valid until the next decode. */
export const ack = { packetId: 0, reason: 0 };

const PUBACK_REC_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]);
const PUBREL_COMP_CODES = new Set([0x00, 0x92]);

/**
 * Decode PUBACK / PUBREC / PUBREL / PUBCOMP. Fixed-header flags must be 0
 * (PUBREL: 0010, [MQTT-3.6.1-1]); 3.1.1 remaining length is exactly 2; v5
 * reason codes must come from the packet's table ([MQTT-3.4.2-1] etc.).
 */
export function decodeAck(type: number, buf: Buffer, start: number, end: number, flags: number, v5: boolean): typeof ack {
  if (flags !== (type === PUBREL ? 2 : 0)) malformed("invalid fixed-header flags"); // [MQTT-2.2.2-1]
  const len = end - start;
  if (len < 2 || (!v5 && len !== 2)) malformed("invalid acknowledgement length");
  ack.packetId = (buf[start]! << 8) | buf[start + 1]!;
  if (ack.packetId === 0) protocolError("packet identifier 0");
  ack.reason = 0;
  if (len > 2) {
    ack.reason = buf[start + 2]!;
    const codes = type === PUBACK || type === PUBREC ? PUBACK_REC_CODES : PUBREL_COMP_CODES;
    if (!codes.has(ack.reason)) malformed(`invalid reason code 0x${ack.reason.toString(16)}`);
    if (len > 3) checkAckProps(buf, start + 3, end);
  }
  return ack;
}

/** Acks may carry only Reason String and User Properties. */
function checkAckProps(buf: Buffer, p: number, end: number): void {
  const len = readVarint(buf, p, end);
  if (len < 0) malformed("bad property length");
  p = varintEnd;
  if (p + len !== end) malformed("property length does not match the packet");
  let reasonSeen = false;
  while (p < end) {
    const id = buf[p++]!;
    if (id === REASON_STRING) {
      if (reasonSeen) protocolError("Reason String appears twice");
      reasonSeen = true;
      p = readString(buf, p, end);
    } else if (id === USER_PROPERTY) {
      p = readString(buf, p, end);
      p = readString(buf, p, end);
    } else {
      malformed(`property 0x${id.toString(16)} is not allowed in an acknowledgement`);
    }
  }
}

/** Write PUBACK / PUBREC / PUBREL / PUBCOMP. v5 omits the reason code when it is 0x00. */
export function writeAck(out: Output, type: number, packetId: number, reason: number, v5: boolean): void {
  const withCode = v5 && reason !== 0;
  const pos = out.reserve(5);
  const b = out.buf;
  b[pos] = (type << 4) | (type === PUBREL ? 2 : 0);
  b[pos + 1] = withCode ? 3 : 2;
  b[pos + 2] = packetId >> 8;
  b[pos + 3] = packetId & 0xff;
  if (withCode) b[pos + 4] = reason;
  out.len = pos + (withCode ? 5 : 4);
}

export function writePingResp(out: Output): void {
  const pos = out.reserve(2);
  out.buf[pos] = 0xd0;
  out.buf[pos + 1] = 0;
  out.len = pos + 2;
}

/** How one PUBLISH of a message is sent to one client (the per-delivery fields). */
export interface PublishHeader {
  v5: boolean;
  qos: QoS;
  /** 0 for QoS 0. */
  packetId: number;
  dup: boolean;
  retain: boolean;
  /** Subscription Identifiers of the matching subscriptions (v5), or null. */
  subIds: readonly number[] | null;
  /** Outbound Topic Alias (v5), 0 = none. */
  alias: number;
  /** False when an alias already bound stands for the topic (empty topic sent). */
  sendTopic: boolean;
  /** The client's Maximum Packet Size. */
  maxSize: number;
  /** Topic bytes to send instead of the message's (a bridge's remote topic), or null. */
  topic: Buffer | null;
  /** For the remaining Message Expiry Interval. */
  now: number;
}

/**
 * Encode one PUBLISH of `msg` into `out`. Returns false, writing nothing,
 * when the packet would exceed `h.maxSize` (the client's v5 Maximum Packet
 * Size: [MQTT-3.1.2-24], the caller treats the message as delivered,
 * [MQTT-3.1.2-25]). v5 properties: Message Expiry is rewritten to the time
 * left ([MQTT-3.3.2-6]); Subscription Identifiers of the matching
 * subscriptions ([MQTT-3.3.4-3]); Topic Alias when `h.alias` > 0; then the
 * pass-through bytes. Callers reuse one header object (no allocation per
 * delivery).
 */
export function writePublish(out: Output, msg: Message, h: PublishHeader): boolean {
  const { v5, qos, packetId, dup, retain, subIds, alias, sendTopic, maxSize, now } = h;
  const topic = sendTopic ? (h.topic ?? msg.bytesOfTopic()) : null;
  const tlen = topic === null ? 0 : topic.length;
  let rl = 2 + tlen + (qos > 0 ? 2 : 0) + msg.payload.length;
  let plen = 0;
  let expiry = 0;
  if (v5) {
    if (msg.expiresAt !== 0) {
      expiry = Math.max(1, Math.ceil((msg.expiresAt - now) / 1000));
      plen += 5;
    }
    if (subIds !== null) for (let i = 0; i < subIds.length; i++) plen += 1 + varintSize(subIds[i]!);
    if (alias > 0) plen += 3;
    if (msg.props !== null) plen += msg.props.length;
    rl += varintSize(plen) + plen;
  }
  const total = 1 + varintSize(rl) + rl;
  if (total > maxSize) return false;
  let p = out.reserve(total);
  const b = out.buf;
  b[p++] = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
  p = writeVarint(b, p, rl);
  b[p++] = tlen >> 8;
  b[p++] = tlen & 0xff;
  if (topic !== null) {
    if (tlen < 48) for (let i = 0; i < tlen; i++) b[p + i] = topic[i]!;
    else b.set(topic, p);
    p += tlen;
  }
  if (qos > 0) {
    b[p++] = packetId >> 8;
    b[p++] = packetId & 0xff;
  }
  if (v5) {
    p = writeVarint(b, p, plen);
    if (expiry !== 0) {
      b[p] = MESSAGE_EXPIRY_INTERVAL;
      b.writeUInt32BE(expiry, p + 1);
      p += 5;
    }
    if (subIds !== null) {
      for (let i = 0; i < subIds.length; i++) {
        b[p++] = SUBSCRIPTION_IDENTIFIER;
        p = writeVarint(b, p, subIds[i]!);
      }
    }
    if (alias > 0) {
      b[p] = TOPIC_ALIAS;
      b[p + 1] = alias >> 8;
      b[p + 2] = alias & 0xff;
      p += 3;
    }
    if (msg.props !== null) {
      b.set(msg.props, p);
      p += msg.props.length;
    }
  }
  const payload = msg.payload;
  if (payload.length < 48) for (let i = 0; i < payload.length; i++) b[p + i] = payload[i]!;
  else b.set(payload, p);
  out.len = p + payload.length;
  return true;
}
