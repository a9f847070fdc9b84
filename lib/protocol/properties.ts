/**
 * @module properties
 * v5 property checks for packets decoded by mqtt-packet, which accepts any
 * known property in any packet and turns a repeated one into an array
 * (CHECKLIST 14.9, 14.10): placement (Malformed, v5 §2.2.2.2), repeats
 * (Protocol Error), UTF-8 of every string ([MQTT-1.5.4-1], [MQTT-1.5.7-1]).
 */
import { MqttError, RC } from "./reason-codes.ts";
import { checkDecodedString } from "./validate.ts";

type Props = Record<string, unknown> | undefined;

export const SUBSCRIBE_PROPS = new Set(["subscriptionIdentifier", "userProperties"]);
export const UNSUBSCRIBE_PROPS = new Set(["userProperties"]);
export const DISCONNECT_PROPS = new Set(["sessionExpiryInterval", "reasonString", "userProperties", "serverReference"]);
export const AUTH_PROPS = new Set(["authenticationMethod", "authenticationData", "reasonString", "userProperties"]);

/** Throw Malformed for a misplaced property, Protocol Error for a repeated one. */
export function checkProps(props: Props, allowed: Set<string>, where: string): void {
  if (!props) return;
  for (const key of Object.keys(props)) {
    if (!allowed.has(key)) throw new MqttError(RC.MALFORMED_PACKET, `property ${key} is not allowed in ${where}`);
    const v = props[key];
    if (key === "userProperties") {
      for (const [name, value] of Object.entries(v as Record<string, string | string[]>)) {
        checkDecodedString(name, "user property name");
        for (const s of Array.isArray(value) ? value : [value]) checkDecodedString(s, "user property value");
      }
      continue;
    }
    if (Array.isArray(v)) throw new MqttError(RC.PROTOCOL_ERROR, `property ${key} appears more than once in ${where}`);
    if (typeof v === "string") checkDecodedString(v, key);
  }
}

const enum T {
  Byte,
  Int16,
  Int32,
  Varint,
  String,
  Binary,
  Pair,
}

/** Wire type of every v5 property identifier. */
const TYPES: Record<number, T> = {
  0x01: T.Byte, 0x02: T.Int32, 0x03: T.String, 0x08: T.String, 0x09: T.Binary, 0x0b: T.Varint,
  0x11: T.Int32, 0x12: T.String, 0x13: T.Int16, 0x15: T.String, 0x16: T.Binary, 0x17: T.Byte,
  0x18: T.Int32, 0x19: T.Byte, 0x1a: T.String, 0x1c: T.String, 0x1f: T.String, 0x21: T.Int16,
  0x22: T.Int16, 0x23: T.Int16, 0x24: T.Byte, 0x25: T.Byte, 0x26: T.Pair, 0x27: T.Int32,
  0x28: T.Byte, 0x29: T.Byte, 0x2a: T.Byte,
};

/** Byte properties whose only values are 0 and 1 (Request Problem/Response Information, PFI, ...). */
const BOOLEAN_BYTES = new Set([0x01, 0x17, 0x19, 0x25, 0x28, 0x29, 0x2a]);

/**
 * Walk a raw property section at `buf[p]` (its length varint first) and throw
 * Protocol Error for what mqtt-packet's decoded object cannot show: a repeated
 * single-valued property even when its first value was 0 (the parser then
 * keeps only the last), a 0/1 byte property with another value, and a
 * Subscription Identifier of 0 (CHECKLIST 14.9, 14.11). Returns the offset
 * after the section. Placement and UTF-8 are checked on the decoded packet.
 */
export function checkRawProps(buf: Buffer, p: number, where: string): number {
  let len = 0;
  let mul = 1;
  for (;;) {
    const b = buf[p++]!;
    len += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) break;
    mul *= 128;
  }
  const end = p + len;
  const seen = new Set<number>();
  while (p < end) {
    const id = buf[p++]!;
    if (id !== 0x26) {
      if (seen.has(id)) throw new MqttError(RC.PROTOCOL_ERROR, `property 0x${id.toString(16)} appears more than once in ${where}`);
      seen.add(id);
    }
    switch (TYPES[id]) {
      case T.Byte:
        if (BOOLEAN_BYTES.has(id) && buf[p]! > 1) throw new MqttError(RC.PROTOCOL_ERROR, `property 0x${id.toString(16)} must be 0 or 1`);
        p += 1;
        break;
      case T.Int16:
        p += 2;
        break;
      case T.Int32:
        p += 4;
        break;
      case T.Varint: {
        let v = 0;
        let m = 1;
        for (;;) {
          const b = buf[p++]!;
          v += (b & 0x7f) * m;
          if ((b & 0x80) === 0) break;
          m *= 128;
        }
        if (id === 0x0b && v === 0) throw new MqttError(RC.PROTOCOL_ERROR, "Subscription Identifier 0");
        break;
      }
      case T.String:
      case T.Binary:
        p += 2 + ((buf[p]! << 8) | buf[p + 1]!);
        break;
      case T.Pair:
        p += 2 + ((buf[p]! << 8) | buf[p + 1]!);
        p += 2 + ((buf[p]! << 8) | buf[p + 1]!);
        break;
      default:
        throw new MqttError(RC.MALFORMED_PACKET, `unknown property 0x${id.toString(16)}`);
    }
  }
  return end;
}
