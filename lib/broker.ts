/**
 * @module broker
 * `Broker` is the session manager and the single owner of state on the event
 * loop: sessions by Client ID, live connections, the subscription trie and
 * retained messages. It attaches and detaches connections to sessions
 * (takeover lives in handlers/connect.ts and uses these), routes messages to
 * sessions, publishes wills, runs the housekeeping tick and ends each batch
 * with one flush of every connection that has output.
 */
import { Authenticator } from "./auth.ts";
import type { Config } from "./config.ts";
import { type Connection, State } from "./connection.ts";
import { log } from "./log.ts";
import { Delivery, Message, type QoS } from "./message.ts";
import { PUBREL, writeAck, writePublish } from "./protocol/fast-codec.ts";
import { RC } from "./protocol/reason-codes.ts";
import { RetainedStore } from "./retained.ts";
import { Session, type Will } from "./session.ts";
import { type SharedGroup, type Subscription, TopicTree } from "./topic-tree.ts";

/** Close a socket that was ended but never closed by its peer after this long. */
const LINGER_MS = 5000;

export interface BrokerStats {
  connections: number;
  clients: number;
  sessions: number;
  subscriptions: number;
  retained: number;
  messagesIn: number;
  messagesOut: number;
  /** Deliveries dropped: full queues, QoS 0 to a client that does not read, too large for the client. */
  dropped: number;
}

export class Broker {
  readonly limits: Config["limits"];
  readonly sessions = new Map<string, Session>();
  readonly connections = new Set<Connection>();
  readonly topics = new TopicTree<Session>();
  readonly retained = new RetainedStore();
  readonly auth: Authenticator;
  /** Connections with output to flush at the end of this batch. */
  dirty: Connection[] = [];
  /** Sessions without a connection that have an expiry or a delayed will pending. */
  private readonly offline = new Set<Session>();
  /** Connections currently attached to a session. */
  clients = 0;
  messagesIn = 0;
  messagesOut = 0;
  dropped = 0;
  private lastDropLog = 0;

  // Routing scratch, reused for every message (no allocation per route).
  private routeEpoch = 0;
  private readonly matchBuf: Subscription<Session>[] = [];
  private readonly groupBuf: SharedGroup<Session>[] = [];
  private readonly targets: Session[] = [];
  private readonly tQos: QoS[] = [];
  private readonly tRap: boolean[] = [];
  private readonly tIds: (readonly number[] | null)[] = [];

  constructor(
    readonly config: Config,
    /** The clock; injected so tests can drive `tick()`. */
    readonly now: () => number = Date.now,
  ) {
    this.limits = config.limits;
    this.auth = new Authenticator(config.auth);
  }

  // ---- connections -------------------------------------------------------

  /** A socket was accepted. */
  adopt(conn: Connection): boolean {
    if (this.connections.size >= this.limits.maxConnections) {
      log.warn("connection limit reached; refusing a connection", { limit: this.limits.maxConnections });
      return false;
    }
    this.connections.add(conn);
    return true;
  }

  /** The socket is gone for good. */
  forget(conn: Connection): void {
    this.connections.delete(conn);
  }

  /**
   * Attach a connection to its session. Reconnecting cancels a pending
   * delayed will ([MQTT-3.1.3-9]) and stops the expiry clock
   * ([MQTT-4.1.0-1] 5: never discard state while connected).
   */
  attach(conn: Connection, session: Session): void {
    session.conn = conn;
    conn.session = session;
    session.expiresAt = 0;
    session.willAt = 0;
    this.offline.delete(session);
    this.clients++;
  }

  /**
   * Detach a closing connection from its session. Guarded so that a stale
   * connection (one that was taken over) can never touch the session that
   * now belongs to its successor: only `session.conn === conn` detaches.
   */
  detach(conn: Connection, publishWill: boolean): void {
    const s = conn.session;
    conn.session = null;
    if (s === null || s.conn !== conn) return;
    s.conn = null;
    this.clients--;
    const now = this.now();
    const will = s.will;
    if (will !== null) {
      if (!publishWill) {
        s.will = null; // normal DISCONNECT discards it ([MQTT-3.1.2-10], [MQTT-3.14.4-3])
      } else if (will.delay > 0 && s.persistent) {
        // v5 Will Delay: due after the delay or at session end, whichever first ([MQTT-3.1.2-8] 5).
        s.willAt = now + will.delay * 1000;
      } else {
        s.will = null;
        this.publishWill(will, s.id);
      }
    }
    if (!s.persistent) {
      this.endSession(s);
      return;
    }
    s.expiresAt = s.expiryInterval === 0xffffffff ? 0 : now + s.expiryInterval * 1000;
    if (s.expiresAt !== 0 || s.willAt !== 0) this.offline.add(s);
  }

