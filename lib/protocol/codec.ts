/**
 * @module codec
 * The only module that imports mqtt-packet. It decodes the rare packet types
 * (CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH) from complete frames cut
 * by `Connection`, with one shared parser per protocol version, and encodes
 * everything that is not on the hot path (CONNACK, SUBACK, UNSUBACK,
 * DISCONNECT, AUTH). See DESIGN.md section 7 for the sharp edges handled here.
 */
import mqtt from "mqtt-packet";
import { MqttError, RC } from "./reason-codes.ts";

export type Packet = mqtt.Packet;
export type ConnectPacket = mqtt.IConnectPacket;
export type SubscribePacket = mqtt.ISubscribePacket;
export type UnsubscribePacket = mqtt.IUnsubscribePacket;
export type DisconnectPacket = mqtt.IDisconnectPacket;
export type AuthPacket = mqtt.IAuthPacket;

// Saves ~8 MiB RSS with no measurable cost to generate() (DESIGN.md 7).
(mqtt.writeToStream as unknown as { cacheNumbers: boolean }).cacheNumbers = false;

/** The parser fields we read that its typings do not declare. */
interface ParserInternals {
  _pos: number;
  packet: { length: number };
}

/**
 * Decodes one complete frame at a time. A parser that emitted 'error' is
 * never fed again: it is replaced (DESIGN.md 7, "Handling 'error'").
 */
class FrameDecoder {
  private parser!: mqtt.Parser;
  private packet: Packet | null = null;
  private error: string | null = null;

  constructor(private readonly version: 3 | 4 | 5 | 0) {
    this.reset();
  }

  private reset(): void {
    const p = this.version === 0 ? mqtt.parser() : mqtt.parser({ protocolVersion: this.version });
    p.on("packet", (packet: Packet) => {
      // Leftover bytes inside a fixed-layout packet are malformed (CHECKLIST 14.13):
      // the parser silently skips them, so compare its read position with the length.
      const internals = p as unknown as ParserInternals;
      if (internals._pos !== (packet as { length?: number }).length) {
        this.error = "packet has bytes beyond its last field";
        return;
      }
      this.packet = packet;
    });
    p.on("error", (err: Error) => {
      this.error = err.message;
    });
    this.parser = p;
  }

  decode(frame: Buffer): Packet {
    this.packet = null;
    this.error = null;
    const left = this.parser.parse(frame);
    const packet = this.packet as Packet | null;
    if (this.error !== null || packet === null || left !== 0) {
      const message = this.error ?? "incomplete packet";
      this.reset();
      throw new MqttError(RC.MALFORMED_PACKET, message);
    }
    return packet;
  }
}

const connectDecoder = new FrameDecoder(0);
const decoders = { 3: new FrameDecoder(3), 4: new FrameDecoder(4), 5: new FrameDecoder(5) };

/** Decode a CONNECT frame (the version comes from the packet itself). */
export function decodeConnect(frame: Buffer): ConnectPacket {
  return connectDecoder.decode(frame) as ConnectPacket;
}

/** Decode a non-hot frame on a connection that speaks `version`. */
export function decodeFrame(frame: Buffer, version: 3 | 4 | 5): Packet {
  return decoders[version].decode(frame);
}

/** Encode a packet for a connection that speaks `version`. Throws on bad input. */
export function encode(packet: Packet, version: 3 | 4 | 5): Buffer {
  return mqtt.generate(packet, { protocolVersion: version });
}

/**
 * The protocol level byte of a raw CONNECT frame, or -1 when it cannot be
 * read. Used to answer an unsupported level with CONNACK 0x01 in 3.1.1 form
 * ([MQTT-3.1.2-2]) after mqtt-packet rejects it (CHECKLIST 14.1).
 */
export function rawConnectLevel(frame: Buffer): number {
  let p = 1;
  while (p < frame.length && p < 5 && (frame[p]! & 0x80) !== 0) p++;
  p++;
  if (p + 2 > frame.length) return -1;
  const nameLen = (frame[p]! << 8) | frame[p + 1]!;
  const at = p + 2 + nameLen;
  return at < frame.length ? frame[at]! : -1;
}

/** Will property ids that travel with the published will, in the order received. */
const WILL_PASS_THROUGH = new Set([0x01, 0x03, 0x08, 0x09, 0x26]);

/** Read a Variable Byte Integer at `buf[p]`; returns [value, offset after it]. */
function varintAt(buf: Buffer, p: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const b = buf[p++]!;
    v += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [v, p];
    mul *= 128;
  }
}

/**
 * Offsets, in a v5 CONNECT frame mqtt-packet already accepted, of the
 * CONNECT property section and of the will property section (-1: no will).
 */
export function connectPropOffsets(frame: Buffer): { props: number; will: number } {
  let p = 1;
  while (frame[p++]! & 0x80);
  p += 2 + ((frame[p]! << 8) | frame[p + 1]!); // protocol name
  p += 1; // level
  const flags = frame[p++]!;
  p += 2; // keep alive
  const props = p;
  const [len, after] = varintAt(frame, p);
  p = after + len;
  p += 2 + ((frame[p]! << 8) | frame[p + 1]!); // client id
  return { props, will: (flags & 0x04) !== 0 ? p : -1 };
}

/**
 * The pass-through will properties of a v5 CONNECT frame that mqtt-packet
 * already validated, copied from the raw bytes so repeated and interleaved
 * User Properties keep their order ([MQTT-3.1.3-10] 5; mqtt-packet's object
 * form loses it, CHECKLIST 14.14). Null when there are none.
 */
export function rawWillProps(frame: Buffer): Buffer | null {
  const at = connectPropOffsets(frame).will;
  if (at < 0) return null;
  let [len, p] = varintAt(frame, at);
  const end = p + len;
  const parts: Buffer[] = [];
  while (p < end) {
    const id = frame[p]!;
    const start = p++;
    switch (id) {
      case 0x01: // payload format indicator: byte
        p += 1;
        break;
      case 0x02: // message expiry: four bytes
      case 0x18: // will delay: four bytes
        p += 4;
        break;
      case 0x03:
      case 0x08:
      case 0x09: // string / binary
        p += 2 + ((frame[p]! << 8) | frame[p + 1]!);
        break;
      case 0x26: // string pair
        p += 2 + ((frame[p]! << 8) | frame[p + 1]!);
        p += 2 + ((frame[p]! << 8) | frame[p + 1]!);
        break;
      default:
        return null; // cannot happen after validation; fall back to nothing rather than guess
    }
    if (WILL_PASS_THROUGH.has(id)) parts.push(frame.subarray(start, p));
  }
  return parts.length ? Buffer.concat(parts) : null;
}
