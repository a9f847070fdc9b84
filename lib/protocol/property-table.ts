/**
 * @module property-table
 * The one table of MQTT 5 properties (v5 §2.2.2.2, Table 2-4): identifier,
 * wire type, mqtt-packet's name, the packets (and Will Properties) that may
 * carry it, and the value rules the spec states for it. The strict property
 * walker (properties.ts), the CONNECT decoder (connect-codec.ts) and the
 * hot-path codec (fast-codec.ts, which switches on the identifier constants
 * below) all read it, so placement and types cannot drift apart.
 */
import { RC } from "./reason-codes.ts";

// Identifiers (v5 Table 2-4). Plain constants so hot decoders can `switch` on them.
export const PAYLOAD_FORMAT_INDICATOR = 0x01;
export const MESSAGE_EXPIRY_INTERVAL = 0x02;
export const CONTENT_TYPE = 0x03;
export const RESPONSE_TOPIC = 0x08;
export const CORRELATION_DATA = 0x09;
export const SUBSCRIPTION_IDENTIFIER = 0x0b;
export const SESSION_EXPIRY_INTERVAL = 0x11;
export const ASSIGNED_CLIENT_IDENTIFIER = 0x12;
export const SERVER_KEEP_ALIVE = 0x13;
export const AUTHENTICATION_METHOD = 0x15;
export const AUTHENTICATION_DATA = 0x16;
export const REQUEST_PROBLEM_INFORMATION = 0x17;
export const WILL_DELAY_INTERVAL = 0x18;
export const REQUEST_RESPONSE_INFORMATION = 0x19;
export const RESPONSE_INFORMATION = 0x1a;
export const SERVER_REFERENCE = 0x1c;
export const REASON_STRING = 0x1f;
export const RECEIVE_MAXIMUM = 0x21;
export const TOPIC_ALIAS_MAXIMUM = 0x22;
export const TOPIC_ALIAS = 0x23;
export const MAXIMUM_QOS = 0x24;
export const RETAIN_AVAILABLE = 0x25;
export const USER_PROPERTY = 0x26;
export const MAXIMUM_PACKET_SIZE = 0x27;
export const WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28;
export const SUBSCRIPTION_IDENTIFIERS_AVAILABLE = 0x29;
export const SHARED_SUBSCRIPTION_AVAILABLE = 0x2a;

/** Wire data types (v5 §1.5). */
export const PT = { Byte: 0, U16: 1, U32: 2, Varint: 3, Utf8: 4, Binary: 5, Pair: 6 } as const;
export type PropType = (typeof PT)[keyof typeof PT];

/**
 * Where a property may appear: bit `1 << packetType` for a packet's own
 * section, `WILL` for the Will Properties of CONNECT (packet type 0 is
 * reserved, so bit 16 is free for it).
 */
export const IN = {
  CONNECT: 1 << 1,
  CONNACK: 1 << 2,
  PUBLISH: 1 << 3,
  PUBACK: 1 << 4,
  PUBREC: 1 << 5,
  PUBREL: 1 << 6,
  PUBCOMP: 1 << 7,
  SUBSCRIBE: 1 << 8,
  SUBACK: 1 << 9,
  UNSUBSCRIBE: 1 << 10,
  UNSUBACK: 1 << 11,
  DISCONNECT: 1 << 14,
  AUTH: 1 << 15,
  WILL: 1 << 16,
} as const;

const ACKS = IN.PUBACK | IN.PUBREC | IN.PUBREL | IN.PUBCOMP;
const MESSAGE = IN.PUBLISH | IN.WILL;

/** One row of Table 2-4. */
export interface PropSpec {
  readonly id: number;
  /** The key mqtt-packet uses for it (`userProperties` for User Property). */
  readonly name: string;
  readonly type: PropType;
  /** Bit set of `IN` places that may carry it. */
  readonly in: number;
  /** A Byte whose only values are 0 and 1; anything else is a Protocol Error. */
  readonly zeroOrOne: boolean;
  /** The reason code a value of 0 earns (0: zero is allowed). */
  readonly zeroCode: number;
}

const row = (id: number, name: string, type: PropType, where: number, zeroOrOne = false, zeroCode = 0): PropSpec => ({ id, name, type, in: where, zeroOrOne, zeroCode });

