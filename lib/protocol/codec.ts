/**
 * @module codec
 * The only module that imports mqtt-packet. It decodes the rare packet types
 * (SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH) from complete frames cut by
 * `Connection`, with one shared parser per protocol version, and encodes
 * what is not hand-written (SUBACK, UNSUBACK, AUTH, ...). CONNECT, PUBLISH,
 * the acks, CONNACK and the server's DISCONNECT have hand-written codecs
 * tested against mqtt-packet. See DESIGN.md section 7 for the sharp edges
 * handled here.
 *
 * Nothing mqtt-packet does with a hostile frame escapes as anything but
 * Malformed: v5 property sections are walked strictly before it sees them
 * (properties.ts), and whatever its parser throws or emits becomes
 * MqttError 0x81 with the shared parser replaced.
 */
import mqtt from "mqtt-packet";
import { checkRawProps } from "./properties.ts";
import { MqttError, RC } from "./reason-codes.ts";
import { readVarint, varintEnd } from "./varint.ts";

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
    let left: number;
    try {
      left = this.parser.parse(frame);
    } catch (err) {
      // Whatever a client's bytes make the parser throw (a TypeError or
      // RangeError from a read it did not bound) is a Malformed Packet
      // (v5 §2.2.2.2, [MQTT-4.13.1-1]), not an internal error that closes with
      // 0x83 and an ERROR log. The parser's state is unknown: replace it.
      this.reset();
      throw new MqttError(RC.MALFORMED_PACKET, `unparsable packet: ${err instanceof Error ? err.message : String(err)}`);
    }
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

/**
 * Decode one whole non-hot frame with the shared parser for `version`.
 * Throws MqttError 0x81 for anything the parser refuses or throws on. No
 * property checks: use `decodeChecked` for frames from a client.
 */
export function decodeFrame(frame: Buffer, version: 3 | 4 | 5): Packet {
  return decoders[version].decode(frame);
}

/**
 * Decode a client's SUBSCRIBE (8), UNSUBSCRIBE (10), DISCONNECT (14) or AUTH
 * (15) the way the broker must: on v5 the raw property section is walked
 * first (`checkRawProps`: bounds, Table 2-4 placement, repeats, UTF-8), then
 * the frame goes to the shared mqtt-packet parser. `buf[frame..end)` is the
 * whole packet, `buf[body..end)` its variable header and payload. Throws
 * only MqttError (0x81 / 0x82).
 */
export function decodeChecked(type: number, buf: Buffer, frame: number, body: number, end: number, version: 3 | 4 | 5): Packet {
  // Fixed-header flags first, so a wrong flag is Malformed whatever the properties hold
  // (3.1.1 [MQTT-2.2.2-1], [MQTT-2.2.2-2]; 5 [MQTT-2.1.3-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1], [MQTT-3.14.1-1], [MQTT-3.15.1-1]).
  if ((buf[frame]! & 0x0f) !== (type === 8 || type === 10 ? 2 : 0)) throw new MqttError(RC.MALFORMED_PACKET, "invalid fixed-header flags");
  if (version === 5) {
    switch (type) {
      case 8:
      case 10: // after the Packet Identifier (v5 §3.8.2, §3.10.2)
        checkRawProps(buf, body + 2, end, 1 << type);
        break;
      case 14:
      case 15: // after the Reason Code, and absent when the Remaining Length is under 2 (v5 §3.14.2.2.1, §3.15.2.2.1)
        if (end - body >= 2) checkRawProps(buf, body + 1, end, 1 << type);
        break;
    }
  }
  return decoders[version].decode(buf.subarray(frame, end));
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
  if (readVarint(frame, 1, frame.length) < 0) return -1;
  const p = varintEnd;
  if (p + 2 > frame.length) return -1;
  const nameLen = (frame[p]! << 8) | frame[p + 1]!;
  const at = p + 2 + nameLen;
  return at < frame.length ? frame[at]! : -1;
}
