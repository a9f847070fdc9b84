/**
 * @module properties
 * v5 property checks for packets decoded by mqtt-packet, which accepts any
 * known property in any packet and turns a repeated one into an array
 * (CHECKLIST 14.9, 14.10): placement (Malformed, v5 §2.2.2.2), repeats
 * (Protocol Error), UTF-8 of every string ([MQTT-1.5.4-1], [MQTT-1.5.7-1]).
 * Also encodes will properties into pass-through bytes for forwarding.
 */
import { MqttError, RC } from "./reason-codes.ts";
import { checkDecodedString } from "./validate.ts";

type Props = Record<string, unknown> | undefined;

export const CONNECT_PROPS = new Set([
  "sessionExpiryInterval",
  "receiveMaximum",
  "maximumPacketSize",
  "topicAliasMaximum",
  "requestResponseInformation",
  "requestProblemInformation",
  "userProperties",
  "authenticationMethod",
  "authenticationData",
]);
export const WILL_PROPS = new Set([
  "willDelayInterval",
  "payloadFormatIndicator",
  "messageExpiryInterval",
  "contentType",
  "responseTopic",
  "correlationData",
  "userProperties",
]);
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

/**
 * Encode the forwarded will properties (PFI, Content Type, Response Topic,
 * Correlation Data, User Properties) as pass-through bytes. mqtt-packet's
 * object form loses the order of interleaved repeated user-property names
 * (CHECKLIST 14.14); within one name the order is kept.
 */
export function encodePassThrough(props: Props): Buffer | null {
  if (!props) return null;
  const parts: Buffer[] = [];
  const str = (id: number, s: string) => {
    const b = Buffer.from(s, "utf8");
    const h = Buffer.allocUnsafe(3);
    h[0] = id;
    h.writeUInt16BE(b.length, 1);
    parts.push(h, b);
  };
  if (props.payloadFormatIndicator !== undefined) parts.push(Buffer.from([0x01, props.payloadFormatIndicator ? 1 : 0]));
  if (typeof props.contentType === "string") str(0x03, props.contentType);
  if (typeof props.responseTopic === "string") str(0x08, props.responseTopic);
  if (Buffer.isBuffer(props.correlationData)) {
    const h = Buffer.allocUnsafe(3);
    h[0] = 0x09;
    h.writeUInt16BE(props.correlationData.length, 1);
    parts.push(h, props.correlationData);
  }
  const up = props.userProperties as Record<string, string | string[]> | undefined;
  if (up) {
    for (const [name, value] of Object.entries(up)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        const n = Buffer.from(name, "utf8");
        const val = Buffer.from(v, "utf8");
        const h = Buffer.allocUnsafe(3);
        h[0] = 0x26;
        h.writeUInt16BE(n.length, 1);
        const h2 = Buffer.allocUnsafe(2);
        h2.writeUInt16BE(val.length, 0);
        parts.push(h, n, h2, val);
      }
    }
  }
  return parts.length ? Buffer.concat(parts) : null;
}