  /**
   * Discard a session: its subscriptions leave the trie, its queue is
   * dropped, a will still pending is published first ([MQTT-3.1.2-8] 5).
   * Retained messages are not session state and stay ([MQTT-3.1.2.7]).
   */
  endSession(s: Session): void {
    if (s.ended) return;
    if (s.will !== null && s.willAt !== 0) {
      const will = s.will;
      s.will = null;
      this.publishWill(will, s.id);
    }
    s.ended = true;
    s.willAt = 0;
    for (const sub of s.subs.values()) this.topics.remove(sub);
    s.subs.clear();
    s.queue.clear();
    s.inflight.clear();
    s.inboundQos2.clear();
    this.offline.delete(s);
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
  }

  /** Publish a will as an application message from `clientId`. */
  publishWill(will: Will, clientId: string): void {
    const now = this.now();
    const msg = new Message(will.topic, will.payload, will.qos, will.retain, will.props, will.expiry >= 0 ? now + will.expiry * 1000 : 0, clientId);
    log.debug("publishing will", { client: clientId, topic: will.topic });
    this.publish(msg);
  }

  /** Take ownership of a message: retain it if flagged, then route it. Returns the matching sessions. */
  publish(msg: Message): number {
    this.messagesIn++;
    if (msg.retain) this.retain(msg);
    return this.route(msg);
  }

  /** [MQTT-3.3.1-5]: replace; empty payload deletes and is not stored ([MQTT-3.3.1-10] 3.1.1, [MQTT-3.3.1-6] 5). */
  private retain(msg: Message): void {
    if (msg.payload.length === 0) {
      this.retained.delete(msg.topic);
      return;
    }
    if (this.retained.size >= this.limits.maxRetainedMessages && this.retained.get(msg.topic) === null) {
      this.countDrop("retained message limit reached; not retained", msg.topic);
      return;
    }
    this.retained.set(msg);
  }

  // ---- routing -----------------------------------------------------------

  /**
   * Deliver `msg` to every session with a matching subscription
   * ([MQTT-4.5.0-1]). A session with several matching subscriptions gets one
   * copy at the highest granted QoS with all their Subscription Identifiers
   * (3.1.1 [MQTT-3.3.5-1], 5 [MQTT-3.3.4-2], [MQTT-3.3.4-3]). Each shared group
   * gets one copy for one member. Returns how many sessions it reached.
   */
  route(msg: Message): number {
    const subs = this.matchBuf;
    const groups = this.groupBuf;
    const n = this.topics.match(msg.topic, subs, groups);
    if (n === 0 && groups.length === 0) return 0;
    const epoch = ++this.routeEpoch;
    const targets = this.targets;
    const tQos = this.tQos;
    const tRap = this.tRap;
    const tIds = this.tIds;
    targets.length = 0;
    for (let i = 0; i < n; i++) {
      const sub = subs[i]!;
      const s = sub.session;
      if (sub.noLocal && s.id === msg.origin) continue; // [MQTT-3.8.3-3]
      if (s.routeMark !== epoch) {
        s.routeMark = epoch;
        s.routeIndex = targets.length;
        tQos[targets.length] = sub.qos;
        tRap[targets.length] = sub.rap;
        tIds[targets.length] = sub.subId !== 0 ? [sub.subId] : null;
        targets.push(s);
      } else {
        const k = s.routeIndex;
        if (sub.qos > tQos[k]!) tQos[k] = sub.qos;
        if (sub.rap) tRap[k] = true;
        if (sub.subId !== 0) tIds[k] = tIds[k] === null ? [sub.subId] : [...tIds[k]!, sub.subId];
      }
    }
    const mq = msg.qos;
    const count = targets.length;
    for (let i = 0; i < count; i++) {
      const q = tQos[i]!;
      // Delivered QoS = min(published, granted) (3.1.1 [MQTT-3.8.4-6], 5 [MQTT-3.8.4-8]);
      // RETAIN is 0 on live forwarding unless Retain As Published (3.1.1 [MQTT-3.3.1-9], 5 [MQTT-3.3.1-12/13]).
      this.deliver(targets[i]!, msg, q < mq ? q : mq, tRap[i]! && msg.retain, tIds[i]!);
    }
    for (let i = 0; i < groups.length; i++) this.deliverShared(groups[i]!, msg);
    return count + groups.length;
  }

