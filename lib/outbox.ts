/**
 * @module outbox
 * Delivery to one session: QoS 0 straight out; QoS 1/2 through the
 * in-flight window (limits.maxInflight, maxInflightBytes, the client's
 * Receive Maximum) or the session queue, in order; acknowledgements that
 * free the window; re-sending on resume; and backpressure, which holds back
 * a publisher whose message overflowed a connected subscriber's queue
 * instead of dropping acknowledged messages.
 */
import type { Broker } from "./broker.ts";
import { type Connection, State } from "./connection.ts";
import { Delivery, type Message, type QoS } from "./message.ts";
import { PUBREL, writeAck } from "./protocol/fast-codec.ts";
import type { Session } from "./session.ts";
import type { SharedGroup, Subscription } from "./topic-tree.ts";

export class Outbox {
  constructor(private readonly broker: Broker) {}

  /**
   * Deliver to one session: QoS 0 straight out (or dropped if the session is
   * offline or not reading); QoS 1/2 into the in-flight window if it has room
   * and nothing is queued ahead (order per topic, [MQTT-4.6.0-5]), else queued.
   */
  deliver(s: Session, msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | null, group: SharedGroup<Session> | null = null): void {
    const conn = s.conn;
    if (conn !== null) {
      if (qos === 0) {
        if (conn.waitingDrain && conn.out.len > this.broker.limits.maxPendingOutput) {
          this.broker.countDrop("client is not reading; QoS 0 message dropped", s.id);
          return;
        }
        if (conn.writePublish(msg, 0, 0, false, retain, subIds, this.broker.now())) {
          this.broker.messagesOut++;
        } else {
          this.broker.countDrop("message larger than the client's Maximum Packet Size", s.id); // [MQTT-3.1.2-25]
        }
        return;
      }
      const d = new Delivery(msg, qos, retain, subIds, group);
      if (s.queue.length === 0 && s.resend === null && this.hasRoom(s, conn)) {
        d.seq = s.seq++;
        this.sendNew(s, conn, d, this.broker.now());
        return;
      }
      this.enqueue(s, d);
      return;
    }
    // Offline: QoS 1/2 wait in the session ([MQTT-3.1.2-5] 3.1.1); QoS 0 is not queued.
    if (qos > 0 && s.persistent) this.enqueue(s, new Delivery(msg, qos, retain, subIds, group));
  }

  /**
   * Queue a delivery. The queue bound is soft while the session is online:
   * an acknowledged QoS 1/2 message is not dropped because a connected
   * subscriber is slow; instead the publisher whose message overflowed it
   * stops being read (backpressure) until the queue drains to half. At twice
   * the bound, or while the session is offline, new messages are dropped,
   * counted and logged (the documented policy for offline queues).
   */
  private enqueue(s: Session, d: Delivery): void {
    const q = s.queue;
    const lim = this.broker.limits;
    const len = d.msg.payload.length;
    if (q.length >= lim.maxQueuedMessages || q.bytes + len > lim.maxQueuedBytes) {
      if (s.conn === null || q.length >= 2 * lim.maxQueuedMessages || q.bytes + len > 2 * lim.maxQueuedBytes) {
        s.dropped++;
        this.broker.countDrop(s.conn === null ? "offline session queue full; message dropped" : "session queue full; message dropped", s.id);
        return;
      }
      this.block(s, this.broker.publisher);
    }
    d.seq = s.seq++;
    q.push(d);
    this.broker.journal.saveDelivery(s, d);
  }

  /**
   * Room in the in-flight window: fewer unacknowledged QoS 1/2 deliveries
   * than the window (min of limits.maxInflight and the client's Receive
   * Maximum, [MQTT-3.3.4-9] 5) and fewer payload bytes in flight than
   * limits.maxInflightBytes.
   */
  hasRoom(s: Session, conn: Connection): boolean {
    return s.inflight.count < conn.sendWindow && s.inflight.bytes < this.broker.limits.maxInflightBytes;
  }

  /** Give a delivery a packet id, put it in flight and encode it. */
  private sendNew(s: Session, conn: Connection, d: Delivery, now: number): void {
    d.packetId = s.inflight.nextId();
    if (!conn.writePublish(d.msg, d.qos, d.packetId, false, d.retain, d.subIds, now)) {
      this.broker.countDrop("message larger than the client's Maximum Packet Size", s.id); // [MQTT-3.1.2-25]
      this.broker.journal.dropDelivery(s, d);
      return;
    }
    s.inflight.add(d);
    this.broker.journal.saveDelivery(s, d);
    this.broker.messagesOut++;
  }

