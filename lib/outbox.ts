/**
 * @module outbox
 * Delivery to one session: QoS 0 straight out; QoS 1/2 through the
 * in-flight window (limits.maxInflight, maxInflightBytes, the client's
 * Receive Maximum) or the session queue, in order; acknowledgements that
 * free the window; re-sending on resume; and the queue policy.
 *
 * The queue policy, one rule for every source of messages:
 * - Below its bound (limits.maxQueuedMessages / maxQueuedBytes) a queue
 *   takes every message.
 * - Over the bound, an online subscriber holds back the publisher whose
 *   message overflowed it (its reading pauses at that packet) until the
 *   queue drains to half: nothing acknowledged is dropped while the
 *   subscriber makes progress. A publisher that itself holds others back is
 *   not held (a cycle of clients publishing to each other would deadlock).
 * - A subscriber that makes no progress (no acknowledgement) for
 *   limits.maxPublisherStallMs is stuck: its overflow is dropped (counted),
 *   the publishers resume, and later overflow is dropped at once until the
 *   queue has drained to half. A publisher is never held longer.
 * - Messages with no publisher to hold back (the subscriber's own, wills)
 *   may take the queue to twice its bound; beyond that they are dropped.
 * - An offline session drops what exceeds the bound.
 * QoS 0 never queues and never holds a publisher: it is dropped when the
 * client's output is not draining beyond limits.maxPendingOutput.
 */
import type { Broker } from "./broker.ts";
import { State } from "./conn-state.ts";
import type { Connection } from "./connection.ts";
import { Drop } from "./drops.ts";
import { Delivery, type Message, type QoS } from "./message.ts";
import { PUBREL } from "./protocol/fast-codec.ts";
import type { Session } from "./session.ts";
import type { SharedGroup } from "./topic-tree.ts";

export class Outbox {
  constructor(private readonly broker: Broker) {}

  /**
   * Deliver to one session: QoS 0 straight out (or dropped if the session is
   * offline or not reading); QoS 1/2 into the in-flight window if it has room
   * and nothing is queued ahead (order per topic, [MQTT-4.6.0-5]), else
   * queued. `origin` is the publisher's connection, the one to hold back
   * when the queue overflows (null: a will, a retained message, the broker).
   * Returns false when the message was dropped for this session.
   */
  deliver(
    s: Session,
    msg: Message,
    qos: QoS,
    retain: boolean,
    subIds: readonly number[] | null,
    group: SharedGroup<Session> | null,
    origin: Connection | null,
  ): boolean {
    const conn = s.conn;
    if (conn !== null) {
      if (qos === 0) {
        if (conn.waitingDrain && conn.out.len > this.broker.limits.maxPendingOutput) {
          this.broker.drops.count(Drop.Qos0Pending, s.id);
          return false;
        }
        if (!conn.writeQos0(msg, retain, subIds, this.broker.now())) {
          this.broker.drops.count(Drop.TooLarge, s.id); // [MQTT-3.1.2-25]
          return false;
        }
        const m = this.broker.metrics;
        m.msgsOut[0]!++;
        m.bytesOut[0]! += msg.payload.length;
        return true;
      }
      const d = new Delivery(msg, qos, retain, subIds, group);
      if (s.queue.length === 0 && s.resend === null && this.hasRoom(s, conn)) {
        d.seq = s.seq++;
        return this.sendNew(s, conn, d, this.broker.now());
      }
      return this.enqueue(s, d, origin);
    }
    // Offline: QoS 1/2 wait in the session ([MQTT-3.1.2-5] 3.1.1); QoS 0 is not queued, by
    // policy, which is not a drop.
    if (qos > 0 && s.persistent) return this.enqueue(s, new Delivery(msg, qos, retain, subIds, group), null);
    return true;
  }

