/**
 * @module config
 * The configuration schema (zod, strict: unknown keys are errors), its
 * defaults (they live here and nowhere else), `flagOverrides`, which checks
 * command-line values under the flag's own name, and `loadConfig`, which
 * validates a JSON file on its own, applies the overrides and validates the
 * result. Every limit that protects memory has a finite default or, for
 * maxConnections, one derived at start (fd-limit.ts).
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { BridgesSchema, resolveBridgePaths } from "./bridge/config.ts";
import { jsonErrorAt } from "./json-error.ts";

const int = (min: number, max: number) => z.number().int().min(min).max(max);

const PORT_MIN = 0;
const PORT_MAX = 65535;
/** "silent" logs nothing (embedded use in test suites). */
const LOG_LEVELS = ["silent", "error", "warn", "info", "debug"] as const;

const Host = z.string().min(1);
const Port = int(PORT_MIN, PORT_MAX);
const LogLevel = z.enum(LOG_LEVELS);
const DataPath = z.string().min(1);

/**
 * Transport of a listener: MQTT over TCP, over TLS, over WebSocket, over
 * WebSocket on TLS; or "http", the observability endpoints (health, metrics,
 * API, dashboard), HTTPS when it has `tls`.
 */
export const PROTOCOLS = ["mqtt", "mqtts", "ws", "wss", "http"] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/** The port a listener gets when its config names none (http shares 8080 with ws by default). */
const DEFAULT_PORT: Record<Protocol, number> = { mqtt: 1883, mqtts: 8883, ws: 8080, wss: 8081, http: 8080 };
const DEFAULT_WS_PATH = "/mqtt";

/**
 * TLS of an `mqtts` or `wss` listener. File paths are relative to the config
 * file (resolved by loadConfig); the files are read at start and on SIGHUP
 * (tls-material.ts).
 */
const Tls = z.strictObject({
  /** Server certificate chain (PEM): the certificate, then any intermediates. */
  cert: z.string().min(1),
  /** Private key of the certificate (PEM). */
  key: z.string().min(1),
  /** Passphrase of an encrypted key. */
  passphrase: z.string().optional(),
  /** CA certificates (PEM) that client certificates must chain to. */
  ca: z.string().min(1).optional(),
  /** Certificate revocation lists (PEM): a client certificate listed there fails the handshake. Re-read on SIGHUP. */
  crl: z.string().min(1).optional(),
  /** Refuse a client without a certificate signed by `ca` (mutual TLS). */
  requireClientCert: z.boolean().default(false),
  /** The client certificate's Common Name is the username (Mosquitto's use_identity_as_username); no password is checked. */
  useIdentityAsUsername: z.boolean().default(false),
  /** Oldest TLS version accepted. */
  minVersion: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2"),
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not configurable); the library default when absent. */
  ciphers: z.string().min(1).optional(),
});

