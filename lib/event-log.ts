/**
 * @module event-log
 * The info log of client lifecycles, built on broker.events: one line per
 * accepted CONNECT, per end of a connection that had connected, per refused
 * CONNECT, and a distinct line for a client the broker closed because it hit
 * a limit (keep alive, drain timeout, packet size, quotas), naming the limit.
 * Takeovers are logged where they happen (broker.ts, "session taken over"),
 * so the closing of the old connection is not logged a second time here.
 * Connection events only: nothing here runs per message.
 */
import type { BrokerEvents, ConnectedEvent, DisconnectedEvent, RefusedEvent } from "./events.ts";
import { log } from "./log.ts";
import { RC, reasonName } from "./protocol/reason-codes.ts";

/** The limit behind a server-side close, as the setting a user would look up; undefined when it was not one. */
export function limitOf(why: string, reason: number | undefined): string | undefined {
  switch (reason) {
    case RC.KEEP_ALIVE_TIMEOUT:
      return "keepalive";
    case RC.PACKET_TOO_LARGE:
      return "limits.maxPacketSize";
    case RC.RECEIVE_MAXIMUM_EXCEEDED:
      return "limits.receiveMaximum";
    case RC.QUOTA_EXCEEDED:
      return "quota";
    case RC.MESSAGE_RATE_TOO_HIGH:
      return "rate";
  }
  // Closes without a reason code (the peer does not read, so nothing can be sent to it).
  if (why === "drain timeout") return "limits.drainTimeoutMs";
  return undefined;
}

function onConnected(e: ConnectedEvent): void {
  const c = e.conn;
  log.info("client connected", {
    client: e.clientId,
    user: c.username,
    remote: c.remote,
    listener: c.listener.url,
    version: c.version,
    clean: e.clean,
    session: e.resumed ? "resumed" : "new",
  });
}

function onDisconnected(e: DisconnectedEvent): void {
  // A socket that never finished CONNECT is not a client; a refusal has its own line.
  if (!e.wasActive) return;
  if (e.reason === RC.SESSION_TAKEN_OVER) return; // logged once, as "session taken over"
  const c = e.conn;
  // The event carries the code passed to close() for 3.1.x too, where no DISCONNECT can carry it.
  const code = e.reason !== undefined && c.v5 ? reasonName(e.reason) : undefined;
  const limit = limitOf(e.why, e.reason);
  if (limit !== undefined) {
    log.info("client closed by a limit", { client: e.clientId, limit, reason: e.why, code, remote: c.remote });
  } else {
    log.info("client disconnected", { client: e.clientId, reason: e.why, code, remote: c.remote });
  }
}

function onRefused(e: RefusedEvent): void {
  const c = e.conn;
  log.info("connection refused", {
    client: e.clientId || undefined,
    user: c.username,
    code: reasonName(e.code),
    why: e.why,
    remote: c.remote,
    listener: c.listener.url,
  });
}

/** Log client lifecycles at info from now on. */
export function attachEventLog(events: BrokerEvents): void {
  events.connected.push(onConnected);
  events.disconnected.push(onDisconnected);
  events.refused.push(onRefused);
}
