/**
 * @module handlers/auth
 * AUTH (v5 §3.15, §4.12): continues the enhanced-authentication exchange a
 * CONNECT started (before CONNACK), or runs a re-authentication on a live
 * connection (client AUTH 0x19, [MQTT-4.12.1-1]); traffic continues under the
 * previous authentication meanwhile. AUTH without an Authentication Method in
 * CONNECT, or with another method, is a Protocol Error ([MQTT-4.12.0-7]).
 */
import { State } from "../conn-state.ts";
import type { Connection } from "../connection.ts";
import type { AuthPacket, Packet } from "../protocol/codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { continueAuth } from "./connect.ts";

export function handleAuth(conn: Connection, p: AuthPacket): void {
  const props = p.properties as Record<string, unknown> | undefined;
  const auth = conn.auth;
  if (auth === null) throw new MqttError(RC.PROTOCOL_ERROR, "AUTH without an Authentication Method in CONNECT");
  const method = props?.authenticationMethod;
  // Every AUTH carries the CONNECT's method (v5 §3.15.2.2.2, [MQTT-4.12.1-1]).
  if (method !== auth.method) throw new MqttError(RC.PROTOCOL_ERROR, "AUTH with a different or missing Authentication Method");
  const data = props?.authenticationData as Buffer | undefined;
  const rc = p.reasonCode ?? 0;

  if (conn.state === State.Authenticating) {
    if (rc !== RC.CONTINUE_AUTHENTICATION) throw new MqttError(RC.PROTOCOL_ERROR, "AUTH during authentication must be Continue (0x18)"); // [MQTT-4.12.0-3]
    continueAuth(conn, data);
    return;
  }

  // Re-authentication on a live connection.
  if (rc === RC.REAUTHENTICATE) {
    if (auth.exchange !== null) throw new MqttError(RC.PROTOCOL_ERROR, "re-authentication already in progress");
    auth.exchange = conn.broker.authMethods.get(auth.method)!.start();
  } else if (rc !== RC.CONTINUE_AUTHENTICATION || auth.exchange === null) {
    throw new MqttError(RC.PROTOCOL_ERROR, `unexpected AUTH reason 0x${rc.toString(16)}`);
  }
  const step = auth.exchange.step(data);
  if (step.kind === "continue") {
    conn.sendPacket({
      cmd: "auth",
      reasonCode: RC.CONTINUE_AUTHENTICATION,
      properties: { authenticationMethod: auth.method, authenticationData: step.data },
    } as Packet);
    return;
  }
  auth.exchange = null;
  if (step.kind === "fail") {
    // Failed re-authentication ends the connection ([MQTT-4.12.1-2]); 0x86 is not a DISCONNECT code.
    throw new MqttError(step.code === RC.BAD_USER_NAME_OR_PASSWORD ? RC.NOT_AUTHORIZED : step.code, step.reason);
  }
  const properties: Record<string, unknown> = { authenticationMethod: auth.method };
  if (step.data !== undefined) properties.authenticationData = step.data;
  conn.sendPacket({ cmd: "auth", reasonCode: RC.SUCCESS, properties } as Packet);
}