const Listener = z
  .strictObject({
    /** Address to bind; "0.0.0.0" or "::" listens on all interfaces. */
    host: Host.default("127.0.0.1"),
    /** TCP port; 0 picks a free one (the real port is printed). Default by protocol: 1883, 8883, 8080, 8081. */
    port: Port.optional(),
    protocol: z.enum(PROTOCOLS).default("mqtt"),
    /** ws / wss: the HTTP path of the MQTT endpoint. */
    path: z.string().startsWith("/", "expected a path starting with /").optional(),
    /** mqtts / wss: certificates and client-certificate policy. */
    tls: Tls.optional(),
    /**
     * ws / wss: browser origins allowed to open the WebSocket (the Origin
     * header, e.g. "https://app.example.com"); absent = any. Requests without
     * an Origin header (clients that are not browsers) are always allowed.
     */
    allowedOrigins: z.array(z.string().min(1)).min(1).optional(),
    /** Connections on this listener (also bounded by limits.maxConnections). */
    maxConnections: int(1, 10_000_000).optional(),
    /** Overrides auth.allowAnonymous for clients of this listener. */
    allowAnonymous: z.boolean().optional(),
    /** Sockets of this listener that have not finished CONNECT (also bounded by limits.maxUnauthenticated). */
    maxUnauthenticated: int(1, 10_000_000).optional(),
  })
  .superRefine((l, ctx) => {
    const secure = l.protocol === "mqtts" || l.protocol === "wss";
    const web = l.protocol === "ws" || l.protocol === "wss";
    if (secure && l.tls === undefined) ctx.addIssue({ code: "custom", path: ["tls"], message: `required for protocol ${l.protocol} (cert and key)` });
    if (!secure && l.protocol !== "http" && l.tls !== undefined) ctx.addIssue({ code: "custom", path: ["tls"], message: `only for protocol mqtts, wss or http (this listener is ${l.protocol})` });
    if (l.protocol === "http") {
      for (const k of ["maxConnections", "allowAnonymous", "maxUnauthenticated"] as const) {
        if (l[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: "only for MQTT listeners (this listener is http)" });
      }
      if (l.tls?.requireClientCert) ctx.addIssue({ code: "custom", path: ["tls", "requireClientCert"], message: "not for http listeners (use http.token)" });
    }
    if (!web && l.path !== undefined) ctx.addIssue({ code: "custom", path: ["path"], message: `only for protocol ws or wss (this listener is ${l.protocol})` });
    if (!web && l.allowedOrigins !== undefined) ctx.addIssue({ code: "custom", path: ["allowedOrigins"], message: `only for protocol ws or wss (this listener is ${l.protocol})` });
    const t = l.tls;
    if (t?.crl !== undefined && !t.requireClientCert) ctx.addIssue({ code: "custom", path: ["tls", "crl"], message: "only with requireClientCert (it revokes client certificates)" });
    if (t?.requireClientCert && t.ca === undefined) ctx.addIssue({ code: "custom", path: ["tls", "ca"], message: "required with requireClientCert (the CA client certificates must chain to)" });
    if (t?.useIdentityAsUsername && !t.requireClientCert) {
      ctx.addIssue({ code: "custom", path: ["tls", "useIdentityAsUsername"], message: "needs requireClientCert: true (an identity only a verified certificate gives)" });
    }
    if (t?.useIdentityAsUsername && (l.protocol === "wss" || l.protocol === "http")) {
      // Bun.serve verifies client certificates but does not expose them to the application.
      ctx.addIssue({ code: "custom", path: ["tls", "useIdentityAsUsername"], message: "supported on mqtts listeners only (a wss listener cannot read the client certificate)" });
    }
  })
  .transform((l) => ({ ...l, port: l.port ?? DEFAULT_PORT[l.protocol], ...(l.protocol === "ws" || l.protocol === "wss" ? { path: l.path ?? DEFAULT_WS_PATH } : {}) }));

export type ListenerConfig = z.infer<typeof Listener>;

/**
 * Listeners may share a port only as endpoints of one HTTP server: WebSocket
 * endpoints (same protocol and TLS, different paths) and at most one http
 * listener (ws with plain http, wss with http that has the same TLS);
 * anything else on one host:port would fail to bind at start, so it is
 * refused here with both names.
 */
function checkListenerAddresses(ls: ListenerConfig[], ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  ls.forEach((l, i) => {
    if (l.port === 0) return; // each gets its own free port
    const key = `${l.host}|${l.port}`;
    const j = seen.get(key);
    if (j === undefined) {
      seen.set(key, i);
      return;
    }
    const o = ls[j]!;
    const web = (x: ListenerConfig) => x.protocol === "ws" || x.protocol === "wss" || x.protocol === "http";
    const secure = (x: ListenerConfig) => x.tls !== undefined;
    const sameServer = web(l) && web(o) && secure(l) === secure(o) && JSON.stringify(o.tls) === JSON.stringify(l.tls) && (l.protocol === "http" || o.protocol === "http" || o.protocol === l.protocol);
    const twoHttp = l.protocol === "http" && ls.some((x, k) => k < i && x.protocol === "http" && x.host === l.host && x.port === l.port);
    if (!sameServer || twoHttp) {
      ctx.addIssue({ code: "custom", path: [i, "port"], message: `${l.host}:${l.port} is already used by listeners.${j} (only ws/wss endpoints and one http listener with the same TLS may share a port)` });
    } else if (l.protocol !== "http" && o.protocol !== "http" && o.path === l.path) {
      ctx.addIssue({ code: "custom", path: [i, "path"], message: `${l.path} on ${l.host}:${l.port} is already served by listeners.${j}` });
    }
  });
}

