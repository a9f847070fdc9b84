/**
 * @module handlers/publish
 * Inbound PUBLISH: resolve the v5 Topic Alias, validate the topic, take
 * ownership (retain, route), acknowledge by QoS ([MQTT-3.3.4-1]). QoS 2 is
 * de-duplicated on the packet id until PUBREL (3.1.1 [MQTT-4.3.3-2],
 * 5 [MQTT-4.3.3-10]): a repeat is answered with PUBREC and not routed again.
 */
import type { Connection } from "../connection.ts";
import { Drop } from "../drops.ts";
import { log } from "../log.ts";
import { Message } from "../message.ts";
import { Routed } from "../router.ts";
import { PUBACK, PUBREC, type PublishFields } from "../protocol/fast-codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { runtime, type Runtime } from "../runtime/index.ts";
import { topicNameError } from "../protocol/validate.ts";
import { InboundAliases } from "../topic-aliases.ts";

/** The runtime's byte copy, looked up once (the runtime is installed after this module loads). */
let copyBytes: Runtime["copyBytes"] | null = null;

export function handlePublish(conn: Connection, f: PublishFields): void {
  const broker = conn.broker;
  const s = conn.session!;
  const v5 = conn.v5;
  let topic = f.topic;
  if (f.alias !== 0) {
    // v5 §3.3.2.3.4: alias above our Topic Alias Maximum is 0x94 ([MQTT-3.3.2-9]);
    // an empty topic with an unbound alias is a Protocol Error.
    if (f.alias > broker.limits.topicAliasMaximum) throw new MqttError(RC.TOPIC_ALIAS_INVALID, `Topic Alias ${f.alias} above maximum`);
    if (topic.length === 0) {
      const bound = conn.aliasesIn?.get(f.alias);
      if (bound === undefined) throw new MqttError(RC.PROTOCOL_ERROR, `Topic Alias ${f.alias} is not bound`);
      topic = bound;
    } else {
      const bad = topicNameError(topic, broker.limits.maxTopicLevels);
      if (bad !== 0) throw new MqttError(bad, "invalid topic name");
      (conn.aliasesIn ??= new InboundAliases()).bind(f.alias, topic);
    }
  } else {
    // Non-empty, no wildcards, no U+0000 ([MQTT-4.7.3-1], [MQTT-3.3.2-2], [MQTT-4.7.3-2]).
    const bad = topicNameError(topic, broker.limits.maxTopicLevels);
    if (bad !== 0) throw new MqttError(bad, topic.length === 0 ? "empty topic name" : "invalid topic name");
  }

  // From a bridge's upstream: the local topic (prefixes swapped), or null to acknowledge and drop.
  let local: string | null = topic;
  const up = conn.uplink;
  if (up !== null) local = up.inbound(topic, f.buf, f.payloadStart, f.end);

  const qos = f.qos;
  const id = f.packetId;
  if (qos === 2) {
    if (s.inboundQos2.has(id)) {
      conn.ack(PUBREC, id); // exactly once: answer again, do not route again
      return;
    }
    // More unreleased QoS 2 messages than our Receive Maximum: v5 §3.3.4 DISCONNECT 0x93.
    if (s.inboundQos2.size >= broker.limits.receiveMaximum) {
      throw new MqttError(RC.RECEIVE_MAXIMUM_EXCEEDED, "too many QoS 2 messages awaiting PUBREL");
    }
  }

  if (local === null) {
    if (qos > 0) conn.ack(qos === 1 ? PUBACK : PUBREC, id);
    if (qos === 2) s.inboundQos2.add(id); // its PUBREL gets a plain PUBCOMP
    return;
  }
  const remapped = local !== topic;
  topic = local;

  // Clients may not inject broker status topics (v5 §4.7.2: $ topics are the server's).
  if (topic === "$SYS" || topic.startsWith("$SYS/")) {
    if (qos > 0) {
      conn.ack(qos === 1 ? PUBACK : PUBREC, id, v5 ? RC.NOT_AUTHORIZED : 0);
    }
    return;
  }

  const acl = s.acl;
  if (acl !== null && !acl.canPublish(topic)) {
    // Not routed, not retained, counted. v5 learns why (0x87, and a QoS 2 flow
    // ends there, [MQTT-4.3.3-9] 5); 3.1.1 has no way to say it, so it gets its
    // ack, as from Mosquitto, and the message is dropped.
    broker.drops.count(Drop.Acl, conn.clientId);
    if (log.debugEnabled) log.debug("publish denied by the ACL; dropped", { client: conn.clientId, user: s.username, topic, qos });
    if (qos > 0) conn.ack(qos === 1 ? PUBACK : PUBREC, id, v5 ? RC.NOT_AUTHORIZED : 0);
    return;
  }

  // A kept message must not pin the socket chunk: copy what outlives this batch (DESIGN.md 7).
  // (allocUnsafe + copy is ~35% cheaper than Buffer.from(view) on Bun 1.4; the copy is the runtime's.)
  const keep = qos > 0 || f.retain;
  const end = f.end;
  let payload: Buffer;
  if (keep) {
    payload = Buffer.allocUnsafe(end - f.payloadStart);
    (copyBytes ??= runtime().copyBytes)(f.buf, f.payloadStart, end, payload, 0);
  } else {
    payload = f.buf.subarray(f.payloadStart, end);
  }
  const props = f.props !== null && keep ? Buffer.from(f.props) : f.props;
  const now = broker.now();
  const msg = new Message(topic, payload, qos, f.retain, props, f.expiry >= 0 ? now + f.expiry * 1000 : 0, conn.clientId);
  if (f.topicBytes !== null && !remapped) msg.topicBytes = f.topicBytes; // shared, never mutated
  if (qos === 2) {
    s.inboundQos2.add(id); // [MQTT-4.3.3-8] 5: remember the id until PUBREL
    broker.journal.addInbound(s, id);
  }
  const routed = broker.publish(msg, conn); // conn: the publisher a full queue holds back
  if (qos > 0) {
    // [MQTT-4.3.2-4] / [MQTT-4.3.3-8] 5: ack with the same packet id. v5 learns that nobody
    // matched (0x10), or that every matching subscriber dropped it (0x97 Quota exceeded).
    let rc = 0;
    if (v5 && routed !== Routed.Delivered) rc = routed === Routed.NoMatch ? RC.NO_MATCHING_SUBSCRIBERS : RC.QUOTA_EXCEEDED;
    if (rc >= 0x80 && qos === 2) {
      // A PUBREC with an error ends the QoS 2 flow: the id may be reused for a new message ([MQTT-4.3.3-9] 5).
      s.inboundQos2.delete(id);
      broker.journal.deleteInbound(s, id);
    }
    conn.ack(qos === 1 ? PUBACK : PUBREC, id, rc);
  }
}
