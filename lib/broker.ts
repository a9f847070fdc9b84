/**
 * @module broker
 * `Broker` is the session manager and the single owner of state on the event
 * loop: sessions by Client ID, live connections, subscriptions (through the
 * router's trie), retained messages. Every change that must keep several of
 * them in step is one method here — open and end a session, attach and
 * detach a connection, subscribe and unsubscribe, publish, fire a will — and
 * handlers, restore and housekeeping call those methods; the collections
 * themselves are private (read-only views are exported for stats and tests).
 *
 * Routing is router.ts, per-session delivery outbox.ts, persistence
 * journal.ts, the end of each batch batch.ts, timers housekeeping.ts.
 */
import type { AccessControl } from "./acl.ts";
import type { BridgeStatus } from "./bridge/bridge.ts";
import { loadAccessControl } from "./acl-file.ts";
import { Admission, Refusal } from "./admission.ts";
import { Authenticator } from "./auth.ts";
import type { Config } from "./config.ts";
import { State } from "./conn-state.ts";
import { BatchEnd } from "./batch.ts";
import type { BrokerStats, SubscribeRequest } from "./broker-types.ts";
import { ClientIdPatterns } from "./client-id-patterns.ts";
import type { Connection } from "./connection.ts";
import { DropCounters, Drop } from "./drops.ts";
import { BrokerEvents } from "./events.ts";
import { Metrics } from "./metrics.ts";
import type { SysPublisher } from "./sys.ts";
import { type AuthMethod, defaultAuthMethods } from "./enhanced-auth.ts";
import { dispatch } from "./handlers/index.ts";
import { tick } from "./housekeeping.ts";
import { Journal } from "./journal.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { log } from "./log.ts";
import { type Delivery, Message } from "./message.ts";
import { Outbox } from "./outbox.ts";
import { ConnackEncoder } from "./protocol/connack.ts";
import { RC } from "./protocol/reason-codes.ts";
import { restore } from "./restore.ts";
import { RetainedSender } from "./retained-sender.ts";
import { RetainedStore } from "./retained.ts";
import { Routed, Router } from "./router.ts";
import { BRIDGE_SESSION_PREFIX, Session } from "./session.ts";
import { publishWill, takeShutdownWills } from "./wills.ts";
import { MemoryStore, type Store } from "./store.ts";
import { type SharedGroup, Subscription } from "./topic-tree.ts";

export type { BrokerStats, SubscribeRequest } from "./broker-types.ts";

export class Broker {
  readonly limits: Config["limits"];
  private readonly sessionMap = new Map<string, Session>();
  private readonly connectionSet = new Set<Connection>();
  private readonly retainedStore = new RetainedStore();
  /** User names and passwords (replaced by a reload). */
  auth: Authenticator;
  /** Topic access rules (replaced by a reload; see setIdentity). */
  acl: AccessControl;
  /** Success CONNACK encoder with our v5 capabilities pre-encoded. */
  readonly connack: ConnackEncoder;
  /** Enhanced authentication methods by name (v5 AUTH); register more with `set`. */
  readonly authMethods: Map<string, AuthMethod>;
  /** Sessions without a connection that have an expiry or a delayed will pending (swept by housekeeping). */
  private readonly offlineSet = new Set<Session>();
  /** Online sessions whose full queue holds publishers back (swept by housekeeping). */
  private readonly congestedSet = new Set<Session>();
  /** Durable state of persistent sessions and retained messages, written at commit points (journal.ts). */
  readonly journal: Journal;
  /** Per-session delivery: in-flight window, queue, backpressure, resend. */
  readonly outbox: Outbox;
  /** Retained messages for new subscriptions, paced across turns. */
  readonly retainedSender: RetainedSender;
  private readonly router: Router;
  /** The dispatch table every connection hands its frames to (handlers/index.ts). */
  readonly dispatch = dispatch;
  /** Concurrent connections allowed: limits.maxConnections, or derived from the open-file limit (fd-limit.ts). */
  readonly maxConnections: number;
  /** Messages dropped for a subscriber, by cause. */
  readonly drops: DropCounters;
  /** Who gets a socket at accept: connection bounds, unauthenticated sockets, connect rate (admission.ts). */
  readonly admission: Admission;
  /** Times a client was throttled for its publish rate (connection.ts). */
  throttled = 0;
  /** Subscribers found stuck (publishers held back by them for limits.maxPublisherStallMs, then released). */
  stalls = 0;
  /** Connections currently attached to a session. */
  clients = 0;
  /** Messages and bytes by QoS, takeovers, auth failures, commit latency, loop lag (metrics.ts). */
  readonly metrics = new Metrics();
  /** Connect, disconnect, refusal and takeover observers (events.ts): the info log, the dashboard. */
  readonly events = new BrokerEvents();
  /** The $SYS publisher (sys.ts), once started; bridges add their topics to it. */
  sys: SysPublisher | null = null;
  /** The state and counters of each bridge (set by bridge/manager.ts), for metrics and the API. */
  bridgeStatus: () => BridgeStatus[] = () => [];
  /**
   * Sees every published message while a dashboard stream is open
   * (http/live.ts), else null: the hot path pays one null check.
   */
  tap: ((msg: Message) => void) | null = null;
  /** Every listener, in config order (set by server.ts once they are bound), for metrics and the API. */
  listenerInfos: readonly ListenerInfo[] = [];
  /** The broker is stopping: /healthz says 503, nothing new is accepted. */
  shuttingDown = false;
  /** Serial of the last message published (Message.serial). */
  serial = 0;
  /** The end of every batch: retained pacing, commit point, flushes (batch.ts). */
  readonly batch: BatchEnd;

