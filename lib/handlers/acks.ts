/**
 * @module handlers/acks
 * PUBACK, PUBREC, PUBREL, PUBCOMP. An acknowledged delivery leaves the
 * in-flight table and frees its window slot for the queue; PUBREC turns a
 * QoS 2 delivery into PUBREL-pending; PUBREL releases an inbound QoS 2 id.
 */
import type { Connection } from "../connection.ts";
import { type ack, PUBCOMP, PUBREL } from "../protocol/fast-codec.ts";
import { RC } from "../protocol/reason-codes.ts";

type Ack = typeof ack;

/** QoS 1 delivery done: free the id ([MQTT-4.3.2-1] 3.1.1 / 5 [MQTT-2.2.1-2]). */
export function handlePubAck(conn: Connection, a: Ack): void {
  const s = conn.session!;
  const d = s.inflight.get(a.packetId);
  if (d === undefined || d.qos !== 1) return; // unknown id: nothing to do
  conn.broker.outbox.completeDelivery(s, a.packetId);
}

/**
 * QoS 2 step 1: PUBREC < 0x80 → send PUBREL and never the PUBLISH again
 * ([MQTT-4.3.3-4..6] 5); PUBREC >= 0x80 ends the flow ([MQTT-4.4.0-2] 5).
 */
export function handlePubRec(conn: Connection, a: Ack): void {
  const s = conn.session!;
  const d = s.inflight.get(a.packetId);
  if (d === undefined || d.qos !== 2) {
    // Unknown id: answer PUBREL so the client can finish (v5 0x92 Packet Identifier not found).
    conn.ack(PUBREL, a.packetId, RC.PACKET_IDENTIFIER_NOT_FOUND);
    return;
  }
  if (a.reason >= 0x80) {
    conn.broker.outbox.completeDelivery(s, a.packetId);
    return;
  }
  conn.broker.outbox.releaseDelivery(s, d);
  conn.ack(PUBREL, a.packetId);
}

/** QoS 2 done: PUBCOMP frees the id ([MQTT-4.3.3-6] 3.1.1 / 5). */
export function handlePubComp(conn: Connection, a: Ack): void {
  const s = conn.session!;
  const d = s.inflight.get(a.packetId);
  if (d === undefined || d.qos !== 2 || !d.released) return;
  conn.broker.outbox.completeDelivery(s, a.packetId);
}

/**
 * Inbound QoS 2 release: forget the id and answer PUBCOMP with the same id
 * (3.1.1 [MQTT-4.3.3-2], 5 [MQTT-4.3.3-11]); an unknown id still gets PUBCOMP
 * (v5 0x92, §3.7.2.1).
 */
export function handlePubRel(conn: Connection, a: Ack): void {
  const s = conn.session!;
  const known = s.inboundQos2.delete(a.packetId);
  if (known) conn.broker.journal.deleteInbound(s, a.packetId);
  conn.ack(PUBCOMP, a.packetId, known ? 0 : RC.PACKET_IDENTIFIER_NOT_FOUND);
}