  /** One member per shared group, round-robin, preferring connected members with room. */
  private deliverShared(g: SharedGroup<Session>, msg: Message): void {
    const m = g.members;
    const len = m.length;
    if (len === 0) return;
    let pick: Subscription<Session> | null = null;
    let fallback: Subscription<Session> | null = null;
    for (let i = 0; i < len; i++) {
      const sub = m[(g.next + i) % len]!;
      const c = sub.session.conn;
      if (c !== null && c.state === State.Active) {
        if (sub.session.inflight.count < c.sendWindow || msg.qos === 0 || sub.qos === 0) {
          pick = sub;
          g.next = (g.next + i + 1) % len;
          break;
        }
        fallback ??= sub;
      } else if (fallback === null && sub.session.persistent) {
        fallback = sub;
      }
    }
    pick ??= fallback;
    if (pick === null) return;
    if (pick === fallback) g.next = (pick.slot + 1) % len;
    this.deliver(pick.session, msg, pick.qos < msg.qos ? pick.qos : msg.qos, pick.rap && msg.retain, pick.subId !== 0 ? [pick.subId] : null);
  }

  /**
   * Deliver to one session: QoS 0 straight out (or dropped if the session is
   * offline or not reading); QoS 1/2 into the in-flight window if it has room
   * and nothing is queued ahead (order per topic, [MQTT-4.6.0-5]), else queued.
   */
  deliver(s: Session, msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | null): void {
    const conn = s.conn;
    if (conn !== null) {
      if (qos === 0) {
        if (conn.out.len > this.limits.maxPendingOutput) {
          this.countDrop("client is not reading; QoS 0 message dropped", s.id);
          return;
        }
        if (writePublish(conn.out, msg, conn.v5, 0, 0, false, retain, subIds, 0, true, conn.maxOutPacket, this.now())) {
          this.messagesOut++;
          conn.markDirty();
        } else {
          this.countDrop("message larger than the client's Maximum Packet Size", s.id); // [MQTT-3.1.2-25]
        }
        return;
      }
      const d = new Delivery(msg, qos, retain, subIds);
      if (s.queue.length === 0 && s.inflight.count < conn.sendWindow) {
        this.sendNew(s, conn, d, this.now());
        return;
      }
      this.enqueue(s, d);
      return;
    }
    // Offline: QoS 1/2 wait in the session ([MQTT-3.1.2-5] 3.1.1); QoS 0 is not queued.
    if (qos > 0 && s.persistent) this.enqueue(s, new Delivery(msg, qos, retain, subIds));
  }

  private enqueue(s: Session, d: Delivery): void {
    const q = s.queue;
    if (q.length >= this.limits.maxQueuedMessages || q.bytes + d.msg.payload.length > this.limits.maxQueuedBytes) {
      s.dropped++;
      this.countDrop("session queue full; message dropped", s.id);
      return;
    }
    q.push(d);
  }

  /** Give a delivery a packet id, put it in flight and encode it. */
  private sendNew(s: Session, conn: Connection, d: Delivery, now: number): void {
    d.packetId = s.inflight.nextId();
    if (!writePublish(conn.out, d.msg, conn.v5, d.qos, d.packetId, false, d.retain, d.subIds, 0, true, conn.maxOutPacket, now)) {
      this.countDrop("message larger than the client's Maximum Packet Size", s.id); // [MQTT-3.1.2-25]
      return;
    }
    d.seq = s.seq++;
    s.inflight.add(d);
    this.messagesOut++;
    conn.markDirty();
  }

  /** Move queued deliveries into the freed in-flight window. Expired ones are dropped ([MQTT-3.3.2-5]). */
  drainQueue(s: Session): void {
    const conn = s.conn;
    if (conn === null || conn.state !== State.Active) return;
    const q = s.queue;
    if (q.length === 0) return;
    const now = this.now();
    while (q.length > 0 && s.inflight.count < conn.sendWindow) {
      const d = q.shift()!;
      if (d.msg.expired(now)) continue;
      this.sendNew(s, conn, d, now);
    }
  }

