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
import type { QoS } from "../message.ts";
import type { Packet, SubscribePacket } from "../protocol/codec.ts";
import { checkProps, SUBSCRIBE_PROPS } from "../protocol/properties.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { checkDecodedString, isValidFilter, parseSharedFilter } from "../protocol/validate.ts";
import type { Session } from "../session.ts";
import { Subscription } from "../topic-tree.ts";

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
    checkProps(props, SUBSCRIBE_PROPS, "SUBSCRIBE");
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
    const qos = Math.min(r.qos, 2) as QoS;
    const existing = s.subs.get(r.topic);
    if (existing) {
      existing.qos = qos;
      existing.noLocal = !!r.nl;
      existing.rap = !!r.rap;
      existing.rh = r.rh ?? 0;
      existing.subId = subId; // a new or removed identifier replaces the old (v5 §3.8.4)
    } else {
      if (s.subs.size >= lim.maxSubscriptionsPerSession) {
        granted.push(v5 ? RC.QUOTA_EXCEEDED : 0x80);
        continue;
      }
      const sub = new Subscription<Session>(s, r.topic, qos, !!r.nl, !!r.rap, r.rh ?? 0, subId, shared?.group ?? null, shared?.filter ?? r.topic);
      s.subs.set(r.topic, sub);
      broker.topics.add(sub);
    }
    broker.journal.saveSubscription(s, s.subs.get(r.topic)!);
    granted.push(qos);
    if (shared === null) {
      const rh = v5 ? (r.rh ?? 0) : 0;
      if (rh === 0 || (rh === 1 && !existing)) retainedFor.push(s.subs.get(r.topic)!);
    }
  }
  conn.sendPacket({ cmd: "suback", messageId: p.messageId, granted } as Packet); // [MQTT-3.8.4-1]
  for (const sub of retainedFor) broker.outbox.sendRetained(s, sub);
}