/** The `limits` section; exported so that tests can check the example file lists every key. */
export const LimitsSchema = z.strictObject({
  /** Largest packet accepted (fixed header included); also told to v5 clients. */
  maxPacketSize: int(64, 268_435_460).default(1024 * 1024),
  /**
   * Concurrent connections; more are closed at accept. No default here: left
   * out, it is derived at start from the open-file limit minus a margin
   * (fd-limit.ts), since a fixed number is either too low for the machine or
   * more than its descriptors can carry.
   */
  maxConnections: int(1, 10_000_000).optional(),
  /** A socket that sends no CONNECT within this time is closed. */
  connectTimeoutMs: int(100, 3_600_000).default(10_000),
  /** Longest Client Identifier accepted (the spec requires at least 23). */
  maxClientIdLength: int(23, 65535).default(256),
  /** Most levels in a topic name or filter. */
  maxTopicLevels: int(1, 65535).default(128),
  /** Unacknowledged QoS 1/2 messages in flight to one client (v5: also capped by its Receive Maximum). */
  maxInflight: int(1, 65535).default(1024),
  /** Payload bytes in flight to one client; the window closes when it is reached. */
  maxInflightBytes: int(1024, 2 ** 32).default(8 * 1024 * 1024),
  /** Receive Maximum told to v5 clients: unacknowledged QoS 2 messages a client may have in flight to us. */
  receiveMaximum: int(1, 65535).default(256),
  /** Messages queued per session (offline, or beyond the in-flight window); newer ones are dropped and counted. */
  maxQueuedMessages: int(1, 10_000_000).default(1000),
  /** Bytes of payload queued per session; newer messages are dropped and counted. */
  maxQueuedBytes: int(1024, 2 ** 40).default(64 * 1024 * 1024),
  /** Largest Keep Alive accepted; v5 clients asking for more (or 0) are told this value as Server Keep Alive. */
  maxKeepalive: int(1, 65535).default(65535),
  /** Cap on Session Expiry Interval in seconds (v5), and the expiry of 3.1.1 persistent sessions. */
  maxSessionExpiry: int(0, 0xffffffff).default(7 * 24 * 3600),
  /** Topic Alias Maximum told to v5 clients (0 disables inbound aliases). */
  topicAliasMaximum: int(0, 65535).default(64),
  /** Output bytes a connection may have pending; beyond it QoS 0 messages to it are dropped. */
  maxPendingOutput: int(16 * 1024, 2 ** 32).default(4 * 1024 * 1024),
  /** A client whose output does not drain for this long is disconnected. */
  drainTimeoutMs: int(100, 3_600_000).default(30_000),
  /** Subscriptions one session may hold; more are refused in SUBACK (v5 0x97). */
  maxSubscriptionsPerSession: int(1, 10_000_000).default(10_000),
  /** Largest CONNECT accepted before authentication (a client cannot make the broker buffer more for it). */
  maxConnectSize: int(64, 268_435_460).default(65536),
  /** Longest a publisher is held back by a subscriber that makes no progress (0 = never hold back). */
  maxPublisherStallMs: int(0, 3_600_000).default(2000),
  /** Retained messages kept; beyond it new retained topics are refused (kept as live messages only). */
  maxRetainedMessages: int(0, 100_000_000).default(1_000_000),
  /** PUBLISH packets per second one client may send (0 = unlimited); above it the broker stops reading it. */
  publishRate: int(0, 100_000_000).default(0),
  /** PUBLISH bytes per second one client may send (0 = unlimited); above it the broker stops reading it. */
  publishBytesRate: int(0, 2 ** 40).default(0),
  /** New connections per second from one source address (0 = unlimited); more are closed at accept and counted. */
  connectRate: int(0, 1_000_000).default(0),
  /**
   * Sockets that have not finished CONNECT (and authentication) at one time;
   * more are closed at accept. A smaller bound than maxConnections, so that
   * a flood of idle sockets cannot take the places of real clients.
   */
  maxUnauthenticated: int(1, 10_000_000).default(1024),
});

