/**
 * @module journal
 * Write-behind of broker state to the `Store`, for sessions that outlive
 * their connection (3.1.1 Clean Session 0, v5 Session Expiry > 0) and for
 * retained messages; clean sessions never reach it. A payload is stored once
 * however many queues hold it, and its row goes with the last reference
 * (DESIGN.md 3).
 *
 * Changes are not written when they happen: they are recorded as ops, in
 * order, and applied at a commit point. That lets a change cancel
 * an earlier one that was never applied: a delivery acknowledged before its
 * insert was applied costs no statement at all, and neither does its
 * message once the last reference goes (the common case for online
 * subscribers: four statements per message become none).
 *
 * Epochs: every op belongs to the open epoch. `commit()` applies every op and
 * commits; `commitKeeping(k)` applies and commits all but the newest k
 * epochs, so the ops of the last k turns stay cancellable that much longer. The broker holds each acknowledgement back until the
 * epoch it depends on is committed (`committedEpoch`), so "acknowledged"
 * still means "stored" (or delivered and acknowledged, which needs nothing).
 * When nothing waits for a commit (acknowledgements are not held), the
 * window is a number of ops instead (`commitKeeping(Infinity, maxOps)`):
 * only the oldest epochs beyond it are applied.
 *
 * A cancelled op lets go of its object at once, so a window of many ops pins
 * no payloads of finished deliveries.
 *
 * Delivery and message ops read the live objects when applied (the latest
 * state of a delivery is what gets written, however often it changed);
 * session, subscription, inbound and retained ops carry their values.
 */
import type { Delivery, Message } from "./message.ts";
import type { Session } from "./session.ts";
import type { Snapshot, Store, StoredSession, StoredSubscription } from "./store.ts";
import type { Subscription } from "./topic-tree.ts";

const enum K {
  AddMessage,
  DeleteMessage,
  SaveDelivery,
  DeleteDelivery,
  SaveSession,
  DeleteSession,
  SaveSubscription,
  DeleteSubscription,
  SetRetained,
  DeleteRetained,
  AddInbound,
  DeleteInbound,
}

/** One recorded change. `dead` ops were cancelled before being applied. */
class Op {
  dead = false;
  constructor(
    readonly kind: K,
    /** Client ID, topic, or message id (DeleteMessage), by kind. */
    readonly key: string | number,
    /** The live object or the values to write, by kind (null once cancelled). */
    public ref: Message | Delivery | StoredSession | StoredSubscription | number | string | null,
  ) {}

  cancel(): void {
    this.dead = true;
    this.ref = null;
  }
}

export class Journal {
  private ops: Op[] = [];
  /** Closed epochs not yet applied, oldest first (consecutive, the newest being the last one closed). */
  private kept: Op[][] = [];
  /** Ops in `kept` not done yet (cancelled ones included). */
  private keptOps = 0;
  /** Ops of `kept[0]` before this index are done (cancelled, and dropped by the op window). */
  private keptHead = 0;
  /** The epoch new ops belong to. */
  openEpoch = 1;
  /** Every op of this epoch and before is committed. */
  committedEpoch = 0;
  /** Ops written to the store, and ops cancelled before they were (for stats). */
  written = 0;
  cancelled = 0;
  /** Pending inbound QoS 2 adds, by "clientId\0packetId", so a PUBREL before the commit cancels the pair. */
  private readonly pendingInbound = new Map<string, Op>();

  constructor(readonly store: Store) {}

  /** Ops recorded and not yet committed (acknowledgements must wait for them). */
  get pending(): boolean {
    return this.ops.length > 0 || this.keptOps > 0;
  }

  /** The open epoch has ops (this turn changed durable state). */
  get openHasOps(): boolean {
    return this.ops.length > 0;
  }

  /** Ops recorded and not applied yet (cancelled ones included), in every epoch. */
  get unappliedOps(): number {
    return this.ops.length + this.keptOps;
  }

  /** Record an op (pending until a commit point applies it). */
  private push(kind: K, key: string | number, ref: Op["ref"]): Op {
    const op = new Op(kind, key, ref);
    this.ops.push(op);
    return op;
  }

  // ---- recording ---------------------------------------------------------

  /** Write a persistent session's row; a session that is no longer persistent leaves the store. */
  saveSession(s: Session): void {
    if (!s.persistent || s.ended) {
      this.deleteSession(s);
      return;
    }
    const row: StoredSession = {
      clientId: s.id,
      version: s.version,
      expiryInterval: s.expiryInterval,
      expiresAt: s.expiresAt,
      connected: s.conn !== null,
      will: s.will,
      willAt: s.willAt,
      username: s.username,
    };
    this.push(K.SaveSession, s.id, row);
    if (!s.stored) {
      // Becoming stored: write what it already holds.
      s.stored = true;
      for (const sub of s.subs.values()) this.saveSubscription(s, sub);
      for (const d of s.inflight.ordered()) this.saveDelivery(s, d);
      for (const d of s.queue.toArray()) this.saveDelivery(s, d);
      for (const id of s.inboundQos2) this.addInbound(s, id);
    }
  }

