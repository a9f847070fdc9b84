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