  /** A delivery is finished (acknowledged, expired, refused): forget it. */
  completeDelivery(s: Session, packetId: number): void {
    const d = s.inflight.remove(packetId);
    if (d !== undefined) this.broker.journal.dropDelivery(s, d);
    if (s.blockers !== null) s.blockedSince = this.broker.now();
    this.drainQueue(s);
  }

  /** Stop reading a publisher that overflows session `s` (never the session's own connection). */
  private block(s: Session, pub: Connection | null): void {
    if (pub === null || pub === s.conn || pub.state !== State.Active) return;
    pub.pauseReading();
    if (s.blockers === null) {
      s.blockers = [];
      s.blockedSince = this.broker.now();
      this.broker.congested.add(s);
    }
    if (!s.blockers.includes(pub)) s.blockers.push(pub);
  }

  /** Resume the publishers held back by `s`. */
  unblock(s: Session): void {
    const b = s.blockers;
    if (b === null) return;
    s.blockers = null;
    s.blockedSince = 0;
    this.broker.congested.delete(s);
    // Resume on the next turn: processing a held publisher's frames here would
    // re-enter routing from inside another client's packet handler.
    setImmediate(() => {
      const now = this.broker.now();
      for (const c of b) c.resumeReading(now);
      this.broker.endBatch();
    });
  }

  /** PUBREC received: the delivery now waits for PUBCOMP. */
  releaseDelivery(s: Session, d: Delivery): void {
    d.released = true;
    this.broker.journal.saveDelivery(s, d);
  }

  /** Move queued deliveries into the freed in-flight window. Expired ones are dropped ([MQTT-3.3.2-5]). */
  drainQueue(s: Session): void {
    const conn = s.conn;
    if (conn === null || conn.state !== State.Active) return;
    const r = s.resend;
    if (r !== null) {
      // In-flight deliveries not yet re-sent on this connection go first, in order.
      while (r.length > 0 && s.inflight.count - r.length < conn.sendWindow) {
        const d = r.shift()!;
        if (s.inflight.get(d.packetId) === d) this.resendOne(s, conn, d);
      }
      conn.markDirty();
      if (r.length > 0) return;
      s.resend = null;
    }
    const q = s.queue;
    if (q.length === 0) return;
    const now = this.broker.now();
    while (q.length > 0 && this.hasRoom(s, conn)) {
      const d = q.shift()!;
      if (d.msg.expired(now)) {
        this.broker.journal.dropDelivery(s, d);
        continue;
      }
      this.sendNew(s, conn, d, now);
    }
    if (s.blockers !== null && q.length * 2 <= this.broker.limits.maxQueuedMessages && q.bytes * 2 <= this.broker.limits.maxQueuedBytes) this.unblock(s);
  }

  /**
   * After CONNACK on a resumed session: re-send unacknowledged PUBLISHes with
   * DUP = 1 and PUBRELs, with their original packet ids and in their original
   * order (3.1.1 [MQTT-4.4.0-1], 5 [MQTT-4.4.0-1], [MQTT-3.3.1-1]); then the queue.
   */
  resume(s: Session, conn: Connection): void {
    s.resend = null;
    const all = s.inflight.ordered();
    // Re-sent PUBLISHes count against the new connection's Receive Maximum (v5 §4.9); the rest wait their turn.
    let sent = 0;
    for (const d of all) {
      if (d.released || sent < conn.sendWindow) {
        this.resendOne(s, conn, d);
        sent++;
      } else {
        (s.resend ??= []).push(d);
      }
    }
    if (all.length > 0) conn.markDirty();
    this.drainQueue(s);
  }

  private resendOne(s: Session, conn: Connection, d: Delivery): void {
    if (d.released) {
      writeAck(conn.out, PUBREL, d.packetId, 0, conn.v5);
    } else if (!conn.writePublish(d.msg, d.qos, d.packetId, true, d.retain, d.subIds, this.broker.now())) {
      // Too large for this client: treated as delivered ([MQTT-3.1.2-25] 5).
      this.broker.countDrop("message larger than the client's Maximum Packet Size", s.id);
      s.inflight.remove(d.packetId);
      this.broker.journal.dropDelivery(s, d);
    }
  }

  /** Deliver the retained messages matching a new subscription, RETAIN = 1 ([MQTT-3.3.1-6] 3.1.1, [MQTT-3.3.1-9] 5). */
  sendRetained(s: Session, sub: Subscription<Session>): void {
    const msgs = this.broker.retained.match(sub.matchFilter, this.broker.now(), this.broker.onRetainedExpired);
    const ids = sub.subId !== 0 ? [sub.subId] : null;
    for (const m of msgs) this.deliver(s, m, m.qos < sub.qos ? m.qos : sub.qos, true, ids);
  }
}
