/**
 * @module handlers
 * The dispatch table: one complete frame in, one handler called. The hot
 * packets (PUBLISH, the four acks, PINGREQ) are decoded by hand; the rest by
 * mqtt-packet. Packet types a client must never send are refused here
 * (3.1.1 Table 2.1, v5 Table 2-1), as is any packet before CONNECT and a
 * second CONNECT ([MQTT-3.1.0-1], [MQTT-3.1.0-2]).
 */
import { State } from "../conn-state.ts";
import type { Connection } from "../connection.ts";
import { decodeChecked, type AuthPacket, type DisconnectPacket, type SubscribePacket, type UnsubscribePacket } from "../protocol/codec.ts";
import { decodeAck, decodePublish, PUBACK, PUBCOMP, PUBREC, PUBREL } from "../protocol/fast-codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { handlePubAck, handlePubComp, handlePubRec, handlePubRel } from "./acks.ts";
import { handleAuth } from "./auth.ts";
import { onConnectFrame } from "./connect.ts";
import { handleDisconnect } from "./disconnect.ts";
import { handlePingReq } from "./ping.ts";
import { handlePublish } from "./publish.ts";
import { handleSubscribe } from "./subscribe.ts";
import { handleUnsubscribe } from "./unsubscribe.ts";

/**
 * Dispatch one frame. `buf[body..end)` is the variable header and payload;
 * `buf[frame..end)` the whole packet (for mqtt-packet).
 */
export function dispatch(conn: Connection, type: number, flags: number, buf: Buffer, body: number, end: number, frame: number): void {
  // A bridge's upstream connection: the server-to-client packets are its own (bridge/uplink.ts).
  if (conn.uplink !== null && conn.uplink.intercept(type, flags, buf, body, end, frame)) return;
  if (type === 1) {
    if (conn.state !== State.New) throw new MqttError(RC.PROTOCOL_ERROR, "second CONNECT"); // [MQTT-3.1.0-2]
    onConnectFrame(conn, buf.subarray(frame, end));
    return;
  }
  if (conn.state !== State.Active) {
    if (conn.state === State.Authenticating) {
      // During enhanced authentication only AUTH and DISCONNECT may be sent ([MQTT-3.1.2-30] 5).
      if (type === 15) {
        handleAuth(conn, decodeChecked(type, buf, frame, body, end, 5) as AuthPacket);
        return;
      }
      if (type === 14) {
        conn.close("client abandoned authentication");
        return;
      }
      throw new MqttError(RC.PROTOCOL_ERROR, "only AUTH or DISCONNECT may be sent during authentication");
    }
    throw new MqttError(RC.PROTOCOL_ERROR, "packet before CONNECT"); // [MQTT-3.1.0-1]
  }
  const v5 = conn.v5;
  switch (type) {
    case 3:
      handlePublish(conn, decodePublish(buf, body, end, flags, v5, conn));
      return;
    case PUBACK:
      handlePubAck(conn, decodeAck(type, buf, body, end, flags, v5));
      return;
    case PUBREC:
      handlePubRec(conn, decodeAck(type, buf, body, end, flags, v5));
      return;
    case PUBREL:
      handlePubRel(conn, decodeAck(type, buf, body, end, flags, v5));
      return;
    case PUBCOMP:
      handlePubComp(conn, decodeAck(type, buf, body, end, flags, v5));
      return;
    case 12: // PINGREQ: flags 0 and no body ([MQTT-2.2.2-1])
      if (flags !== 0 || end !== body) throw new MqttError(RC.MALFORMED_PACKET, "malformed PINGREQ");
      handlePingReq(conn);
      return;
    // The rare packets: v5 property sections are walked strictly before mqtt-packet decodes the frame (v5 §2.2.2).
    case 8:
      handleSubscribe(conn, decodeChecked(type, buf, frame, body, end, conn.version as 3 | 4 | 5) as SubscribePacket);
      return;
    case 10:
      handleUnsubscribe(conn, decodeChecked(type, buf, frame, body, end, conn.version as 3 | 4 | 5) as UnsubscribePacket);
      return;
    case 14:
      handleDisconnect(conn, decodeChecked(type, buf, frame, body, end, conn.version as 3 | 4 | 5) as DisconnectPacket);
      return;
    case 15:
      if (!v5) throw new MqttError(RC.PROTOCOL_ERROR, "AUTH is not a 3.1.1 packet");
      handleAuth(conn, decodeChecked(type, buf, frame, body, end, 5) as AuthPacket);
      return;
    case 0:
      throw new MqttError(RC.MALFORMED_PACKET, "reserved packet type 0");
    default:
      // CONNACK, SUBACK, UNSUBACK, PINGRESP only flow server -> client.
      throw new MqttError(RC.PROTOCOL_ERROR, `packet type ${type} may not be sent by a client`);
  }
}
