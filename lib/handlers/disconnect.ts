/**
 * @module handlers/disconnect
 * Client DISCONNECT. 3.1.1: discard the will and close ([MQTT-3.14.4-3]).
 * v5: reason 0x00 discards the will; 0x04 and the error codes keep it
 * (v5 §3.14.2.1); a Session Expiry Interval may replace the session's, but
 * not turn 0 into non-zero (a Protocol Error that leaves the will due).
 */
import type { Connection } from "../connection.ts";
import type { DisconnectPacket } from "../protocol/codec.ts";
import { isClientDisconnectCode, MqttError, RC } from "../protocol/reason-codes.ts";

export function handleDisconnect(conn: Connection, p: DisconnectPacket): void {
  const s = conn.session!;
  let reason = 0;
  if (conn.v5) {
    reason = p.reasonCode ?? 0;
    if (!isClientDisconnectCode(reason)) throw new MqttError(RC.PROTOCOL_ERROR, `DISCONNECT reason 0x${reason.toString(16)} is not a client code`);
    const props = p.properties as Record<string, unknown> | undefined;
    if (props?.serverReference !== undefined) throw new MqttError(RC.PROTOCOL_ERROR, "Server Reference from a client");
    const expiry = props?.sessionExpiryInterval as number | undefined;
    if (expiry !== undefined) {
      if (s.expiryInterval === 0 && expiry !== 0) {
        throw new MqttError(RC.PROTOCOL_ERROR, "Session Expiry Interval changed from 0 on DISCONNECT"); // v5 §3.14.2.2.2
      }
      s.expiryInterval = Math.min(expiry, conn.broker.limits.maxSessionExpiry);
    }
  }
  conn.normalDisconnect = reason === 0;
  conn.close("client sent DISCONNECT");
}