const Persistence = z.strictObject({
  /** SQLite file (created with its directory), or ":memory:" to keep state in memory only. */
  path: DataPath.default("./data/bunmq.db"),
  /** "ack": acknowledge only what is committed; "interval": commit every flushIntervalMs. */
  durability: z.enum(["ack", "interval"]).default("ack"),
  flushIntervalMs: int(10, 3_600_000).default(1000),
  synchronous: z.enum(["normal", "full"]).default("normal"),
});

/**
 * A Client ID pattern: `*` matches any run of characters, `%u` is the user
 * name ("%u-*": alice may use alice-1, alice-phone, ...).
 */
const ClientIdPattern = z.string().min(1);

const User = z.strictObject({
  username: z.string().min(1),
  /** Plain text, or a hash: Mosquitto $6$ / $7$ (mosquitto_passwd) or Bun.password (argon2, bcrypt), verified off the event loop. */
  password: z.string(),
  /** Client IDs this user may connect with (overrides auth.clientIdPattern). */
  clientIdPattern: ClientIdPattern.optional(),
});

/** What an ACL rule governs: publishing, subscribing (and so receiving), or both. */
export const ACL_ACTIONS = ["publish", "subscribe", "all"] as const;

/**
 * One ACL rule. The first rule that matches the client (user, client) and the
 * action and topic decides; once any rule exists, what no rule allows is denied.
 */
const AclRule = z
  .strictObject({
    /** A user name, or "$anonymous" for clients without one; absent = every client. */
    user: z.string().min(1).optional(),
    /** A Client ID, `*` matching any run of characters ("dev-*"); absent = every client. */
    client: z.string().min(1).optional(),
    /** A topic filter; a level that is exactly %u or %c is replaced by the user name or Client ID. */
    topic: z.string().min(1),
    action: z.enum(ACL_ACTIONS),
    allow: z.boolean(),
  })
  .superRefine((r, ctx) => {
    const err = aclTopicError(r.topic);
    if (err !== null) ctx.addIssue({ code: "custom", path: ["topic"], message: err });
  });

/** Why `topic` is not a usable ACL topic filter, or null. */
export function aclTopicError(topic: string): string | null {
  const levels = topic.split("/");
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l === "#" && i !== levels.length - 1) return "# must be the last level";
    if (l !== "#" && l !== "+" && (l.includes("#") || l.includes("+"))) return "a wildcard must be a whole level";
    if (l !== "%u" && l !== "%c" && (l.includes("%u") || l.includes("%c"))) return "%u and %c must be a whole level";
    if (l.includes("\u0000")) return "U+0000 is not allowed";
  }
  return null;
}

const Auth = z
  .strictObject({
    /** Accept clients that send no user name. */
    allowAnonymous: z.boolean().default(true),
    users: z.array(User).default([]),
    /**
     * Users from a file, one `name:hash` per line: Mosquitto's password file
     * ($6$ and $7$ hashes, made by mosquitto_passwd) or Bun.password hashes
     * (argon2id, bcrypt; `bunmq passwd FILE USER`). Relative to the config file;
     * re-read on SIGHUP and when it changes.
     */
    passwordFile: z.string().min(1).optional(),
    /** ACL rules, checked before those of aclFile. */
    acl: z.array(AclRule).default([]),
    /** Mosquitto's acl_file format (user, topic [read|write|readwrite|deny], pattern). Relative to the config file. */
    aclFile: z.string().min(1).optional(),
    /**
     * A session belongs to the user name that created it: a CONNECT with its
     * Client ID and another user name is refused (v5 0x87, 3.1.1 0x05), and
     * the live connection stays.
     */
    clientIdOwnership: z.boolean().default(false),
    /** Client IDs every user may connect with, unless the user has its own clientIdPattern. */
    clientIdPattern: ClientIdPattern.optional(),
  });

