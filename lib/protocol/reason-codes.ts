/**
 * @module reason-codes
 * MQTT 5 reason codes as values, the 3.1.1 CONNACK return-code mapping, and
 * `MqttError`. Handlers throw `MqttError(code)`; `Connection.fail()` is the one
 * place that turns it into CONNACK, DISCONNECT or a silent close per version.
 */

export const RC = {
  SUCCESS: 0x00,
  GRANTED_QOS_1: 0x01,
  GRANTED_QOS_2: 0x02,
  DISCONNECT_WITH_WILL: 0x04,
  NO_MATCHING_SUBSCRIBERS: 0x10,
  NO_SUBSCRIPTION_EXISTED: 0x11,
  CONTINUE_AUTHENTICATION: 0x18,
  REAUTHENTICATE: 0x19,
  UNSPECIFIED_ERROR: 0x80,
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC_ERROR: 0x83,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  CLIENT_IDENTIFIER_NOT_VALID: 0x85,
  BAD_USER_NAME_OR_PASSWORD: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_BUSY: 0x89,
  BANNED: 0x8a,
  SERVER_SHUTTING_DOWN: 0x8b,
  BAD_AUTHENTICATION_METHOD: 0x8c,
  KEEP_ALIVE_TIMEOUT: 0x8d,
  SESSION_TAKEN_OVER: 0x8e,
  TOPIC_FILTER_INVALID: 0x8f,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_IDENTIFIER_IN_USE: 0x91,
  PACKET_IDENTIFIER_NOT_FOUND: 0x92,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  TOPIC_ALIAS_INVALID: 0x94,
  PACKET_TOO_LARGE: 0x95,
  MESSAGE_RATE_TOO_HIGH: 0x96,
  QUOTA_EXCEEDED: 0x97,
  ADMINISTRATIVE_ACTION: 0x98,
  PAYLOAD_FORMAT_INVALID: 0x99,
  RETAIN_NOT_SUPPORTED: 0x9a,
  QOS_NOT_SUPPORTED: 0x9b,
  USE_ANOTHER_SERVER: 0x9c,
  SERVER_MOVED: 0x9d,
  SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: 0x9e,
  CONNECTION_RATE_EXCEEDED: 0x9f,
  MAXIMUM_CONNECT_TIME: 0xa0,
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: 0xa1,
  WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: 0xa2,
} as const;

export type ReasonCode = (typeof RC)[keyof typeof RC];

/** 3.1.1 CONNACK return codes (only 0x00–0x05 exist, [MQTT-3.2.2-6]). */
export const V3_CONNACK = {
  ACCEPTED: 0x00,
  UNACCEPTABLE_PROTOCOL_VERSION: 0x01,
  IDENTIFIER_REJECTED: 0x02,
  SERVER_UNAVAILABLE: 0x03,
  BAD_USERNAME_OR_PASSWORD: 0x04,
  NOT_AUTHORIZED: 0x05,
} as const;

/**
 * A failure that ends the connection, with the v5 reason code that describes
 * it; its message becomes the v5 Reason String. (Per-packet refusals are ack
 * codes, not thrown.)
 */
export class MqttError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** For 0x9C / 0x9D: where the client should go (v5 Server Reference). */
    readonly serverReference?: string,
  ) {
    super(message);
    this.name = "MqttError";
  }
}

/**
 * Map a v5 CONNACK reason code to the 3.1.1 return code, or null when none of
 * 0x01–0x05 fits: then the connection is closed without a CONNACK
 * ([MQTT-3.2.2-6], 3.1.1 [MQTT-3.1.4-1]).
 */
export function v3ConnackCode(code: number): number | null {
  switch (code) {
    case RC.SUCCESS:
      return V3_CONNACK.ACCEPTED;
    case RC.UNSUPPORTED_PROTOCOL_VERSION:
      return V3_CONNACK.UNACCEPTABLE_PROTOCOL_VERSION;
    case RC.CLIENT_IDENTIFIER_NOT_VALID:
      return V3_CONNACK.IDENTIFIER_REJECTED;
    case RC.SERVER_UNAVAILABLE:
    case RC.SERVER_BUSY:
    case RC.USE_ANOTHER_SERVER:
    case RC.SERVER_MOVED:
      return V3_CONNACK.SERVER_UNAVAILABLE;
    case RC.BAD_USER_NAME_OR_PASSWORD:
      return V3_CONNACK.BAD_USERNAME_OR_PASSWORD;
    case RC.NOT_AUTHORIZED:
    case RC.BANNED:
    case RC.BAD_AUTHENTICATION_METHOD:
      return V3_CONNACK.NOT_AUTHORIZED;
    default:
      return null;
  }
}

/** Reason codes a client may put in DISCONNECT ([MQTT-3.14.2-1]). */
export function isClientDisconnectCode(code: number): boolean {
  return (
    code === 0x00 ||
    code === 0x04 ||
    (code >= 0x80 && code <= 0x83) ||
    code === 0x90 ||
    (code >= 0x93 && code <= 0x99)
  );
}

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(RC).map(([k, v]) => [v, k.toLowerCase().replace(/_/g, " ")]),
);

/** Human-readable name of a reason code, for logs and Reason Strings. */
export function reasonName(code: number): string {
  return NAMES[code] ?? `0x${code.toString(16)}`;
}
