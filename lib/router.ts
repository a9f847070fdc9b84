/**
 * @module router
 * Routing of one application message to the sessions whose subscriptions
 * match it: the subscription trie, a match cache, per-session merging of
 * overlapping subscriptions, and one member per shared-subscription group.
 * Per-session delivery (window, queue, backpressure) is the Outbox's.
 * Nothing here allocates per delivery: the scratch arrays are reused.
 */
import type { Connection } from "./connection.ts";
import { State } from "./conn-state.ts";
import type { Message, QoS } from "./message.ts";
import type { Outbox } from "./outbox.ts";
import type { RetainedSender } from "./retained-sender.ts";
import type { Session } from "./session.ts";
import { type SharedGroup, type Subscription, TopicTree } from "./topic-tree.ts";

const MATCH_CACHE_ENTRIES = 10_000;
const MATCH_CACHE_REFS = 1_000_000;

interface CachedMatch {
  readonly subs: Subscription<Session>[];
  readonly groups: SharedGroup<Session>[];
}

/** What routing did with a message. */
export const enum Routed {
  /** No subscription matched (v5 PUBACK 0x10). */
  NoMatch = 0,
  /** At least one session took it. */
  Delivered = 1,
  /** Subscriptions matched, but every one of them dropped it (v5 PUBACK 0x97). */
  DroppedForAll = 2,
}

export class Router {
  readonly topics = new TopicTree<Session>();
  private routeEpoch = 0;
  private readonly matchCache = new Map<string, CachedMatch>();
  private cacheVersion = -1;
  private cachedRefs = 0;
  private readonly targets: Session[] = [];
  private readonly tQos: QoS[] = [];
  private readonly tRap: boolean[] = [];
  private readonly tIds: (readonly number[] | null)[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly retainedSender: RetainedSender,
  ) {}

  /**
   * Deliver `msg` to every session with a matching subscription
   * ([MQTT-4.5.0-1]). A session with several matching subscriptions gets one
   * copy at the highest granted QoS with all their Subscription Identifiers
   * (3.1.1 [MQTT-3.3.5-1], 5 [MQTT-3.3.4-2], [MQTT-3.3.4-3]). Each shared group
   * gets one copy for one member. `origin` is the publisher's connection (the
   * one a full queue holds back), or null.
   */
  route(msg: Message, origin: Connection | null): Routed {
    const m = this.matchOf(msg.topic);
    const subs = m.subs;
    const groups = m.groups;
    const n = subs.length;
    if (n === 0 && groups.length === 0) return Routed.NoMatch;
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
    let delivered = 0;
    let denied = 0;
    for (let i = 0; i < count; i++) {
      const s = targets[i]!;
      // Deliveries are checked per topic (acl.ts): a wildcard subscription does not open what the ACL closes.
      if (s.acl !== null && !s.acl.canRead(msg.topic)) {
        denied++;
        continue;
      }
      const q = tQos[i]!;
      if (s.retainedJobs !== null) this.retainedSender.beforeLive(s, msg);
      // Delivered QoS = min(published, granted) (3.1.1 [MQTT-3.8.4-6], 5 [MQTT-3.8.4-8]);
      // RETAIN is 0 on live forwarding unless Retain As Published (3.1.1 [MQTT-3.3.1-9], 5 [MQTT-3.3.1-12/13]).
      if (this.outbox.deliver(s, msg, q < mq ? q : mq, tRap[i]! && msg.retain, tIds[i]!, null, origin)) delivered++;
    }
    let groupsOpen = groups.length;
    for (let i = 0; i < groups.length; i++) {
      const r = this.deliverShared(groups[i]!, msg, origin);
      if (r === null) groupsOpen--;
      else if (r) delivered++;
    }
    // Subscribers that may not read the topic do not count as matching (v5 PUBACK 0x10, not 0x97).
    return count - denied + groupsOpen === 0 ? Routed.NoMatch : delivered > 0 ? Routed.Delivered : Routed.DroppedForAll;
  }

  /**
   * Match results by topic, valid while the trie is unchanged (any subscribe
   * or unsubscribe clears it). Publishers repeat topics, and the topic string
   * is interned per connection, so a hit costs one Map lookup instead of a
   * trie walk. Bounded in entries and in subscriptions referenced.
   */
  private matchOf(topic: string): CachedMatch {
    if (this.cacheVersion !== this.topics.version) {
      this.matchCache.clear();
      this.cachedRefs = 0;
      this.cacheVersion = this.topics.version;
    }
    let m = this.matchCache.get(topic);
    if (m === undefined) {
      const subs: Subscription<Session>[] = [];
      const groups: SharedGroup<Session>[] = [];
      this.topics.match(topic, subs, groups);
      m = { subs, groups };
      if (this.matchCache.size >= MATCH_CACHE_ENTRIES || this.cachedRefs > MATCH_CACHE_REFS) {
        this.matchCache.clear();
        this.cachedRefs = 0;
      }
      this.matchCache.set(topic, m);
      this.cachedRefs += subs.length + groups.length + 1;
    }
    return m;
  }

  /**
   * One member per shared group, round-robin, preferring connected members
   * with room, among those the ACL lets read the topic. True when delivered,
   * false when dropped, null when no member may read it.
   */
  deliverShared(g: SharedGroup<Session>, msg: Message, origin: Connection | null): boolean | null {
    const m = g.members;
    const len = m.length;
    if (len === 0) return false;
    let pick: Subscription<Session> | null = null;
    let fallback: Subscription<Session> | null = null;
    let readers = 0;
    for (let i = 0; i < len; i++) {
      const sub = m[(g.next + i) % len]!;
      const acl = sub.session.acl;
      if (acl !== null && !acl.canRead(msg.topic)) continue;
      readers++;
      const c = sub.session.conn;
      if (c !== null && c.state === State.Active) {
        if (msg.qos === 0 || sub.qos === 0 || this.outbox.hasRoom(sub.session, c)) {
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
    if (pick === null) return readers === 0 && len > 0 ? null : false;
    if (pick === fallback) g.next = (pick.slot + 1) % len;
    return this.outbox.deliver(pick.session, msg, pick.qos < msg.qos ? pick.qos : msg.qos, pick.rap && msg.retain, pick.subId !== 0 ? [pick.subId] : null, g, origin);
  }
}