  constructor(
    /** Replaced as a whole by a reload (reload.ts); parts that apply at start only stay as they were. */
    public config: Config,
    store: Store = new MemoryStore(),
    /** The clock; injected so tests can drive `tick()`. */
    readonly now: () => number = Date.now,
    /** The connection limit in force (server.ts derives it from the open-file limit when not configured). */
    maxConnections?: number,
  ) {
    this.limits = config.limits;
    this.journal = new Journal(store);
    this.journal.commitLatency = this.metrics.commit;
    this.outbox = new Outbox(this);
    this.retainedSender = new RetainedSender(this);
    this.router = new Router(this.outbox, this.retainedSender);
    this.drops = new DropCounters(now);
    this.auth = new Authenticator(config.auth);
    this.acl = loadAccessControl(config.auth);
    this.authMethods = defaultAuthMethods(config.auth);
    this.connack = new ConnackEncoder({
      receiveMaximum: config.limits.receiveMaximum,
      maximumPacketSize: config.limits.maxPacketSize,
      topicAliasMaximum: config.limits.topicAliasMaximum,
    });
    this.batch = new BatchEnd(this, config.persistence.durability === "ack", store.durable);
    this.maxConnections = maxConnections ?? config.limits.maxConnections ?? 100_000;
    this.admission = new Admission(config.limits, this.maxConnections, now);
  }

  /** Sessions by Client ID (read only: change them through the methods below). */
  get sessions(): ReadonlyMap<string, Session> {
    return this.sessionMap;
  }

  /** Live and closing connections (read only). */
  get connections(): ReadonlySet<Connection> {
    return this.connectionSet;
  }

  /** Sessions without a connection that have an expiry or a delayed will pending (read only). */
  get offline(): ReadonlySet<Session> {
    return this.offlineSet;
  }

  /** Online sessions whose full queue holds publishers back (read only). */
  get congested(): ReadonlySet<Session> {
    return this.congestedSet;
  }

  /** `s` holds publishers back (or no longer does): housekeeping watches it for the stall bound. */
  setCongested(s: Session, on: boolean): void {
    if (on) this.congestedSet.add(s);
    else this.congestedSet.delete(s);
  }

  /** `s` has nothing pending offline (no expiry, no delayed will): housekeeping stops sweeping it. */
  settled(s: Session): void {
    this.offlineSet.delete(s);
  }

  /** Deliveries dropped, all causes. */
  get dropped(): number {
    return this.drops.total;
  }

  // ---- connections -------------------------------------------------------

  /** May a socket from `address` be accepted on `listener`? (admission.ts; a refusal is counted and logged there.) */
  admit(listener: ListenerInfo, address: string): boolean {
    if (this.shuttingDown) return false;
    return this.admission.admit(listener, address, this.connectionSet.size);
  }

  /** A connection was created for an admitted socket. */
  adopt(conn: Connection): void {
    this.connectionSet.add(conn);
    conn.listener.connections++;
    conn.listener.accepted++;
    this.admission.opened(conn);
  }

  /** The socket is gone for good. */
  forget(conn: Connection): void {
    if (!this.connectionSet.delete(conn)) return;
    conn.listener.connections--;
    this.admission.authenticated(conn); // uncounted if it never was
  }

  // ---- sessions ----------------------------------------------------------

