/**
 * @module reload
 * Applying a new config to a running broker without dropping connections:
 * users (config and password file), ACLs (rules and ACL file), Client ID
 * rules, the log level and TLS certificates. Everything is built first; if
 * any part fails (a bad password or ACL file) nothing is applied and the old
 * config stays in force. Then, on the one event loop:
 * - every session (online and offline) gets its topic access from the new
 *   rules, so a subscription the new rules deny stops receiving at once
 *   (deliveries are checked per topic, router.ts);
 * - connections whose user was removed, and anonymous ones where anonymous
 *   access was turned off, are disconnected (v5: DISCONNECT 0x87, "not
 *   authorized");
 * - what changed is logged, and settings that only apply at start
 *   (listeners, limits, persistence, ...) are named as needing a restart.
 * Messages already queued for a session are not re-checked.
 */
import { loadAccessControl } from "./acl-file.ts";
import { Authenticator } from "./auth.ts";
import type { Broker } from "./broker.ts";
import type { Config } from "./config.ts";
import { State } from "./conn-state.ts";
import { defaultAuthMethods } from "./enhanced-auth.ts";
import type { TlsReload } from "./listeners.ts";
import { log, setLogLevel } from "./log.ts";
import { RC } from "./protocol/reason-codes.ts";
import type { Bridges } from "./bridge/manager.ts";

export interface ReloadResult {
  /** False when the new config was refused (`error` says why); the old one stays. */
  applied: boolean;
  error?: string;
  /** What changed, one phrase each ("users added: carol"). */
  changes: string[];
  /** Connections closed because their user was removed or anonymous access ended. */
  disconnected: number;
  /** Top-level settings that differ but apply only at start. */
  restartNeeded: string[];
  tls: TlsReload[];
}

/** Sections applied live; every other top-level key needs a restart. */
const LIVE_KEYS = new Set(["auth", "logLevel", "bridges"]);

/** The broker and what can reload its certificates (RunningBroker). */
export interface Reloadable {
  broker: Broker;
  reloadTls(): TlsReload[];
  /** The bridges, reconciled with the new `bridges[]`. */
  bridges?: Bridges;
}

export function applyConfig(running: Reloadable, next: Config): ReloadResult {
  const broker = running.broker;
  const prev = broker.config;
  const result: ReloadResult = { applied: false, changes: [], disconnected: 0, restartNeeded: [], tls: [] };
  let auth: Authenticator;
  let acl: ReturnType<typeof loadAccessControl>;
  try {
    auth = new Authenticator(next.auth);
    acl = loadAccessControl(next.auth);
  } catch (err) {
    result.error = (err as Error).message;
    log.warn("reload refused; the running config stays", { err: result.error });
    return result;
  }
  const oldAuth = broker.auth;
  const oldAcl = broker.acl;
  const prevAuth = prev.auth;
  result.applied = true;

  // Users and access.
  const before = new Set(oldAuth.usernames());
  const after = new Set(auth.usernames());
  const added = [...after].filter((u) => !before.has(u));
  const removed = [...before].filter((u) => !after.has(u));
  if (added.length > 0) result.changes.push(`users added: ${names(added)}`);
  if (removed.length > 0) result.changes.push(`users removed: ${names(removed)}`);
  if (prev.auth.allowAnonymous !== next.auth.allowAnonymous) result.changes.push(`allowAnonymous: ${next.auth.allowAnonymous}`);
  const rulesBefore = oldAcl.size;
  if (rulesBefore !== acl.size || JSON.stringify(prev.auth.acl) !== JSON.stringify(next.auth.acl) || prev.auth.aclFile !== next.auth.aclFile) {
    result.changes.push(`ACL rules: ${rulesBefore} -> ${acl.size}`);
  } else if (next.auth.aclFile !== undefined) {
    result.changes.push(`ACL file re-read (${acl.size} rules)`);
  }
  if (prev.auth.clientIdOwnership !== next.auth.clientIdOwnership) result.changes.push(`clientIdOwnership: ${next.auth.clientIdOwnership}`);
  if (prev.auth.clientIdPattern !== next.auth.clientIdPattern) result.changes.push(`clientIdPattern: ${next.auth.clientIdPattern ?? "(none)"}`);

  broker.config = Object.freeze({ ...prev, auth: next.auth, logLevel: next.logLevel, bridges: next.bridges });
  broker.auth = auth;
  broker.acl = acl;
  for (const [name, method] of defaultAuthMethods(next.auth)) broker.authMethods.set(name, method);
  for (const s of broker.sessions.values()) broker.setIdentity(s, s.username);

  // Connections that lost their right to be here.
  const goneUsers = new Set(removed);
  for (const c of [...broker.connections]) {
    if (c.state !== State.Active) continue; // one still authenticating is checked against the new users when its verdict comes
    const user = c.username;
    const own = c.listener.allowAnonymous; // a listener's own setting is not reloaded
    const anonymousEnded = user === undefined && (own ?? prevAuth.allowAnonymous) && !(own ?? next.auth.allowAnonymous);
    const userGone = user !== undefined && goneUsers.has(user);
    if (!userGone && !anonymousEnded) continue;
    log.info("disconnecting a client after reload", { client: c.clientId, user, why: userGone ? "user removed" : "anonymous access turned off" });
    c.run(() => c.close("not authorized", RC.NOT_AUTHORIZED));
    result.disconnected++;
  }

  if (prev.logLevel !== next.logLevel) {
    result.changes.push(`logLevel: ${next.logLevel}`);
    setLogLevel(next.logLevel);
  }

  // Bridges: added, removed, restarted when changed (their queues are kept).
  if (running.bridges !== undefined) result.changes.push(...running.bridges.reload(next.bridges));

  // Certificates: re-read from the files the listeners were started with.
  result.tls = running.reloadTls();
  for (const t of result.tls) if (t.result !== "unchanged") result.changes.push(`TLS ${t.listener}: ${t.result}${t.detail ? ` (${t.detail})` : ""}`);

  for (const key of Object.keys(next) as (keyof Config)[]) {
    if (LIVE_KEYS.has(key)) continue;
    if (JSON.stringify(prev[key]) !== JSON.stringify(next[key])) result.restartNeeded.push(key);
  }
  log.info("config reloaded", {
    changes: result.changes.length > 0 ? result.changes.join("; ") : "none",
    disconnected: result.disconnected || undefined,
  });
  if (result.restartNeeded.length > 0) {
    log.warn("reload: these settings apply at start only; restart to apply them", { settings: result.restartNeeded.join(",") });
  }
  return result;
}

function names(list: string[]): string {
  return list.length <= 10 ? list.join(",") : `${list.slice(0, 10).join(",")} and ${list.length - 10} more`;
}
