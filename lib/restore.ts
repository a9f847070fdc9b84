/**
 * @module restore
 * Rebuild broker state from the store at start, in mosquitto's order:
 * messages, retained, sessions, subscriptions, deliveries, inbound QoS 2
 * ids. Sessions whose client was connected when the broker stopped count as
 * disconnected now: their expiry clock starts and their will is due (after
 * its delay). Expired sessions and messages are dropped; timers resume with
 * the time that remains.
 */
import type { Broker } from "./broker.ts";
import { tick } from "./housekeeping.ts";
import { log } from "./log.ts";
import { Delivery, Message } from "./message.ts";
import { Session } from "./session.ts";
import { isValidFilter, parseSharedFilter } from "./protocol/validate.ts";
import { Subscription } from "./topic-tree.ts";

/** Load everything the store holds into `broker` (before any listener starts). */
export function restore(broker: Broker): void {
  const snap = broker.journal.load();
  const store = broker.journal.store;
  const now = broker.now();
  const lim = broker.limits;
  const msgs = new Map<number, Message>();
  for (const m of snap.messages) {
    const msg = new Message(m.topic, m.payload, m.qos, m.retain, m.props, m.expiresAt, m.origin);
    msg.storeId = m.id;
    msgs.set(m.id, msg);
  }
  for (const r of snap.retained) {
    const msg = msgs.get(r.messageId);
    if (!msg || msg.expired(now)) {
      store.deleteRetained(r.topic);
      continue;
    }
    broker.journal.countRestoredRef(msg);
    broker.restoreRetained(msg);
  }
  const sessions = new Map<string, Session>();
  const dueWills: Session[] = [];
  for (const x of snap.sessions) {
    const s = new Session(x.clientId);
    s.version = x.version;
    s.expiryInterval = x.expiryInterval;
    s.will = x.will;
    s.username = x.username;
    s.stored = true;
    if (x.connected) {
      s.expiresAt = x.expiryInterval === 0xffffffff ? 0 : now + x.expiryInterval * 1000;
      if (s.will !== null) {
        if (s.will.delay > 0) s.willAt = now + s.will.delay * 1000;
        else dueWills.push(s);
      }
    } else {
      s.expiresAt = x.expiresAt;
      s.willAt = x.will !== null ? x.willAt : 0;
    }
    sessions.set(s.id, s);
  }
  for (const x of snap.subscriptions) {
    const s = sessions.get(x.clientId);
    // The filter was valid when it was stored; a row that no longer parses (hand-edited, or
    // stored under larger limits) is dropped rather than put in the trie.
    const shared = parseSharedFilter(x.filter, lim.maxTopicLevels);
    if (!s || shared === "invalid" || (shared === null && !isValidFilter(x.filter, lim.maxTopicLevels))) {
      if (s) log.warn("stored subscription has an invalid filter; dropped", { client: x.clientId, filter: x.filter });
      store.deleteSubscription(x.clientId, x.filter);
      continue;
    }
    const sub = new Subscription<Session>(s, x.filter, x.qos, x.noLocal, x.rap, x.rh, x.subId, shared?.group ?? null, shared?.filter ?? x.filter);
    s.subs.set(x.filter, sub);
  }
  for (const x of snap.deliveries) {
    const s = sessions.get(x.clientId);
    const msg = msgs.get(x.messageId);
    if (!s || !msg) {
      store.deleteDelivery(x.clientId, x.seq);
      continue;
    }
    const d = new Delivery(msg, x.qos, x.retain, x.subIds);
    d.seq = x.seq;
    d.packetId = x.packetId;
    d.released = x.released;
    d.stored = true;
    d.row = true;
    broker.journal.countRestoredRef(msg);
    if (x.seq >= s.seq) s.seq = x.seq + 1;
    if (d.packetId !== 0) s.inflight.add(d);
    else if (msg.expired(now)) broker.journal.dropDelivery(s, d);
    else s.queue.push(d);
  }
  for (const x of snap.inbound) sessions.get(x.clientId)?.inboundQos2.add(x.packetId);
  for (const s of sessions.values()) {
    broker.restoreSession(s);
    broker.journal.saveSession(s); // connected -> offline
  }
  for (const s of dueWills) broker.fireWill(s);
  tick(broker, now); // sessions that expired while the broker was down end now
  broker.journal.commit();
  if (snap.sessions.length + snap.retained.length > 0) {
    log.info("state restored", { from: store.description, sessions: broker.sessions.size, retained: broker.retainedCount, queued: snap.deliveries.length });
  }
}
