/**
 * @module handlers/auth
 * AUTH (v5). Enhanced authentication is not offered yet, so a CONNECT with
 * an Authentication Method is refused (0x8C) and every AUTH after CONNACK is
 * a Protocol Error ([MQTT-4.12.0-7] 5).
 */
import type { Connection } from "../connection.ts";
import type { AuthPacket } from "../protocol/codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";

export function handleAuth(_conn: Connection, _p: AuthPacket): void {
  throw new MqttError(RC.PROTOCOL_ERROR, "AUTH without an Authentication Method in CONNECT");
}
