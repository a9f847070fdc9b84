/**
 * @module properties
 * The strict v5 property walker for the packets mqtt-packet decodes
 * (SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH). It runs on the raw frame
 * *before* mqtt-packet sees it, because mqtt-packet reads property values
 * past their section (and past the packet), accepts any known property in
 * any packet, keeps only the last of a repeated one after a falsy first
 * value, and turns broken strings into null or U+FFFD (CHECKLIST 14.9-14.11).
 * Every rule comes from the one table in property-table.ts.
 */
import { placeName, propertySpec, PT, USER_PROPERTY } from "./property-table.ts";
import { MqttError, RC } from "./reason-codes.ts";
import { decodeUtf8 } from "./validate.ts";
import { readVarint, varintEnd } from "./varint.ts";

const malformed = (msg: string): never => {
  throw new MqttError(RC.MALFORMED_PACKET, msg);
};

const hex = (id: number) => `0x${id.toString(16).padStart(2, "0")}`;

/**
 * Walk the raw property section that starts at `buf[p]` (its Property Length
 * first) and must end by `end` (the end of the frame). Returns the offset
 * just after the section. `where` is the place bit from `IN` (e.g.
 * `IN.SUBSCRIBE`). Nothing is read at or beyond `end`.
 *
 * Throws MqttError 0x81 Malformed for: a Property Length that is not a valid
 * Variable Byte Integer (v5 §1.5.5) or that runs past the packet (v5
 * §2.2.2.1); an identifier MQTT 5 does not define or that `where` may not
 * carry, or a value that runs past its section (v5 §2.2.2.2); a string that
 * is not well-formed UTF-8 or holds U+0000 ([MQTT-1.5.4-1], [MQTT-1.5.4-2];
 * both halves of a User Property, [MQTT-1.5.7-1]).
 * Throws 0x82 Protocol Error (or the table's code for a zero value) for: a
 * single-valued property that appears twice (User Property may repeat), a
 * 0/1 byte with another value, a Subscription Identifier of 0 (v5 §3.8.2.1.2).
 */
export function checkRawProps(buf: Buffer, p: number, end: number, where: number): number {
  const len = readVarint(buf, p, end);
  if (len < 0) malformed(`${placeName(where)} Property Length is not a valid variable byte integer`);
  p = varintEnd;
  const send = p + len;
  if (send > end) malformed(`${placeName(where)} properties run past the packet`);
  let seenLo = 0; // identifiers 0..31 already seen
  let seenHi = 0; // identifiers 32..63
  while (p < send) {
    const id = buf[p++]!;
    const spec = propertySpec(id);
    if (spec === undefined) malformed(`unknown property ${hex(id)} in ${placeName(where)}`);
    if ((spec!.in & where) === 0) malformed(`property ${hex(id)} is not allowed in ${placeName(where)}`);
    if (id !== USER_PROPERTY) {
      const bit = 1 << (id & 31);
      const seen = id < 32 ? seenLo : seenHi;
      if (seen & bit) throw new MqttError(RC.PROTOCOL_ERROR, `property ${hex(id)} appears more than once in ${placeName(where)}`);
      if (id < 32) seenLo |= bit;
      else seenHi |= bit;
    }
    let zero = false;
    switch (spec!.type) {
      case PT.Byte:
        if (p + 1 > send) malformed(`property ${hex(id)} runs past its section`);
        if (spec!.zeroOrOne && buf[p]! > 1) throw new MqttError(RC.PROTOCOL_ERROR, `property ${hex(id)} must be 0 or 1`);
        zero = buf[p] === 0;
        p += 1;
        break;
      case PT.U16:
        if (p + 2 > send) malformed(`property ${hex(id)} runs past its section`);
        zero = buf[p] === 0 && buf[p + 1] === 0;
        p += 2;
        break;
      case PT.U32:
        if (p + 4 > send) malformed(`property ${hex(id)} runs past its section`);
        zero = buf.readUInt32BE(p) === 0;
        p += 4;
        break;
      case PT.Varint: {
        const v = readVarint(buf, p, send);
        if (v < 0) malformed(`property ${hex(id)} is not a valid variable byte integer`);
        zero = v === 0;
        p = varintEnd;
        break;
      }
      case PT.Utf8:
        p = utf8(buf, p, send, id);
        break;
      case PT.Binary:
        p = binary(buf, p, send, id);
        break;
      case PT.Pair:
        p = utf8(buf, utf8(buf, p, send, id), send, id); // [MQTT-1.5.7-1]
        break;
    }
    if (zero && spec!.zeroCode !== 0) throw new MqttError(spec!.zeroCode, `property ${hex(id)} must not be 0`);
  }
  return send;
}

/** Check the UTF-8 string at `buf[p]` (length first) lies within `end` and is well-formed; returns the offset after it. */
function utf8(buf: Buffer, p: number, end: number, id: number): number {
  const after = binary(buf, p, end, id);
  decodeUtf8(buf, p + 2, after); // [MQTT-1.5.4-1], [MQTT-1.5.4-2]
  return after;
}

/** Check the binary field at `buf[p]` (length first) lies within `end`; returns the offset after it. */
function binary(buf: Buffer, p: number, end: number, id: number): number {
  if (p + 2 > end) malformed(`property ${hex(id)} runs past its section`);
  const after = p + 2 + ((buf[p]! << 8) | buf[p + 1]!);
  if (after > end) malformed(`property ${hex(id)} runs past its section`);
  return after;
}
