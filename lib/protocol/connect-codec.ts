/**
 * @module connect-codec
 * Hand-written CONNECT decoder. Every connection starts with one, and
 * mqtt-packet's parser cost more than the rest of accepting a client (bl
 * slicing, debug() calls, an emitter). Decoding from the raw bytes also lets
 * it check what mqtt-packet cannot: strict UTF-8 of every string
 * ([MQTT-1.5.4-1]), a property repeated after a falsy first value, 0/1 byte
 * properties with other values, and it keeps the will's pass-through
 * properties in their original order ([MQTT-3.1.3-10]).
 *
 * The result has the shape of mqtt-packet's IConnectPacket;
 * tests/unit/connect-codec.test.ts compares the two decoders.
 */
import type { ConnectPacket } from "./codec.ts";
import { CONTENT_TYPE, CORRELATION_DATA, IN, PAYLOAD_FORMAT_INDICATOR, PROPERTIES, type PropSpec, propertySpec, PT, RESPONSE_TOPIC, USER_PROPERTY } from "./property-table.ts";
import { MqttError, RC } from "./reason-codes.ts";
import { decodeUtf8 } from "./validate.ts";
import { readVarint, VARINT_INCOMPLETE, VARINT_TOO_LONG, varintEnd } from "./varint.ts";

/** A decoded CONNECT plus the raw will pass-through properties. */
export type DecodedConnect = ConnectPacket & {
  /** v5 will properties forwarded with the will, as raw bytes in their order (null: none). */
  willPassThrough: Buffer | null;
};

const malformed = (msg: string): never => {
  throw new MqttError(RC.MALFORMED_PACKET, msg);
};
const protocolError = (msg: string): never => {
  throw new MqttError(RC.PROTOCOL_ERROR, msg);
};

// How a property value is read into the decoded object (from its wire type in property-table.ts).
const enum K {
  U32,
  U16,
  Bool,
  Str,
  Bin,
  Pair,
}

function kindOf(spec: PropSpec): K {
  switch (spec.type) {
    case PT.U32:
      return K.U32;
    case PT.U16:
      return K.U16;
    case PT.Byte:
      return K.Bool; // every Byte property of CONNECT and the will is 0/1 (v5 §3.1.2.11.6-7, §3.1.3.2.3)
    case PT.Utf8:
      return K.Str;
    case PT.Binary:
      return K.Bin;
    case PT.Pair:
      return K.Pair;
    default:
      throw new Error(`no CONNECT reader for property 0x${spec.id.toString(16)}`);
  }
}

/** Identifier → [mqtt-packet name, reader] for the properties allowed in `where` (v5 §3.1.2.11, §3.1.3.2). */
function allowedIn(where: number): Record<number, [string, K]> {
  const out: Record<number, [string, K]> = {};
  for (const p of PROPERTIES) if (p.in & where) out[p.id] = [p.name, kindOf(p)];
  return out;
}
const CONNECT_IDS = allowedIn(IN.CONNECT);
const WILL_IDS = allowedIn(IN.WILL);
/** Will properties that travel with the published will (Will Delay and Message Expiry are applied, not forwarded). */
const WILL_PASS_THROUGH = new Set([PAYLOAD_FORMAT_INDICATOR, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY]);

class Reader {
  constructor(
    readonly buf: Buffer,
    public p: number,
    readonly end: number,
  ) {}

  byte(what: string): number {
    if (this.p >= this.end) malformed(`CONNECT too short for ${what}`);
    return this.buf[this.p++]!;
  }
  u16(what: string): number {
    if (this.p + 2 > this.end) malformed(`CONNECT too short for ${what}`);
    const v = (this.buf[this.p]! << 8) | this.buf[this.p + 1]!;
    this.p += 2;
    return v;
  }
  u32(what: string): number {
    if (this.p + 4 > this.end) malformed(`CONNECT too short for ${what}`);
    const v = this.buf.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }
  bin(what: string): Buffer {
    const n = this.u16(what);
    if (this.p + n > this.end) malformed(`${what} runs past the packet`);
    const b = Buffer.from(this.buf.subarray(this.p, this.p + n));
    this.p += n;
    return b;
  }
  str(what: string): string {
    const n = this.u16(what);
    if (this.p + n > this.end) malformed(`${what} runs past the packet`);
    const s = decodeUtf8(this.buf, this.p, this.p + n);
    this.p += n;
    return s;
  }
  varint(what: string): number {
    const v = readVarint(this.buf, this.p, this.end);
    if (v === VARINT_INCOMPLETE) malformed(`CONNECT too short for ${what}`);
    if (v === VARINT_TOO_LONG) malformed(`${what}: variable byte integer longer than 4 bytes`); // v5 §1.5.5
    this.p = varintEnd;
    return v;
  }
}

/**
 * Read a property section. Returns the properties as an object (or
 * undefined when empty) and, when `passThrough` is given, collects the raw
 * bytes of those property ids in order.
 */
