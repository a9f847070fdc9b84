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
import { Subscription } from "./topic-tree.ts";

/** Load everything the store holds into `broker` (before any listener starts). */
export function restore(broker: Broker): void {
  const snap = broker.journal.load();
  const now = broker.now();
  const msgs = new Map<number, Message>();
  for (const m of snap.messages) {
    const msg = new Message(m.topic, m.payload, m.qos, m.retain, m.props, m.expiresAt, m.origin);
    msg.storeId = m.id;
    msgs.set(m.id, msg);
  }
  for (const r of snap.retained) {
    const msg = msgs.get(r.messageId);
    if (!msg || msg.expired(now)) {
      broker.journal.store.deleteRetained(r.topic);
      continue;
    }
    broker.journal.countRestoredRef(msg);
    broker.retained.set(msg);
  }
  const dueWills: Session[] = [];
  for (const x of snap.sessions) {
    const s = new Session(x.clientId);
    s.version = x.version;
    s.expiryInterval = x.expiryInterval;
    s.will = x.will;
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
    broker.sessions.set(s.id, s);
    broker.offline.add(s);
  }
  for (const x of snap.subscriptions) {
    const s = broker.sessions.get(x.clientId);
    if (!s) {
      broker.journal.store.deleteSubscription(x.clientId, x.filter);
      continue;
    }
    const shared = x.filter.startsWith("$share/") ? x.filter.slice(7).split("/") : null;
    const group = shared ? shared[0]! : null;
    const matchFilter = shared ? shared.slice(1).join("/") : x.filter;
    const sub = new Subscription<Session>(s, x.filter, x.qos, x.noLocal, x.rap, x.rh, x.subId, group, matchFilter);
    s.subs.set(x.filter, sub);
    broker.topics.add(sub);
  }
  for (const x of snap.deliveries) {
    const s = broker.sessions.get(x.clientId);
    const msg = msgs.get(x.messageId);
    if (!s || !msg) {
      broker.journal.store.deleteDelivery(x.clientId, x.seq);
      continue;
    }
    const d = new Delivery(msg, x.qos, x.retain, x.subIds);
    d.seq = x.seq;
    d.packetId = x.packetId;
    d.released = x.released;
    d.stored = true;
    broker.journal.countRestoredRef(msg);
    if (x.seq >= s.seq) s.seq = x.seq + 1;
    if (d.packetId !== 0) s.inflight.add(d);
    else if (msg.expired(now)) broker.journal.dropDelivery(s, d);
    else s.queue.push(d);
  }
  for (const x of snap.inbound) broker.sessions.get(x.clientId)?.inboundQos2.add(x.packetId);
  for (const s of dueWills) {
    const will = s.will!;
    s.will = null;
    broker.publishWill(will, s.id);
  }
  for (const s of broker.sessions.values()) broker.journal.saveSession(s); // connected -> offline, wills taken
  tick(broker, now); // sessions that expired while the broker was down end now
  broker.journal.store.commit();
  if (snap.sessions.length + snap.retained.length > 0) {
    log.info("state restored", { from: broker.journal.store.description, sessions: broker.sessions.size, retained: broker.retained.size, queued: snap.deliveries.length });
  }
}
