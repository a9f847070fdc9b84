/**
 * @module handlers/unsubscribe
 * UNSUBSCRIBE: each filter is compared literally with the session's filters
 * (no wildcard matching, [MQTT-3.10.4-1]); UNSUBACK always follows with the
 * same packet id ([MQTT-3.10.4-4/5]); v5 gives 0x00 or 0x11 per filter
 * ([MQTT-3.11.3-1/2]). Deliveries already in flight or queued still complete
 * ([MQTT-3.10.4-3]).
 */
import type { Connection } from "../connection.ts";
import type { Packet, UnsubscribePacket } from "../protocol/codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { checkDecodedString } from "../protocol/validate.ts";

export function handleUnsubscribe(conn: Connection, p: UnsubscribePacket): void {
  const broker = conn.broker;
  const s = conn.session!;
  if (!p.messageId) throw new MqttError(RC.PROTOCOL_ERROR, "UNSUBSCRIBE with packet identifier 0");
  const filters = p.unsubscriptions;
  if (filters.length === 0) throw new MqttError(RC.PROTOCOL_ERROR, "UNSUBSCRIBE without topic filters"); // [MQTT-3.10.3-2]
  for (const f of filters) checkDecodedString(f, "topic filter"); // [MQTT-3.10.3-1]
  const codes: number[] = [];
  for (const f of filters) codes.push(broker.unsubscribe(s, f) ? RC.SUCCESS : RC.NO_SUBSCRIPTION_EXISTED);
  conn.sendPacket({ cmd: "unsuback", messageId: p.messageId, granted: codes } as Packet);
}
