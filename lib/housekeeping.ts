/**
 * @module housekeeping
 * The periodic checks, run about four times a second by the server's timer
 * (time is passed in so tests can drive it): connect timeouts, keep alive
 * (1.5 x, 3.1.1 [MQTT-3.1.2-24] / 5 [MQTT-3.1.2-22]), drain timeouts,
 * sockets that linger after close, subscribers that hold publishers back
 * without acknowledging, delayed wills and session expiry ([MQTT-4.1.0-2] 5).
 * Connections and offline sessions are swept in place; at 10,000 clients a
 * pass costs well under a millisecond.
 */
import type { Broker } from "./broker.ts";
import { State } from "./connection.ts";
import { log } from "./log.ts";
import { RC } from "./protocol/reason-codes.ts";

/** Close a socket that was ended but never closed by its peer after this long. */
const LINGER_MS = 5000;

export function tick(broker: Broker, now: number): void {
  const lim = broker.limits;
  for (const c of broker.connections) {
    switch (c.state) {
      case State.New:
      case State.Connecting:
      case State.Authenticating:
        if (now - c.openedAt > lim.connectTimeoutMs) c.close(undefined, false, "no CONNECT in time");
        break;
      case State.Active:
        if (c.keepalive > 0 && !c.paused && now - c.lastRx > c.keepalive * 1500) {
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
  for (const s of broker.congested) {
    // A subscriber that holds publishers back and acknowledges nothing for the drain timeout is cut off.
    if (s.conn !== null && now - s.blockedSince > lim.drainTimeoutMs) {
      log.warn("client does not acknowledge; disconnecting it to release held-back publishers", { client: s.id });
      s.conn.close(undefined, true, "acknowledgement timeout");
    }
  }
  for (const s of broker.offline) {
    if (s.willAt !== 0 && now >= s.willAt && s.will !== null) {
      const will = s.will;
      s.will = null;
      s.willAt = 0;
      broker.publishWill(will, s.id);
      broker.journal.saveSession(s);
    }
    if (s.expiresAt !== 0 && now >= s.expiresAt) {
      log.debug("session expired", { client: s.id });
      broker.endSession(s);
    } else if (s.expiresAt === 0 && s.willAt === 0) {
      broker.offline.delete(s);
    }
  }
  broker.endBatch();
}