const Redirect = z.strictObject({
  /** Where clients should connect instead (v5 Server Reference, e.g. "broker2.example.com:1883"). */
  serverReference: z.string().min(1),
  /** true: Server moved (0x9D); false: Use another server (0x9C). */
  permanent: z.boolean().default(true),
});

const Mqtt = z.strictObject({
  /** Assign outbound Topic Aliases to v5 clients that accept them. */
  outboundTopicAliases: z.boolean().default(true),
  /** Response Information prefix for v5 clients that request it ("" = not offered); the client id is appended. */
  responseInformation: z.string().default(""),
  /** Refuse every connection and send clients elsewhere (v5 CONNACK 0x9C/0x9D with Server Reference; 3.1.x: 0x03). */
  redirect: Redirect.optional(),
});

const Sys = z.strictObject({
  /** Seconds between $SYS updates (retained, Mosquitto's topic names); 0 turns $SYS off. */
  interval: int(0, 86_400).default(10),
});

const Http = z.strictObject({
  /**
   * Bearer token for /metrics and /api/v1 (and the dashboard). Optional on
   * loopback; an http listener on any other address refuses to start without it.
   */
  token: z.string().min(16, "at least 16 characters").optional(),
  /** Serve the live dashboard at GET /. */
  dashboard: z.boolean().default(true),
});

const Shutdown = z.strictObject({
  /** Publish the wills of connected clients when the broker shuts down (as Mosquitto does). */
  publishWills: z.boolean().default(true),
});

export const ConfigSchema = z.strictObject({
  /** A JSON Schema reference for editors (config.schema.json); ignored by the broker. */
  $schema: z.string().optional(),
  listeners: z.array(Listener).min(1).superRefine(checkListenerAddresses).default([{ host: "127.0.0.1", port: 1883, protocol: "mqtt" }]),
  logLevel: LogLevel.default("info"),
  /** "text": `TIME LEVEL msg key=value`; "json": one JSON object per line. */
  logFormat: z.enum(["text", "json"]).default("text"),
  /** Write log lines to this file (appended; relative to the config file) instead of stderr. */
  logFile: z.string().min(1).optional(),
  limits: LimitsSchema.default(() => LimitsSchema.parse({})),
  persistence: Persistence.default(() => Persistence.parse({})),
  auth: Auth.default(() => Auth.parse({})),
  mqtt: Mqtt.default(() => Mqtt.parse({})),
  sys: Sys.default(() => Sys.parse({})),
  http: Http.default(() => Http.parse({})),
  shutdown: Shutdown.default(() => Shutdown.parse({})),
  /** Upstream brokers that topics are forwarded to and from (bridge/config.ts). */
  bridges: BridgesSchema.default([]),
}).superRefine((c, ctx) => {
  c.listeners.forEach((l, i) => {
    if (l.protocol === "http" && c.http.token === undefined && !isLoopback(l.host)) {
      ctx.addIssue({ code: "custom", path: ["listeners", i, "host"], message: `an http listener on ${l.host} (not loopback) needs http.token` });
    }
  });
});

/** A host that only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** A config that failed validation; `message` names each offending field path. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Validate a config object; defaults fill everything left out. Relative
 * file paths are resolved against `baseDir` (loadConfig: the config file's
 * directory).
 */
export function parseConfig(input: unknown, source = "config", baseDir = process.cwd()): Config {
  const result = ConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.flatMap((i) => {
      const at = (path: PropertyKey[]) => (path.length ? path.map(String).join(".") : "(root)");
      // An unknown key is reported on its parent; name the key itself.
      if (i.code === "unrecognized_keys") return i.keys.map((k) => `  ${at([...i.path, k])}: unknown option`);
      return [`  ${at(i.path)}: ${i.message}`];
    });
    throw new ConfigError(`${source} is invalid:\n${lines.join("\n")}`);
  }
  const auth = result.data.auth;
  if (result.data.logFile !== undefined) result.data.logFile = resolve(baseDir, result.data.logFile);
  if (auth.passwordFile !== undefined) auth.passwordFile = resolve(baseDir, auth.passwordFile);
  if (auth.aclFile !== undefined) auth.aclFile = resolve(baseDir, auth.aclFile);
  resolveBridgePaths(result.data.bridges, baseDir);
  for (const l of result.data.listeners) {
    const t = l.tls;
    if (t === undefined) continue;
    t.cert = resolve(baseDir, t.cert);
    t.key = resolve(baseDir, t.key);
    if (t.ca !== undefined) t.ca = resolve(baseDir, t.ca);
    if (t.crl !== undefined) t.crl = resolve(baseDir, t.crl);
  }
  return deepFreeze(result.data);
}

