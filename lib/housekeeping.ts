/**
 * @module housekeeping
 * The periodic checks, run about four times a second by the server's timer
 * (time is passed in so tests can drive it): connect timeouts, keep alive
 * (1.5 x, 3.1.1 [MQTT-3.1.2-24] / 5 [MQTT-3.1.2-22]), drain timeouts,
 * lingering closes that outstay LINGER_MS, subscribers that hold publishers
 * back without acknowledging, delayed wills and session expiry
 * ([MQTT-4.1.0-2] 5). Connections and offline sessions are swept in place;
 * at 10,000 clients a pass costs well under a millisecond.
 *
 * Each item is checked on its own: a failure with one connection or session
 * is logged and the sweep goes on, so one bad item never starves the rest.
 */
import type { Broker } from "./broker.ts";
import { State } from "./conn-state.ts";
import type { Connection } from "./connection.ts";
import { log } from "./log.ts";
import { RC } from "./protocol/reason-codes.ts";
import type { Session } from "./session.ts";

/** A closed connection whose peer has not closed too is cut off after this long (lingering close). */
export const LINGER_MS = 2000;

export function tick(broker: Broker, now: number): void {
  for (const c of broker.connections) {
    try {
      checkConnection(broker, c, now);
    } catch (err) {
      failed("connection check", c.clientId, err);
      c.abort("housekeeping failed");
    }
  }
  for (const s of broker.congested) {
    try {
      // Held publishers back for maxPublisherStallMs without progress: stuck (outbox.ts, the queue policy).
      if (now - s.blockedSince > broker.limits.maxPublisherStallMs) {
        log.warn("subscriber makes no progress; dropping its overflow and releasing its publishers", { client: s.id, queued: s.queue.length });
        broker.outbox.markStuck(s);
      }
    } catch (err) {
      failed("congestion check", s.id, err);
    }
  }
  for (const s of broker.offline) {
    try {
      checkOffline(broker, s, now);
    } catch (err) {
      failed("session check", s.id, err);
    }
  }
  broker.endBatch();
}

function checkConnection(broker: Broker, c: Connection, now: number): void {
  const lim = broker.limits;
  switch (c.state) {
    case State.New:
    case State.Connecting:
    case State.Authenticating:
      if (now - c.openedAt > lim.connectTimeoutMs) c.close("no CONNECT in time");
      break;
    case State.Active:
      if (c.keepalive > 0 && !c.paused && now - c.lastRx > c.keepalive * 1500) {
        c.close("keep alive timeout", RC.KEEP_ALIVE_TIMEOUT);
      } else if (c.waitingDrain && now - c.drainSince > lim.drainTimeoutMs) {
        log.warn("client does not read its output; disconnecting", { client: c.clientId });
        c.abort("drain timeout");
      }
      break;
    case State.Closed:
      if (now - c.closedAt > LINGER_MS) c.transport.close();
      break;
  }
}

function checkOffline(broker: Broker, s: Session, now: number): void {
  if (s.willAt !== 0 && now >= s.willAt) broker.fireWill(s); // v5 Will Delay passed ([MQTT-3.1.2-8] 5)
  if (s.expiresAt !== 0 && now >= s.expiresAt) {
    log.debug("session expired", { client: s.id });
    broker.endSession(s);
  } else if (s.expiresAt === 0 && s.willAt === 0) {
    broker.settled(s);
  }
}

function failed(what: string, client: string, err: unknown): void {
  log.error(`${what} failed`, { client: client || undefined, err, stack: (err as Error)?.stack });
}
