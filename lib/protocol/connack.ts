/**
 * @module connack
 * Hand-written CONNACK encoders. The success CONNACK, which every
 * connection gets (mqtt-packet's generate() costs more than the rest of a
 * CONNECT): the v5 properties that are the same for every client (our limits
 * and capabilities) are encoded once; per-client ones are appended. And the
 * refusing CONNACK. Both stay within the client's Maximum Packet Size
 * ([MQTT-3.1.2-24]) by dropping whole optional properties.
 * tests/unit/connack.test.ts checks every result with mqtt-packet's parser.
 */
import type { Output } from "./output.ts";
import { fitParts, packetSize, prop, writePacket } from "./prop-writer.ts";
import {
  ASSIGNED_CLIENT_IDENTIFIER,
  AUTHENTICATION_DATA,
  AUTHENTICATION_METHOD,
  MAXIMUM_PACKET_SIZE,
  REASON_STRING,
  RECEIVE_MAXIMUM,
  RESPONSE_INFORMATION,
  RETAIN_AVAILABLE,
  SERVER_KEEP_ALIVE,
  SERVER_REFERENCE,
  SESSION_EXPIRY_INTERVAL,
  SHARED_SUBSCRIPTION_AVAILABLE,
  SUBSCRIPTION_IDENTIFIERS_AVAILABLE,
  TOPIC_ALIAS_MAXIMUM,
  WILDCARD_SUBSCRIPTION_AVAILABLE,
} from "./property-table.ts";
import { v3ConnackCode } from "./reason-codes.ts";

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

/** No client limit: the largest packet MQTT can frame. */
const NO_LIMIT = 268_435_460;
/** Session Present flags + Reason Code. */
const FIXED = 2;

const push = (parts: Buffer[], part: Buffer | null): void => {
  if (part !== null) parts.push(part);
};

export class ConnackEncoder {
  /** Our capabilities, encoded once. */
  private readonly common: Buffer;
  private readonly receiveMaximum: Buffer;
  private readonly maximumPacketSize: Buffer;
  private readonly topicAliasMaximum: Buffer;
  /** The four "available" flags. */
  private readonly flags: Buffer[];