/** Every property MQTT 5 defines, in identifier order. */
export const PROPERTIES: readonly PropSpec[] = [
  row(PAYLOAD_FORMAT_INDICATOR, "payloadFormatIndicator", PT.Byte, MESSAGE, true),
  row(MESSAGE_EXPIRY_INTERVAL, "messageExpiryInterval", PT.U32, MESSAGE),
  row(CONTENT_TYPE, "contentType", PT.Utf8, MESSAGE),
  row(RESPONSE_TOPIC, "responseTopic", PT.Utf8, MESSAGE),
  row(CORRELATION_DATA, "correlationData", PT.Binary, MESSAGE),
  // In PUBLISH only from server to client [MQTT-3.3.4-6]; 0 is a Protocol Error (v5 §3.8.2.1.2).
  row(SUBSCRIPTION_IDENTIFIER, "subscriptionIdentifier", PT.Varint, IN.PUBLISH | IN.SUBSCRIBE, false, RC.PROTOCOL_ERROR),
  row(SESSION_EXPIRY_INTERVAL, "sessionExpiryInterval", PT.U32, IN.CONNECT | IN.CONNACK | IN.DISCONNECT),
  row(ASSIGNED_CLIENT_IDENTIFIER, "assignedClientIdentifier", PT.Utf8, IN.CONNACK),
  row(SERVER_KEEP_ALIVE, "serverKeepAlive", PT.U16, IN.CONNACK),
  row(AUTHENTICATION_METHOD, "authenticationMethod", PT.Utf8, IN.CONNECT | IN.CONNACK | IN.AUTH),
  row(AUTHENTICATION_DATA, "authenticationData", PT.Binary, IN.CONNECT | IN.CONNACK | IN.AUTH),
  row(REQUEST_PROBLEM_INFORMATION, "requestProblemInformation", PT.Byte, IN.CONNECT, true), // v5 §3.1.2.11.7
  row(WILL_DELAY_INTERVAL, "willDelayInterval", PT.U32, IN.WILL),
  row(REQUEST_RESPONSE_INFORMATION, "requestResponseInformation", PT.Byte, IN.CONNECT, true), // v5 §3.1.2.11.6
  row(RESPONSE_INFORMATION, "responseInformation", PT.Utf8, IN.CONNACK),
  row(SERVER_REFERENCE, "serverReference", PT.Utf8, IN.CONNACK | IN.DISCONNECT),
  row(REASON_STRING, "reasonString", PT.Utf8, IN.CONNACK | ACKS | IN.SUBACK | IN.UNSUBACK | IN.DISCONNECT | IN.AUTH),
  row(RECEIVE_MAXIMUM, "receiveMaximum", PT.U16, IN.CONNECT | IN.CONNACK, false, RC.PROTOCOL_ERROR), // v5 §3.1.2.11.3
  row(TOPIC_ALIAS_MAXIMUM, "topicAliasMaximum", PT.U16, IN.CONNECT | IN.CONNACK),
  row(TOPIC_ALIAS, "topicAlias", PT.U16, IN.PUBLISH, false, RC.TOPIC_ALIAS_INVALID), // [MQTT-3.3.2-8]
  row(MAXIMUM_QOS, "maximumQoS", PT.Byte, IN.CONNACK, true),
  row(RETAIN_AVAILABLE, "retainAvailable", PT.Byte, IN.CONNACK, true),
  row(USER_PROPERTY, "userProperties", PT.Pair, ~0),
  row(MAXIMUM_PACKET_SIZE, "maximumPacketSize", PT.U32, IN.CONNECT | IN.CONNACK, false, RC.PROTOCOL_ERROR), // v5 §3.1.2.11.4
  row(WILDCARD_SUBSCRIPTION_AVAILABLE, "wildcardSubscriptionAvailable", PT.Byte, IN.CONNACK, true),
  row(SUBSCRIPTION_IDENTIFIERS_AVAILABLE, "subscriptionIdentifiersAvailable", PT.Byte, IN.CONNACK, true),
  row(SHARED_SUBSCRIPTION_AVAILABLE, "sharedSubscriptionAvailable", PT.Byte, IN.CONNACK, true),
];

const byId: (PropSpec | undefined)[] = new Array(256).fill(undefined);
for (const p of PROPERTIES) byId[p.id] = p;

/** The row for identifier byte `id` (0..255), or undefined when MQTT 5 defines no such property. */
export function propertySpec(id: number): PropSpec | undefined {
  return byId[id];
}

/** mqtt-packet names of the properties allowed in `where` (a bit of `IN`). */
export function propertyNames(where: number): Set<string> {
  return new Set(PROPERTIES.filter((p) => (p.in & where) !== 0).map((p) => p.name));
}

const PACKET_NAMES = ["reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH", "will properties"];

/** A name for a place bit of `IN`, for error messages. */
export function placeName(where: number): string {
  return PACKET_NAMES[31 - Math.clz32(where)] ?? "packet";
}