function readProps(r: Reader, ids: Record<number, [string, K]>, where: string, passThrough?: Buffer[]): Record<string, unknown> | undefined {
  const len = r.varint(`${where} property length`);
  const end = r.p + len;
  if (end > r.end) malformed(`${where} properties run past the packet`);
  const inner = new Reader(r.buf, r.p, end);
  let out: Record<string, unknown> | undefined;
  while (inner.p < end) {
    const start = inner.p;
    const id = inner.byte("property id");
    const spec = ids[id];
    // v5 §2.2.2.2: an identifier not valid in this place is Malformed.
    if (spec === undefined) malformed(propertySpec(id) ? `property 0x${id.toString(16)} is not allowed in ${where}` : `unknown property 0x${id.toString(16)}`);
    const [name, kind] = spec!;
    out ??= {};
    if (kind !== K.Pair && name in out) protocolError(`property ${name} appears more than once in ${where}`);
    switch (kind) {
      case K.U32:
        out[name] = inner.u32(name);
        break;
      case K.U16:
        out[name] = inner.u16(name);
        break;
      case K.Bool: {
        const v = inner.byte(name);
        if (v > 1) protocolError(`${name} must be 0 or 1`);
        out[name] = v === 1;
        break;
      }
      case K.Str:
        out[name] = inner.str(name);
        break;
      case K.Bin:
        out[name] = inner.bin(name);
        break;
      case K.Pair: {
        const k = inner.str("user property name");
        const v = inner.str("user property value"); // [MQTT-1.5.7-1]
        const up = (out.userProperties ??= Object.create(null)) as Record<string, string | string[]>;
        const prev = up[k];
        up[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
        break;
      }
    }
    if (passThrough !== undefined && WILL_PASS_THROUGH.has(id)) passThrough.push(r.buf.subarray(start, inner.p));
  }
  r.p = end;
  return out;
}

/**
 * Decode a CONNECT frame (`frame` is the whole packet, fixed header
 * included). Throws MqttError: Malformed (0x81) for layout errors, the
 * messages "Invalid protocolId" / "Invalid protocol version" for a name or
 * level this broker does not speak (the caller turns those into CONNACK
 * 0x84 / 0x01), Protocol Error (0x82) for repeated or out-of-range
 * properties.
 */
export function decodeConnect(frame: Buffer): DecodedConnect {
  if ((frame[0]! & 0x0f) !== 0) malformed("CONNECT fixed-header flags must be 0"); // [MQTT-2.2.2-1]
  if (readVarint(frame, 1, frame.length) < 0) malformed("bad Remaining Length");
  const r = new Reader(frame, varintEnd, frame.length);
  const nameLen = r.u16("protocol name");
  if (r.p + nameLen > r.end) malformed("Cannot parse protocolId");
  const protocolId = frame.latin1Slice(r.p, r.p + nameLen);
  r.p += nameLen;
  if (protocolId !== "MQTT" && protocolId !== "MQIsdp") malformed("Invalid protocolId");
  let level = r.byte("protocol level");
  let bridgeMode = false;
  if (level >= 0x80) {
    bridgeMode = true;
    level -= 0x80;
  }
  if (level !== 3 && level !== 4 && level !== 5) malformed("Invalid protocol version");
  const flags = r.byte("connect flags");
  if (flags & 0x01) malformed("Connect flag bit 0 must be 0"); // [MQTT-3.1.2-3]
  const hasWill = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 0x20) !== 0;
  if (!hasWill && (willQos !== 0 || willRetain)) malformed("Will QoS and Will Retain must be 0 without a will"); // [MQTT-3.1.2-11/13]
  const keepalive = r.u16("keep alive");
  const v5 = level === 5;
  const properties = v5 ? readProps(r, CONNECT_IDS, "CONNECT") : undefined;
  const clientId = r.str("client identifier"); // [MQTT-3.1.3-3/4]
  let will: DecodedConnect["will"];
  let willPassThrough: Buffer | null = null;
  if (hasWill) {
    let willProps: Record<string, unknown> | undefined;
    if (v5) {
      const parts: Buffer[] = [];
      willProps = readProps(r, WILL_IDS, "will properties", parts);
      if (parts.length) willPassThrough = Buffer.concat(parts);
    }
    const topic = r.str("will topic"); // [MQTT-3.1.3-10] 3.1.1
    const payload = r.bin("will payload");
    will = { topic, payload, qos: willQos as 0 | 1 | 2, retain: willRetain };
    if (willProps) (will as { properties?: unknown }).properties = willProps;
  }
  // User Name and Password are present exactly when flagged ([MQTT-3.1.2-18..21] 3.1.1, [MQTT-3.1.2-16..19] 5).
  const username = flags & 0x80 ? r.str("user name") : undefined;
  const password = flags & 0x40 ? r.bin("password") : undefined;
  if (r.p !== r.end) malformed("CONNECT has bytes beyond its last field");
  const packet = {
    cmd: "connect",
    protocolId,
    protocolVersion: level,
    clean: (flags & 0x02) !== 0,
    keepalive,
    clientId,
    willPassThrough,
  } as DecodedConnect;
  if (bridgeMode) (packet as { bridgeMode?: boolean }).bridgeMode = true;
  if (properties) packet.properties = properties as DecodedConnect["properties"];
  if (will) packet.will = will;
  if (username !== undefined) packet.username = username;
  if (password !== undefined) packet.password = password;
  return packet;
}
