/**
 * @module codec
 * The only module that imports mqtt-packet. It decodes the rare packet types
 * (SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH) from complete frames cut by
 * `Connection`, with one shared parser per protocol version, and encodes
 * what is not hand-written (refusing CONNACK, SUBACK, UNSUBACK, DISCONNECT,
 * AUTH). CONNECT, PUBLISH, the acks and the success CONNACK have hand-written
 * codecs tested against mqtt-packet. See DESIGN.md section 7 for the sharp
 * edges handled here.
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

  constructor(private readonly version: 3 | 4 | 5) {
    this.reset();
  }

  private reset(): void {
    const p = mqtt.parser({ protocolVersion: this.version });
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

const decoders = { 3: new FrameDecoder(3), 4: new FrameDecoder(4), 5: new FrameDecoder(5) };

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