  constructor(limits: ConnackLimits) {
    this.receiveMaximum = prop.u16(RECEIVE_MAXIMUM, limits.receiveMaximum);
    this.maximumPacketSize = prop.u32(MAXIMUM_PACKET_SIZE, limits.maximumPacketSize);
    this.topicAliasMaximum = prop.u16(TOPIC_ALIAS_MAXIMUM, limits.topicAliasMaximum);
    // The four "available" flags equal their defaults (absent = 1); sent to be explicit,
    // and the first to go when the client's Maximum Packet Size is tiny.
    this.flags = [
      prop.byte(RETAIN_AVAILABLE, 1),
      prop.byte(WILDCARD_SUBSCRIPTION_AVAILABLE, 1),
      prop.byte(SUBSCRIPTION_IDENTIFIERS_AVAILABLE, 1),
      prop.byte(SHARED_SUBSCRIPTION_AVAILABLE, 1),
    ];
    this.common = Buffer.concat([this.receiveMaximum, this.maximumPacketSize, this.topicAliasMaximum, ...this.flags]);
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
   * v5 CONNACK 0x00 with our capabilities and the client's extras, within
   * the client's Maximum Packet Size `maxSize` ([MQTT-3.1.2-24]). When
   * everything does not fit, properties are kept whole in this order of
   * importance while they fit: Assigned Client Identifier ([MQTT-3.2.2-16]),
   * Authentication Method, Authentication Data (only with its method),
   * Receive Maximum, Maximum Packet Size, Server Keep Alive, Session Expiry
   * Interval, Topic Alias Maximum, Response Information, the four
   * "available" flags (their defaults anyway).
   *
   * Returns false, writing nothing, when not even a CONNACK without
   * properties (5 bytes) fits in `maxSize`.
   */
  writeV5(out: Output, sessionPresent: boolean, x: ConnackExtras | null, maxSize = NO_LIMIT): boolean {
    const fixed = [sessionPresent ? 1 : 0, 0]; // [MQTT-3.2.2-1] flags, reason: Success
    if (x === null && packetSize(FIXED, this.common.length) <= maxSize) {
      write(out, fixed, [this.common], this.common.length);
      return true;
    }
    if (packetSize(FIXED, 0) > maxSize) return false;
    const aci = x?.assignedClientIdentifier !== undefined ? prop.str(ASSIGNED_CLIENT_IDENTIFIER, x.assignedClientIdentifier) : null;
    const method = x?.authenticationMethod !== undefined ? prop.str(AUTHENTICATION_METHOD, x.authenticationMethod) : null;
    // Authentication Data never goes without its method (v5 §3.2.2.3.18).
    const data = method !== null && x?.authenticationData !== undefined ? prop.bin(AUTHENTICATION_DATA, x.authenticationData) : null;
    const ska = x?.serverKeepAlive !== undefined ? prop.u16(SERVER_KEEP_ALIVE, x.serverKeepAlive) : null;
    const sei = x?.sessionExpiryInterval !== undefined ? prop.u32(SESSION_EXPIRY_INTERVAL, x.sessionExpiryInterval) : null;
    const ri = x?.responseInformation !== undefined ? prop.str(RESPONSE_INFORMATION, x.responseInformation) : null;

    const all: Buffer[] = [];
    for (const part of [sei, aci, ska, ri, method, data]) push(all, part);
    all.push(this.common);
    let plen = 0;
    for (const part of all) plen += part.length;
    if (packetSize(FIXED, plen) <= maxSize) {
      write(out, fixed, all, plen);
      return true;
    }

    const order = [aci, method, data, this.receiveMaximum, this.maximumPacketSize, ska, sei, this.topicAliasMaximum, ri, ...this.flags];
    const kept: Buffer[] = [];
    plen = 0;
    for (const part of order) {
      if (part === null) continue;
      if (part === data && !kept.includes(method!)) continue;
      if (packetSize(FIXED, plen + part.length) <= maxSize) {
        kept.push(part);
        plen += part.length;
      }
    }
    write(out, fixed, kept, plen);
    return true;
  }
}

function write(out: Output, fixed: readonly number[], parts: readonly Buffer[], plen: number): void {
  const p = out.reserve(packetSize(FIXED, plen));
  out.len = writePacket(out.buf, p, 0x20, fixed, parts, plen);
}

/**
 * A CONNACK that refuses a CONNECT with reason `code`, for a client that
 * accepts packets of at most `maxSize` bytes; null when there is none to send.
 *
 * - 3.1 / 3.1.1 (`version` 3 or 4): `20 02 00 rc` with the return code
 *   `v3ConnackCode(code)` gives; null when no 3.1.1 code fits (the
 *   connection is then closed without a CONNACK, 3.1.1 [MQTT-3.2.2-6]) or when
 *   `maxSize` < 4. Session Present is 0 (3.1.1 [MQTT-3.2.2-4]). Reason
 *   String and Server Reference are ignored.
 * - 5: Session Present 0 ([MQTT-3.2.2-6] 5), Reason Code `code`, then
 *   Server Reference (if given) and Reason String (if given), each kept only
 *   when it fits whole within `maxSize` ([MQTT-3.2.2-19] for the Reason
 *   String), Server Reference first; null when not even the 5-byte CONNACK
 *   without properties fits.
 */
export function encodeConnackRefusal(version: 3 | 4 | 5, code: number, maxSize: number, reasonString?: string, serverReference?: string): Buffer | null {
  if (version !== 5) {
    const rc = v3ConnackCode(code);
    if (rc === null || maxSize < 4) return null;
    return Buffer.from([0x20, 0x02, 0x00, rc]);
  }
  if (packetSize(FIXED, 0) > maxSize) return null;
  const parts: Buffer[] = [];
  if (serverReference !== undefined) push(parts, prop.str(SERVER_REFERENCE, serverReference));
  if (reasonString !== undefined) push(parts, prop.str(REASON_STRING, reasonString));
  const fit = fitParts(parts, FIXED, maxSize);
  const b = Buffer.allocUnsafe(packetSize(FIXED, fit.len));
  writePacket(b, 0, 0x20, [0, code], fit.parts, fit.len);
  return b;
}