  /** Queue a delivery under the queue policy (module comment). */
  private enqueue(s: Session, d: Delivery, origin: Connection | null): boolean {
    const q = s.queue;
    const lim = this.broker.limits;
    const len = d.msg.payload.length;
    const qb = s.queueBound; // a bridge's own bounds, else the limits
    const maxMessages = qb === null ? lim.maxQueuedMessages : qb.maxMessages;
    const maxBytes = qb === null ? lim.maxQueuedBytes : qb.maxBytes;
    if (q.length >= maxMessages || q.bytes + len > maxBytes) {
      const conn = s.conn;
      const hard = q.length >= 2 * maxMessages || q.bytes + len > 2 * maxBytes;
      if (conn === null || s.stuck || hard) {
        s.dropped++;
        this.broker.drops.count(Drop.QueueFull, s.id);
        return false;
      }
      // A publisher that itself holds others back is not held: two clients publishing to each
      // other would otherwise each stop reading the acknowledgements the other waits for.
      if (origin !== null && origin !== conn && origin.state === State.Active && lim.maxPublisherStallMs > 0 && origin.session?.blockers == null) {
        this.hold(s, origin);
      }
    }
    d.seq = s.seq++;
    q.push(d);
    this.broker.journal.saveDelivery(s, d);
    return true;
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
  private sendNew(s: Session, conn: Connection, d: Delivery, now: number): boolean {
    d.packetId = s.inflight.nextId();
    // Recorded before it is encoded: if recording fails, nothing went out.
    this.broker.journal.saveDelivery(s, d);
    if (!conn.writeDelivery(d, false, now)) {
      this.broker.drops.count(Drop.TooLarge, s.id); // [MQTT-3.1.2-25]
      this.broker.journal.dropDelivery(s, d);
      return false;
    }
    s.inflight.add(d);
    const m = this.broker.metrics;
    m.msgsOut[d.qos]!++;
    m.bytesOut[d.qos]! += d.msg.payload.length;
    return true;
  }

  /** A delivery is finished (acknowledged, refused): forget it. This is the session's progress. */
  completeDelivery(s: Session, packetId: number): void {
    const d = s.inflight.remove(packetId);
    if (d !== undefined) this.broker.journal.dropDelivery(s, d);
    if (s.blockers !== null) s.blockedSince = this.broker.now();
    this.drainQueue(s);
  }

  /** Stop reading `pub`, whose message overflowed the queue of `s`. */
  private hold(s: Session, pub: Connection): void {
    pub.pauseReading();
    if (s.blockers === null) {
      s.blockers = [];
      s.blockedSince = this.broker.now();
      this.broker.setCongested(s, true);
    }
    if (!s.blockers.includes(pub)) s.blockers.push(pub);
  }

  /** Resume the publishers held back by `s`. */
  unblock(s: Session): void {
    const b = s.blockers;
    if (b === null) return;
    s.blockers = null;
    s.blockedSince = 0;
    this.broker.setCongested(s, false);
    // Resume on the next turn: processing a held publisher's frames here would
    // re-enter routing from inside another client's packet handler.
    setImmediate(() => {
      for (const c of b) c.run(() => c.resumeReading(this.broker.now()));
    });
  }

  /**
   * `s` held publishers back for limits.maxPublisherStallMs without progress:
   * it is stuck. Its overflow (what is queued beyond the bound) is dropped and
   * counted, and the publishers resume; until its queue drains to half, more
   * overflow is dropped at once instead of holding anyone again.
   */
  markStuck(s: Session): void {
    s.stuck = true;
    this.broker.stalls++;
    const lim = this.broker.limits;
    const q = s.queue;
    const qb = s.queueBound;
    const cut = qb === null ? q.trimTo(lim.maxQueuedMessages, lim.maxQueuedBytes) : q.trimTo(qb.maxMessages, qb.maxBytes);
    for (const d of cut) {
      s.dropped++;
      this.broker.drops.count(Drop.QueueFull, s.id);
      this.broker.journal.dropDelivery(s, d);
    }
    this.unblock(s);
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
    if (q.length > 0) {
      const now = this.broker.now();
      while (q.length > 0 && this.hasRoom(s, conn)) {
        const d = q.shift()!;
        if (d.msg.expired(now)) {
          this.broker.drops.count(Drop.Expired, s.id);
          this.broker.journal.dropDelivery(s, d);
          continue;
        }
        this.sendNew(s, conn, d, now);
      }
    }
    const lim = this.broker.limits;
    const qb = s.queueBound;
    if ((s.stuck || s.blockers !== null) && q.length * 2 <= (qb === null ? lim.maxQueuedMessages : qb.maxMessages) && q.bytes * 2 <= (qb === null ? lim.maxQueuedBytes : qb.maxBytes)) {
      s.stuck = false;
      this.unblock(s);
    }
    if (q.length === 0 && s.retainedJobs !== null) this.broker.retainedSender.wake(s);
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
      conn.ack(PUBREL, d.packetId);
    } else if (!conn.writeDelivery(d, true, this.broker.now())) {
      // Too large for this client: treated as delivered ([MQTT-3.1.2-25] 5).
      this.broker.drops.count(Drop.TooLarge, s.id);
      s.inflight.remove(d.packetId);
      this.broker.journal.dropDelivery(s, d);
    }
  }
}
