/**
 * @module handlers/subscribe
 * SUBSCRIBE: each filter is handled like its own SUBSCRIBE, answered by one
 * SUBACK in request order (3.1.1 [MQTT-3.8.4-4/5], 5 [MQTT-3.8.4-5..7]).
 * Policy for a syntactically invalid filter: that filter fails (3.1.1 0x80,
 * v5 0x8F) and the others proceed; broken UTF-8 or U+0000 is Malformed and
 * closes the connection. An identical filter replaces the subscription
 * (3.1.1 [MQTT-3.8.4-3], 5 [MQTT-3.8.4-3]). Retained messages follow the
 * SUBACK, per Retain Handling (5 [MQTT-3.3.1-9..11]); none on a shared
 * subscription (v5 §4.8.2).
 */
import type { Connection } from "../connection.ts";
import { log } from "../log.ts";
import type { QoS } from "../message.ts";
import type { Packet, SubscribePacket } from "../protocol/codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { checkDecodedString, isValidFilter, parseSharedFilter } from "../protocol/validate.ts";
import type { Session } from "../session.ts";
import type { Subscription } from "../topic-tree.ts";

interface SubRequest {
  topic: string;
  qos: number;
  nl?: boolean;
  rap?: boolean;
  rh?: number;
}

export function handleSubscribe(conn: Connection, p: SubscribePacket): void {
  const broker = conn.broker;
  const lim = broker.limits;
  const s = conn.session!;
  const v5 = conn.v5;
  if (!p.messageId) throw new MqttError(RC.PROTOCOL_ERROR, "SUBSCRIBE with packet identifier 0"); // 3.1.1 [MQTT-2.3.1-1]
  const reqs = p.subscriptions as SubRequest[];
  if (reqs.length === 0) throw new MqttError(RC.PROTOCOL_ERROR, "SUBSCRIBE without topic filters"); // 3.1.1 [MQTT-3.8.3-3], 5 [MQTT-3.8.3-2]
  let subId = 0;
  if (v5) {
    const props = p.properties as Record<string, unknown> | undefined;
    if (props?.subscriptionIdentifier !== undefined) {
      subId = props.subscriptionIdentifier as number;
      if (subId === 0) throw new MqttError(RC.PROTOCOL_ERROR, "Subscription Identifier 0"); // v5 §3.8.2.1.2
    }
  }
  for (const r of reqs) checkDecodedString(r.topic, "topic filter"); // [MQTT-3.8.3-1]

  const granted: number[] = [];
  const retainedFor: Subscription<Session>[] = [];
  for (const r of reqs) {
    const fail = v5 ? RC.TOPIC_FILTER_INVALID : 0x80;
    const shared = parseSharedFilter(r.topic, lim.maxTopicLevels);
    if (shared === "invalid" || (shared === null && !isValidFilter(r.topic, lim.maxTopicLevels))) {
      granted.push(fail);
      continue;
    }
    if (shared !== null && r.nl) throw new MqttError(RC.PROTOCOL_ERROR, "No Local on a shared subscription"); // [MQTT-3.8.3-4]
    if (s.acl !== null && !s.acl.canSubscribe(shared?.filter ?? r.topic)) {
      // This filter only (3.1.1 0x80, v5 0x87 Not authorized, v5 §3.9.3); a shared one is checked by its filter.
      if (log.debugEnabled) log.debug("subscription denied by the ACL", { client: conn.clientId, user: s.username, filter: r.topic });
      granted.push(v5 ? RC.NOT_AUTHORIZED : 0x80);
      continue;
    }
    const qos = Math.min(r.qos, 2) as QoS;
    const added = broker.subscribe(s, {
      filter: r.topic,
      qos,
      // A 3.1.x bridge (protocol level | 0x80) gets No Local and Retain As Published, as from Mosquitto.
      noLocal: !!r.nl || (conn.bridgePeer && shared === null),
      rap: !!r.rap || conn.bridgePeer,
      rh: r.rh ?? 0,
      subId,
      group: shared?.group ?? null,
      matchFilter: shared?.filter ?? r.topic,
    });
    if (added === null) {
      granted.push(v5 ? RC.QUOTA_EXCEEDED : 0x80); // limits.maxSubscriptionsPerSession
      continue;
    }
    granted.push(qos);
    if (shared === null) {
      const rh = v5 ? (r.rh ?? 0) : 0;
      if (rh === 0 || (rh === 1 && !added.existed)) retainedFor.push(added.sub);
    }
  }
  conn.sendPacket({ cmd: "suback", messageId: p.messageId, granted } as Packet); // [MQTT-3.8.4-1]
  // Retained messages follow the SUBACK, paced by the session's window (retained-sender.ts).
  for (const sub of retainedFor) broker.retainedSender.start(s, sub);
}