/** Command-line overrides; each replaces the matching field of the file. */
export interface Overrides {
  host?: string;
  port?: number;
  logLevel?: string;
  data?: string;
}

/** The command-line flags that override the file, as the strings typed. */
export interface Flags {
  host?: string;
  port?: string;
  logLevel?: string;
  data?: string;
}

/**
 * Check flag values against the same rules as the fields they fill in, but
 * report them under the flag's name (`--port: ...`): the user typed
 * `--port`, not `listeners.0.port`. Throws ConfigError, one line.
 */
export function flagOverrides(flags: Flags): Overrides {
  const out: Overrides = {};
  if (flags.host !== undefined) {
    if (!Host.safeParse(flags.host).success) throw new ConfigError("--host: expected a host name or IP address");
    out.host = flags.host;
  }
  if (flags.port !== undefined) {
    // Digits only: Number() would also take "", " 1", "1e3" and "0x10".
    const port = /^\d+$/.test(flags.port) ? Number(flags.port) : Number.NaN;
    if (!Port.safeParse(port).success) throw new ConfigError(`--port: expected an integer ${PORT_MIN}-${PORT_MAX}`);
    out.port = port;
  }
  if (flags.logLevel !== undefined) {
    if (!LogLevel.safeParse(flags.logLevel).success) throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(", ")}`);
    out.logLevel = flags.logLevel;
  }
  if (flags.data !== undefined) {
    if (!DataPath.safeParse(flags.data).success) throw new ConfigError("--data: expected a file path, or :memory:");
    out.data = flags.data;
  }
  return out;
}

/**
 * Read `path` (if given) and validate it on its own, so that its errors name
 * its own fields and an override cannot hide one (a bad `listeners` under
 * `--port`); then apply `overrides` and validate the result.
 */
export function loadConfig(path: string | undefined, overrides: Overrides = {}): Config {
  const raw = path === undefined ? {} : readConfigFile(path);
  const baseDir = path === undefined ? process.cwd() : dirname(resolve(path));
  const fromFile = parseConfig(raw, path ?? "config", baseDir);
  if (Object.values(overrides).every((v) => v === undefined)) return fromFile;
  return parseConfig(applyOverrides(raw, overrides), `${path ?? "config"} with the overrides`, baseDir);
}

const FS_REASONS: Record<string, string> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "a part of the path is not a directory",
};

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    // The code, not the message: node:fs's messages differ between Bun and Deno.
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read config file ${path}: ${code === undefined ? (err as Error).message : `${FS_REASONS[code] ?? "cannot open it"} (${code})`}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // Not the engine's message: it differs between Bun and Deno.
    throw new ConfigError(`config file ${path} is not valid JSON: ${jsonErrorAt(text) ?? (err as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return raw as Record<string, unknown>;
}

/** `raw` (already valid) with the overrides written over it; `raw` itself is not modified. */
function applyOverrides(raw: Record<string, unknown>, overrides: Overrides): Record<string, unknown> {
  if (overrides.host !== undefined || overrides.port !== undefined) {
    const listeners = Array.isArray(raw.listeners) ? [...raw.listeners] : [{}];
    const first = { ...(listeners[0] as object) } as Record<string, unknown>;
    if (overrides.host !== undefined) first.host = overrides.host;
    if (overrides.port !== undefined) first.port = overrides.port;
    listeners[0] = first;
    raw = { ...raw, listeners };
  }
  if (overrides.logLevel !== undefined) raw = { ...raw, logLevel: overrides.logLevel };
  if (overrides.data !== undefined) {
    raw = { ...raw, persistence: { ...(raw.persistence as object), path: overrides.data } };
  }
  return raw;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
