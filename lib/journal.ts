/**
 * @module journal
 * Write-through of broker state to the `Store`, for sessions that outlive
 * their connection (3.1.1 Clean Session 0, v5 Session Expiry > 0) and for
 * retained messages; clean sessions never reach it. It knows which session,
 * delivery and message already has rows (`stored` flags) and counts message
 * references, so a payload is stored once however many queues hold it and
 * its row goes with the last reference (DESIGN.md 3).
 */
import type { Delivery, Message } from "./message.ts";
import type { Session } from "./session.ts";
import type { Snapshot, Store } from "./store.ts";
import type { Subscription } from "./topic-tree.ts";

export class Journal {
  constructor(readonly store: Store) {}

  /** Write a persistent session's row; a session that is no longer persistent leaves the store. */
  saveSession(s: Session): void {
    if (!s.persistent || s.ended) {
      this.deleteSession(s);
      return;
    }
    this.store.saveSession({
      clientId: s.id,
      version: s.version,
      expiryInterval: s.expiryInterval,
      expiresAt: s.expiresAt,
      connected: s.conn !== null,
      will: s.will,
      willAt: s.willAt,
    });
    if (!s.stored) {
      // Becoming stored: write what it already holds.
      s.stored = true;
      for (const sub of s.subs.values()) this.saveSubscription(s, sub);
      for (const d of s.inflight.ordered()) this.saveDelivery(s, d);
      for (const d of s.queue.toArray()) this.saveDelivery(s, d);
      for (const id of s.inboundQos2) this.store.addInbound(s.id, id);
    }
  }

  /** Remove a session's rows and release its references to stored messages. */
  deleteSession(s: Session): void {
    if (!s.stored) return;
    s.stored = false;
    this.store.deleteSession(s.id);
    for (const d of s.inflight.ordered()) this.unrefDelivery(d);
    for (const d of s.queue.toArray()) this.unrefDelivery(d);
  }

  saveSubscription(s: Session, sub: Subscription<Session>): void {
    if (!s.stored) return;
    this.store.saveSubscription({ clientId: s.id, filter: sub.filter, qos: sub.qos, noLocal: sub.noLocal, rap: sub.rap, rh: sub.rh, subId: sub.subId });
  }

  deleteSubscription(s: Session, filter: string): void {
    if (s.stored) this.store.deleteSubscription(s.id, filter);
  }

  /** Insert or update a delivery row of a stored session. */
  saveDelivery(s: Session, d: Delivery): void {
    if (!s.stored) return;
    if (!d.stored) {
      this.refMessage(d.msg);
      d.stored = true;
    }
    this.store.saveDelivery({
      clientId: s.id,
      seq: d.seq,
      messageId: d.msg.storeId,
      packetId: d.packetId,
      qos: d.qos,
      retain: d.retain,
      released: d.released,
      subIds: d.subIds === null ? null : [...d.subIds],
    });
  }

  /** A delivery is finished (acknowledged, expired, too large): drop its row. */
  dropDelivery(s: Session, d: Delivery): void {
    if (!d.stored) return;
    this.store.deleteDelivery(s.id, d.seq);
    this.unrefDelivery(d);
  }

  addInbound(s: Session, packetId: number): void {
    if (s.stored) this.store.addInbound(s.id, packetId);
  }

  deleteInbound(s: Session, packetId: number): void {
    if (s.stored) this.store.deleteInbound(s.id, packetId);
  }

  /** `msg` became its topic's retained message, replacing `prev`. */
  setRetained(msg: Message, prev: Message | null): void {
    this.refMessage(msg);
    this.store.setRetained(msg.topic, msg.storeId);
    if (prev !== null) this.unrefMessage(prev);
  }

  /** The retained message `prev` of `topic` was deleted (or expired). */
  deleteRetained(topic: string, prev: Message): void {
    this.store.deleteRetained(topic);
    this.unrefMessage(prev);
  }

  /** A restored row references `m` (restore counts references itself). */
  countRestoredRef(m: Message): void {
    m.storeRefs++;
  }

  load(): Snapshot {
    return this.store.load();
  }

  commit(): void {
    this.store.commit();
  }

  close(): void {
    this.store.close();
  }

  private unrefDelivery(d: Delivery): void {
    if (!d.stored) return;
    d.stored = false;
    this.unrefMessage(d.msg);
  }

  /** Messages are stored once and shared; the last reference deletes the row. */
  private refMessage(m: Message): void {
    if (m.storeId === 0) {
      m.storeId = this.store.addMessage({
        topic: m.topic,
        payload: m.payload,
        qos: m.qos,
        retain: m.retain,
        props: m.props,
        expiresAt: m.expiresAt,
        origin: m.origin,
      });
    }
    m.storeRefs++;
  }

  private unrefMessage(m: Message): void {
    if (m.storeId === 0) return;
    if (--m.storeRefs <= 0) {
      this.store.deleteMessage(m.storeId);
      m.storeId = 0;
      m.storeRefs = 0;
    }
  }
}