  /** Remove a session's rows (the store deletes its deliveries with it) and release its message references. */
  deleteSession(s: Session): void {
    if (!s.stored) return;
    s.stored = false;
    this.push(K.DeleteSession, s.id, null);
    for (const d of s.inflight.ordered()) this.forgetDelivery(d);
    for (const d of s.queue.toArray()) this.forgetDelivery(d);
    const prefix = `${s.id}\u0000`;
    for (const [k, op] of this.pendingInbound) {
      if (k.startsWith(prefix)) {
        op.cancel();
        this.pendingInbound.delete(k);
      }
    }
  }

  saveSubscription(s: Session, sub: Subscription<Session>): void {
    if (!s.stored) return;
    this.push(K.SaveSubscription, s.id, { clientId: s.id, filter: sub.filter, qos: sub.qos, noLocal: sub.noLocal, rap: sub.rap, rh: sub.rh, subId: sub.subId });
  }

  deleteSubscription(s: Session, filter: string): void {
    if (s.stored) this.push(K.DeleteSubscription, s.id, filter);
  }

  /** Insert or update a delivery row of a stored session (the latest state is written when applied). */
  saveDelivery(s: Session, d: Delivery): void {
    if (!s.stored) return;
    if (!d.stored) {
      this.refMessage(d.msg);
      d.stored = true;
    }
    if (d.jop === null) d.jop = this.push(K.SaveDelivery, s.id, d);
  }

  /** A delivery is finished (acknowledged, expired, too large): drop its row, or its insert if never applied. */
  dropDelivery(s: Session, d: Delivery): void {
    if (!d.stored) return;
    if (d.row) this.push(K.DeleteDelivery, s.id, d.seq);
    this.forgetDelivery(d);
  }

  addInbound(s: Session, packetId: number): void {
    if (!s.stored) return;
    this.pendingInbound.set(`${s.id}\u0000${packetId}`, this.push(K.AddInbound, s.id, packetId));
  }

  deleteInbound(s: Session, packetId: number): void {
    if (!s.stored) return;
    const key = `${s.id}\u0000${packetId}`;
    const add = this.pendingInbound.get(key);
    if (add !== undefined) {
      // PUBREL before the PUBLISH's id was applied: neither is written.
      add.cancel();
      this.pendingInbound.delete(key);
      return;
    }
    this.push(K.DeleteInbound, s.id, packetId);
  }

  /** `msg` became its topic's retained message, replacing `prev`. */
  setRetained(msg: Message, prev: Message | null): void {
    this.refMessage(msg);
    this.push(K.SetRetained, msg.topic, msg);
    if (prev !== null) this.unrefMessage(prev);
  }

  /** The retained message `prev` of `topic` was deleted (or expired). */
  deleteRetained(topic: string, prev: Message): void {
    this.push(K.DeleteRetained, topic, null);
    this.unrefMessage(prev);
  }

  /** A restored row references `m` (restore counts references itself). */
  countRestoredRef(m: Message): void {
    m.storeRefs++;
  }

  /** Where commit times (µs) go (metrics.ts), or null. */
  commitLatency: { observe(us: number): void } | null = null;

  load(): Snapshot {
    return this.store.load();
  }

  // ---- commit points -----------------------------------------------------

  /** Apply every recorded op and commit (one group commit). */
  commit(): void {
    this.commitKeeping(0);
  }

  /**
   * A commit point that keeps the newest `keep` epochs (the open one
   * included) unapplied and cancellable, as long as they hold at most
   * `maxOps` ops: the older ones are applied and committed, and a new epoch
   * opens.
   */
  commitKeeping(keep: number, maxOps = Infinity): void {
    this.applyKeeping(keep, maxOps);
    const t0 = performance.now();
    this.store.commit();
    this.commitLatency?.observe((performance.now() - t0) * 1000);
    this.committedEpoch = this.openEpoch - 1 - this.kept.length;
  }

