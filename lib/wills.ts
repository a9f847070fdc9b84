/**
 * @module wills
 * Publishing a will: the ACL check in force when it is published, the
 * Message built from the Will (expiry, properties, the session's Client ID
 * as origin), and the shutdown pass that takes every connected client's
 * will before any connection is closed. When a will is due is the
 * Broker's decision (detach, endSession, housekeeping); this is how.
 */
import type { ClientAcl } from "./acl.ts";
import type { Broker } from "./broker.ts";
import { State } from "./conn-state.ts";
import type { Connection } from "./connection.ts";
import { Drop } from "./drops.ts";
import { log } from "./log.ts";
import { Message } from "./message.ts";
import type { Will } from "./session.ts";

/** Publish `will` from `clientId`, unless the ACL (as it is now) denies it: then it is counted as an ACL drop. */
export function publishWill(broker: Broker, will: Will, clientId: string, acl: ClientAcl | null): void {
  if (acl !== null && !acl.canPublish(will.topic)) {
    // Checked when the will would be published, with the rules in force then.
    broker.drops.count(Drop.Acl, clientId);
    if (log.debugEnabled) log.debug("will denied by the ACL; dropped", { client: clientId, topic: will.topic });
    return;
  }
  const now = broker.now();
  const msg = new Message(will.topic, will.payload, will.qos, will.retain, will.props, will.expiry >= 0 ? now + will.expiry * 1000 : 0, clientId);
  if (log.debugEnabled) log.debug("publishing will", { client: clientId, topic: will.topic });
  broker.publish(msg, null);
}

/**
 * At shutdown, before any connection is closed: take each connected
 * client's will off its session and publish it (or, with `publish` false,
 * discard it), so every will is routed while every subscriber is still
 * connected. A delayed will of a persistent session is left where it is:
 * the close keeps it pending, in the store, and it resumes after a restart.
 */
export function takeShutdownWills(broker: Broker, connections: Iterable<Connection>, publish: boolean): void {
  for (const c of connections) {
    const s = c.session;
    if (c.state === State.Closed || s === null || s.conn !== c || s.will === null) continue;
    const will = s.will;
    if (will.delay > 0 && s.persistent) continue;
    // Off the session before the close, so that detach neither fires nor stores it again.
    s.will = null;
    s.willAt = 0;
    if (publish) publishWill(broker, will, s.id, s.acl);
  }
}