  /**
   * After CONNACK on a resumed session: re-send unacknowledged PUBLISHes with
   * DUP = 1 and PUBRELs, with their original packet ids and in their original
   * order (3.1.1 [MQTT-4.4.0-1], 5 [MQTT-4.4.0-1], [MQTT-3.3.1-1]); then the queue.
   */
  resume(s: Session, conn: Connection): void {
    const now = this.now();
    for (const d of s.inflight.ordered()) {
      if (d.released) writeAck(conn.out, PUBREL, d.packetId, 0, conn.v5);
      else writePublish(conn.out, d.msg, conn.v5, d.qos, d.packetId, true, d.retain, d.subIds, 0, true, conn.maxOutPacket, now);
    }
    if (s.inflight.count > 0) conn.markDirty();
    this.drainQueue(s);
  }

  /** Deliver the retained messages matching a new subscription, RETAIN = 1 ([MQTT-3.3.1-6] 3.1.1, [MQTT-3.3.1-9] 5). */
  sendRetained(s: Session, sub: Subscription<Session>): void {
    const msgs = this.retained.match(sub.matchFilter, this.now());
    const ids = sub.subId !== 0 ? [sub.subId] : null;
    for (const m of msgs) this.deliver(s, m, m.qos < sub.qos ? m.qos : sub.qos, true, ids);
  }

  private countDrop(why: string, client: string): void {
    this.dropped++;
    const now = this.now();
    if (now - this.lastDropLog > 5000) {
      this.lastDropLog = now;
      log.warn(why, { client, droppedTotal: this.dropped });
    }
  }

  // ---- batches and time --------------------------------------------------

  /**
   * End a batch (one data callback, timer or close): write every dirty
   * connection's output once. (The store's group commit goes here, before
   * the writes, so no ack leaves before what it acknowledges is committed.)
   */
  endBatch(): void {
    const d = this.dirty;
    if (d.length === 0) return;
    const now = this.now();
    for (let i = 0; i < d.length; i++) d[i]!.flush(now);
    d.length = 0;
  }

  /**
   * Housekeeping, about twice a second: connect timeouts, keep alive
   * (1.5 x, [MQTT-3.1.2-24] 3.1.1 / [MQTT-3.1.2-22] 5), drain timeouts,
   * sockets that linger after close, delayed wills and session expiry
   * ([MQTT-4.1.0-2] 5).
   */
  tick(now = this.now()): void {
    const lim = this.limits;
    for (const c of this.connections) {
      switch (c.state) {
        case State.New:
        case State.Connecting:
          if (now - c.openedAt > lim.connectTimeoutMs) c.close(undefined, false, "no CONNECT in time");
          break;
        case State.Active:
          if (c.keepalive > 0 && now - c.lastRx > c.keepalive * 1500) {
            c.close(RC.KEEP_ALIVE_TIMEOUT, true, "keep alive timeout");
          } else if (c.waitingDrain && now - c.drainSince > lim.drainTimeoutMs) {
            log.warn("client does not read its output; disconnecting", { client: c.clientId });
            c.close(undefined, true, "drain timeout");
            c.socket.terminate();
          }
          break;
        case State.Closed:
          if (now - c.closedAt > LINGER_MS) c.socket.terminate();
          break;
      }
    }
    for (const s of this.offline) {
      if (s.willAt !== 0 && now >= s.willAt && s.will !== null) {
        const will = s.will;
        s.will = null;
        s.willAt = 0;
        this.publishWill(will, s.id);
      }
      if (s.expiresAt !== 0 && now >= s.expiresAt) {
        log.debug("session expired", { client: s.id });
        this.endSession(s);
      } else if (s.expiresAt === 0 && s.willAt === 0) {
        this.offline.delete(s);
      }
    }
    this.endBatch();
  }

  stats(): BrokerStats {
    return {
      connections: this.connections.size,
      clients: this.clients,
      sessions: this.sessions.size,
      subscriptions: this.topics.count,
      retained: this.retained.size,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      dropped: this.dropped,
    };
  }

  /** Close every connection (v5: DISCONNECT 0x8B). Wills are not published on shutdown. */
  closeAll(): void {
    for (const c of this.connections) {
      if (c.state !== State.Closed) {
        c.normalDisconnect = true;
        c.close(RC.SERVER_SHUTTING_DOWN, false, "server shutting down");
      }
    }
    this.endBatch();
  }
}