  /**
   * The session an accepted CONNECT gets. Takeover first: a live connection
   * with the same Client ID is closed whatever the clean flag (3.1.1
   * [MQTT-3.1.4-2], 5 [MQTT-3.1.4-3]; v5 gets DISCONNECT 0x8E, its will
   * follows the normal rules). Then Clean Session / Clean Start discards or
   * resumes (3.1.1 [MQTT-3.1.2-4/6], 5 [MQTT-3.1.2-4/5/6]).
   */
  openSession(conn: Connection, clientId: string, clean: boolean): { session: Session; present: boolean } {
    let session = this.sessionMap.get(clientId);
    const old = session?.conn;
    if (old && old !== conn) {
      this.metrics.takeovers++;
      this.events.emit(this.events.takeover, { clientId, oldRemote: old.remote, newRemote: conn.remote });
      log.info("session taken over", { client: clientId, old: old.remote, new: conn.remote });
      old.close("session taken over", RC.SESSION_TAKEN_OVER);
      session = this.sessionMap.get(clientId); // a non-persistent session ended with its connection
    }
    if (session && clean) {
      this.endSession(session);
      session = undefined;
    }
    if (session) return { session, present: true };
    session = new Session(clientId);
    this.sessionMap.set(clientId, session);
    return { session, present: false };
  }

  /**
   * Who `s` acts for from now on: the user name of its accepted CONNECT (or
   * the one stored with it), and the topic access that follows from it.
   */
  setIdentity(s: Session, username: string | undefined): void {
    s.username = username;
    // A bridge's session forwards what its config names; the ACL is for clients.
    s.acl = this.acl.enabled && !s.id.startsWith(BRIDGE_SESSION_PREFIX) ? this.acl.forClient(username, s.id) : null;
  }

  /**
   * The local session of a bridge (`$bridge/NAME`): the restored one, or a
   * new persistent one that never expires, written to the store at once so
   * that what it queues survives a crash (bridge/bridge.ts).
   */
  bridgeSession(id: string): Session {
    let s = this.sessionMap.get(id);
    if (s === undefined) {
      s = new Session(id);
      this.sessionMap.set(id, s);
    }
    s.expiryInterval = 0xffffffff;
    s.expiresAt = 0;
    this.setIdentity(s, undefined);
    this.journal.saveSession(s);
    return s;
  }

  /** The Client IDs `user` may connect with (its clientIdPattern, else auth.clientIdPattern, %u filled in), or null for any. */
  clientIdPattern(user: string): RegExp | null {
    return this.clientIds.pattern(this.config.auth, user);
  }
  private readonly clientIds = new ClientIdPatterns();

  /** A Client ID no session has (for Assigned Client Identifiers, [MQTT-3.2.2-16] 5). */
  hasSession(clientId: string): boolean {
    return this.sessionMap.has(clientId);
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
    this.offlineSet.delete(session);
    if (++this.clients > this.metrics.maxClients) this.metrics.maxClients = this.clients;
    this.metrics.connects++;
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
    s.resend = null;
    this.clients--;
    this.outbox.unblock(s);
    s.stuck = false;
    this.retainedSender.cancel(s);
    const now = this.now();
    const will = s.will;
    let due = false;
    if (will !== null) {
      if (!publishWill) {
        s.will = null; // normal DISCONNECT discards it ([MQTT-3.1.2-10], [MQTT-3.14.4-3])
      } else if (will.delay > 0 && s.persistent) {
        // v5 Will Delay: due after the delay or at session end, whichever first ([MQTT-3.1.2-8] 5).
        s.willAt = now + will.delay * 1000;
      } else {
        due = true;
      }
    }
    if (!s.persistent) {
      // endSession fires a due will itself, after the session is gone.
      if (due) s.willAt = now;
      this.endSession(s);
      return;
    }
    s.expiresAt = s.expiryInterval === 0xffffffff ? 0 : now + s.expiryInterval * 1000;
    if (s.expiresAt !== 0 || s.willAt !== 0) this.offlineSet.add(s);
    this.journal.saveSession(s);
    // Last, so that a failure while routing the will leaves the session consistent.
    if (due) this.fireWill(s);
  }