  /**
   * An epoch boundary without a commit ("interval" durability, where a timer
   * commits): ops older than the newest `keep` epochs, or beyond the newest
   * `maxOps` ops, are written into the store's open transaction, so they do
   * not pile up in memory.
   */
  applyKeeping(keep: number, maxOps = Infinity): void {
    // With keep > 0, empty epochs are kept too, so that `kept` stays consecutive.
    if (this.ops.length > 0 || keep > 0) {
      this.kept.push(this.ops);
      this.keptOps += this.ops.length;
    }
    this.ops = [];
    const kept = this.kept;
    let n = 0;
    while (n < kept.length && (kept.length - n > keep || this.keptOps > maxOps)) {
      const e = kept[n++]!;
      this.keptOps -= e.length - this.keptHead;
      this.apply(e, this.keptHead);
      this.keptHead = 0;
    }
    if (maxOps !== Infinity) n = this.dropCancelledHead(n);
    if (n > 0) kept.splice(0, n);
    this.openEpoch++;
  }

  /**
   * The op window: cancelled ops at the head of the oldest kept epoch (from
   * epoch `n` on) are done with, so they go now rather than when the window
   * is full, and do not outlive their turn by much (measured: holding them
   * until 65536 ops had piled up cost 10-30% on QoS 1 pairs, in GC). Stops at
   * the first live op. Returns the number of epochs now finished.
   */
  private dropCancelledHead(n: number): number {
    const kept = this.kept;
    while (n < kept.length) {
      const e = kept[n]!;
      let i = this.keptHead;
      while (i < e.length && e[i]!.dead) i++;
      const dropped = i - this.keptHead;
      this.cancelled += dropped;
      this.keptOps -= dropped;
      if (i < e.length) {
        this.keptHead = i;
        break;
      }
      this.keptHead = 0;
      n++;
    }
    return n;
  }

  close(): void {
    this.commit();
    this.store.close();
  }

  /** Apply the live ops of one epoch, from `from` on (the ops before it are done). */
  private apply(ops: Op[], from: number): void {
    let written = 0;
    for (let i = from; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.dead) continue;
      this.write(op.kind, op.key, op.ref);
      written++;
    }
    this.written += written;
    this.cancelled += ops.length - from - written;
  }

  /** Write one change to the store. */
  private write(kind: K, key: string | number, ref: Op["ref"]): void {
    const st = this.store;
    switch (kind) {
      case K.AddMessage: {
        const m = ref as Message;
        m.jop = null;
        m.storeId = st.addMessage({ topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, props: m.props, expiresAt: m.expiresAt, origin: m.origin });
        break;
      }
      case K.DeleteMessage:
        st.deleteMessage(key as number);
        break;
      case K.SaveDelivery: {
        const d = ref as Delivery;
        d.jop = null;
        d.row = true;
        st.saveDelivery({
          clientId: key as string,
          seq: d.seq,
          messageId: d.msg.storeId,
          packetId: d.packetId,
          qos: d.qos,
          retain: d.retain,
          released: d.released,
          subIds: d.subIds === null ? null : [...d.subIds],
        });
        break;
      }
      case K.DeleteDelivery:
        st.deleteDelivery(key as string, ref as number);
        break;
      case K.SaveSession:
        st.saveSession(ref as StoredSession);
        break;
      case K.DeleteSession:
        st.deleteSession(key as string);
        break;
      case K.SaveSubscription:
        st.saveSubscription(ref as StoredSubscription);
        break;
      case K.DeleteSubscription:
        st.deleteSubscription(key as string, ref as string);
        break;
      case K.SetRetained: {
        // 0: the message was replaced before its insert was applied; a later op sets the topic.
        const id = (ref as Message).storeId;
        if (id !== 0) st.setRetained(key as string, id);
        break;
      }
      case K.DeleteRetained:
        st.deleteRetained(key as string);
        break;
      case K.AddInbound:
        this.pendingInbound.delete(`${key}\u0000${ref}`);
        st.addInbound(key as string, ref as number);
        break;
      case K.DeleteInbound:
        st.deleteInbound(key as string, ref as number);
        break;
    }
  }

  // ---- references --------------------------------------------------------

  /** The journal lets go of a delivery: its pending write is cancelled, its message reference released. */
  private forgetDelivery(d: Delivery): void {
    if (!d.stored) return;
    d.stored = false;
    d.row = false;
    if (d.jop !== null) {
      d.jop.cancel();
      d.jop = null;
    }
    this.unrefMessage(d.msg);
  }

  /** Messages are stored once and shared; the first reference records the insert. */
  private refMessage(m: Message): void {
    if (m.storeId === 0 && m.jop === null) m.jop = this.push(K.AddMessage, "", m);
    m.storeRefs++;
  }

  /** The last reference deletes the row, or cancels its insert if it was never applied. */
  private unrefMessage(m: Message): void {
    if (--m.storeRefs > 0) return;
    m.storeRefs = 0;
    if (m.jop !== null) {
      m.jop.cancel();
      m.jop = null;
    } else if (m.storeId !== 0) {
      this.push(K.DeleteMessage, m.storeId, null);
      m.storeId = 0;
    }
  }
}