  /**
   * Discard a session: its subscriptions leave the trie, its queue is
   * dropped; a will still pending is published once it is gone
   * ([MQTT-3.1.2-8] 5). Retained messages are not session state and stay
   * ([MQTT-3.1.2.7]).
   */
  endSession(s: Session): void {
    if (s.ended) return;
    const will = s.will !== null && s.willAt !== 0 ? s.will : null;
    s.will = null;
    s.ended = true;
    s.willAt = 0;
    this.outbox.unblock(s);
    this.retainedSender.cancel(s);
    // Shared-subscription messages this member had not finished go to another member
    // (v5 §4.8.2): queued ones, and QoS 1 in flight. QoS 2 already sent must not ([MQTT-4.8.2-5]).
    const handBack: Delivery[] = [];
    if (s.queue.length > 0) for (const d of s.queue.toArray()) if (d.group !== null) handBack.push(d);
    for (const d of s.inflight.ordered()) if (d.group !== null && d.qos === 1) handBack.push(d);
    this.journal.deleteSession(s);
    for (const sub of s.subs.values()) this.router.topics.remove(sub);
    s.subs.clear();
    s.queue.clear();
    s.inflight.clear();
    s.resend = null;
    s.inboundQos2.clear();
    this.offlineSet.delete(s);
    if (this.sessionMap.get(s.id) === s) this.sessionMap.delete(s.id);
    const now = this.now();
    for (const d of handBack) if (!d.msg.expired(now)) this.router.deliverShared(d.group as SharedGroup<Session>, d.msg, null);
    if (will !== null) publishWill(this, will, s.id, s.acl);
  }

  /** A restored session joins the broker with its subscriptions (restore.ts). */
  restoreSession(s: Session): void {
    this.setIdentity(s, s.username);
    this.sessionMap.set(s.id, s);
    for (const sub of s.subs.values()) this.router.topics.add(sub);
    this.offlineSet.add(s); // housekeeping drops it from the sweep when it has nothing pending
  }

  // ---- subscriptions -----------------------------------------------------

  /**
   * Add or replace one subscription of `s`: session, trie and store in step.
   * An identical filter replaces the existing subscription's options (3.1.1
   * [MQTT-3.8.4-3], 5 [MQTT-3.8.4-3]). Returns the subscription and whether
   * it existed, or null when the session is at limits.maxSubscriptionsPerSession.
   */
  subscribe(s: Session, r: SubscribeRequest): { sub: Subscription<Session>; existed: boolean } | null {
    const existing = s.subs.get(r.filter);
    let sub: Subscription<Session>;
    if (existing) {
      existing.qos = r.qos;
      existing.noLocal = r.noLocal;
      existing.rap = r.rap;
      existing.rh = r.rh;
      existing.subId = r.subId; // a new or removed identifier replaces the old (v5 §3.8.4)
      sub = existing;
    } else {
      if (s.subs.size >= this.limits.maxSubscriptionsPerSession) return null;
      sub = new Subscription<Session>(s, r.filter, r.qos, r.noLocal, r.rap, r.rh, r.subId, r.group, r.matchFilter);
      s.subs.set(r.filter, sub);
      this.router.topics.add(sub);
    }
    this.journal.saveSubscription(s, sub);
    return { sub, existed: existing !== undefined };
  }

  /** Remove the subscription of `s` with exactly this filter ([MQTT-3.10.4-1]); false when there was none. */
  unsubscribe(s: Session, filter: string): boolean {
    const sub = s.subs.get(filter);
    if (!sub) return false;
    s.subs.delete(filter);
    this.router.topics.remove(sub);
    this.retainedSender.cancel(s, sub);
    this.journal.deleteSubscription(s, filter);
    return true;
  }

  // ---- publishing --------------------------------------------------------

  /**
   * Take ownership of a message: retain it if flagged, then route it.
   * `origin` is the publisher's connection, held back if a subscriber's
   * queue overflows (null for wills and the broker's own messages).
   */
  publish(msg: Message, origin: Connection | null): Routed {
    const m = this.metrics;
    m.msgsIn[msg.qos]!++;
    m.bytesIn[msg.qos]! += msg.payload.length;
    return this.publishUncounted(msg, origin);
  }

  /** `publish` without counting it as received: the broker's own $SYS messages. */
  publishUncounted(msg: Message, origin: Connection | null): Routed {
    msg.serial = ++this.serial;
    if (this.tap !== null) this.tap(msg);
    const retained = msg.retain && this.retain(msg);
    const routed = this.router.route(msg, origin);
    // A message kept as retained is not lost even if every subscriber dropped it.
    return routed === Routed.DroppedForAll && retained ? Routed.Delivered : routed;
  }

  /**
   * [MQTT-3.3.1-5]: replace; empty payload deletes and is not stored
   * ([MQTT-3.3.1-10] 3.1.1, [MQTT-3.3.1-6] 5). False when not kept.
   */
  private retain(msg: Message): boolean {
    if (msg.payload.length === 0) {
      const prev = this.retainedStore.delete(msg.topic);
      if (prev !== null) this.journal.deleteRetained(msg.topic, prev);
      return false;
    }
    if (this.retainedStore.size >= this.limits.maxRetainedMessages && this.retainedStore.get(msg.topic) === null) {
      this.drops.count(Drop.RetainedLimit, msg.origin);
      return false;
    }
    this.journal.setRetained(msg, this.retainedStore.set(msg));
    return true;
  }

  /**
   * The broker's own $SYS message (sys.ts): retained in memory only, since
   * it is rebuilt every interval and a stored one would be stale after a
   * restart; routed like any message (ACL checks included), not counted as received.
   */
  publishSys(msg: Message): void {
    msg.serial = ++this.serial;
    if (this.tap !== null) this.tap(msg);
    this.retainedStore.set(msg);
    this.router.route(msg, null);
  }

  /** Delete the retained message of `topic` (the API's DELETE /api/v1/retained); false when there was none. Nothing is routed. */
  clearRetained(topic: string): boolean {
    const prev = this.retainedStore.delete(topic);
    if (prev === null) return false;
    if (!topic.startsWith("$SYS/")) this.journal.deleteRetained(topic, prev);
    return true;
  }

  /** The retained message of `topic`, or null. */
  retainedMessage(topic: string): Message | null {
    return this.retainedStore.get(topic);
  }

  /** Retained messages held. */
  get retainedCount(): number {
    return this.retainedStore.size;
  }

  /** The retained messages matching `filter`, lazily (retained-sender.ts). */
  retainedMatching(filter: string): Generator<Message | null, void, void> {
    return this.retainedStore.matching(filter);
  }

  /** A retained message found expired ([MQTT-3.3.2-5], v5 §3.3.1.3) leaves with its store rows. */
  expireRetained(m: Message): void {
    if (this.retainedStore.get(m.topic) !== m) return;
    this.retainedStore.delete(m.topic);
    this.journal.deleteRetained(m.topic, m);
  }

  /** A retained message read back from the store at start (restore.ts). */
  restoreRetained(m: Message): void {
    this.retainedStore.set(m);
  }

  /**
   * Fire the will of `s` now (its delay passed, or its connection ended
   * without a normal DISCONNECT): it leaves the session, the session's row
   * says so, and it is published from the session's Client ID.
   */
  fireWill(s: Session): void {
    const will = s.will;
    if (will === null) return;
    s.will = null;
    s.willAt = 0;
    this.journal.saveSession(s);
    publishWill(this, will, s.id, s.acl);
  }

  // ---- batches and time --------------------------------------------------

  /** Housekeeping pass (see housekeeping.ts); `now` is injectable for tests. */
  tick(now = this.now()): void {
    tick(this, now);
  }

  /** Load the store's state at start (see restore.ts). */
  restore(): void {
    restore(this);
  }

  /** End a batch (one data callback, timer or close): see batch.ts. */
  endBatch(): void {
    this.batch.end();
  }

  /** Acknowledgements wait for the commit of what they acknowledge ("ack" durability). */
  get holdAcks(): boolean {
    return this.batch.holdAcks;
  }

  /** Messages received (all QoS). */
  get messagesIn(): number {
    return this.metrics.totalMsgsIn;
  }

  /** Messages sent to subscribers (all QoS, first sends). */
  get messagesOut(): number {
    return this.metrics.totalMsgsOut;
  }

  stats(): BrokerStats {
    return {
      connections: this.connectionSet.size,
      clients: this.clients,
      sessions: this.sessionMap.size,
      subscriptions: this.router.topics.count,
      retained: this.retainedStore.size,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      dropped: this.drops.total,
      refusedConnections: this.admission.refused,
      refusedUnauthenticated: this.admission.refusedBy[Refusal.Unauthenticated]!,
      refusedConnectRate: this.admission.refusedBy[Refusal.ConnectRate]!,
      unauthenticated: this.admission.unauthenticated,
      throttled: this.throttled,
      stuckSubscribers: this.stalls,
    };
  }

  /**
   * Close every connection (v5: DISCONNECT 0x8B). The server closes without
   * having received DISCONNECT, so wills are due as for any such close
   * (v5 §3.1.2.5). They are all published first, in a pass of their own,
   * while every subscriber is still connected: closing in one pass would
   * lose a will for each subscriber whose socket happened to be closed
   * before the will's client. `publishWills` false (shutdown.publishWills)
   * discards them instead. Either way, delayed wills of persistent sessions
   * stay pending in the store and resume after a restart.
   */
  closeAll(publishWills = true): void {
    takeShutdownWills(this, this.connectionSet, publishWills);
    for (const c of this.connectionSet) {
      if (c.state !== State.Closed) c.close("server shutting down", RC.SERVER_SHUTTING_DOWN);
    }
    this.endBatch();
  }
}
