/**
 * @module bridge/config
 * The `bridges[]` section of the config: one upstream broker per entry, the
 * topics it forwards and in which direction, its reconnect and queue
 * policy. Checks that need more than one field (a TLS option on a plain
 * address, a wildcard in a prefix, a duplicate name) are made here so that
 * a bad bridge stops the start with a message naming the field.
 */
import { hostname } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";
import { isValidFilter } from "../protocol/validate.ts";

const int = (min: number, max: number) => z.number().int().min(min).max(max);

export const BRIDGE_SCHEMES = ["mqtt", "mqtts", "ws", "wss"] as const;
export type BridgeScheme = (typeof BRIDGE_SCHEMES)[number];
const DEFAULT_PORT: Record<BridgeScheme, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 };

/** Level count used to check patterns here (the broker's own limit is checked against routed topics). */
const MAX_LEVELS = 128;

const Prefix = z
  .string()
  .default("")
  .refine((p) => !/[+#\u0000]/.test(p), "a prefix may not contain + or # (it is a topic, not a filter)");

const BridgeTopic = z
  .strictObject({
    /** Topic filter, as Mosquitto's `topic` line: matched locally under localPrefix, upstream under remotePrefix. */
    pattern: z.string().min(1).refine((p) => isValidFilter(p, MAX_LEVELS) && !p.startsWith("$share/"), "not a valid topic filter"),
    /** out: local → upstream; in: upstream → local; both. */
    direction: z.enum(["out", "in", "both"]).default("out"),
    /** Subscription QoS on each side: a message goes on at min(its QoS, this). */
    qos: int(0, 2).default(1),
    /** Added to the pattern for the local subscription; stripped from outgoing, added to incoming topics. */
    localPrefix: Prefix,
    /** Added to the pattern for the upstream subscription; added to outgoing, stripped from incoming topics. */
    remotePrefix: Prefix,
  })
  .superRefine((t, ctx) => {
    if (!isValidFilter(t.localPrefix + t.pattern, MAX_LEVELS)) ctx.addIssue({ code: "custom", path: ["localPrefix"], message: "localPrefix + pattern is not a valid topic filter" });
    if (!isValidFilter(t.remotePrefix + t.pattern, MAX_LEVELS)) ctx.addIssue({ code: "custom", path: ["remotePrefix"], message: "remotePrefix + pattern is not a valid topic filter" });
  });
export type BridgeTopicConfig = z.infer<typeof BridgeTopic>;

const BridgeTls = z.strictObject({
  /** CA certificates (PEM file) the upstream's certificate must chain to; absent: the system's roots. */
  ca: z.string().min(1).optional(),
  /** Client certificate (PEM file), for upstreams that require one. */
  cert: z.string().min(1).optional(),
  /** Private key of the client certificate (PEM file). */
  key: z.string().min(1).optional(),
  /** Passphrase of an encrypted key. */
  passphrase: z.string().optional(),
  /** Server name for SNI and certificate verification; default: the address's host. */
  servername: z.string().min(1).optional(),
  /** Verify the upstream's certificate (turn off only for tests). */
  rejectUnauthorized: z.boolean().default(true),
});

export const BridgeSchema = z
  .strictObject({
    /** Names the bridge in the log, $SYS, metrics and the local session `$bridge/NAME`. */
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "1 to 64 of A-Z a-z 0-9 _ . -"),
    /** mqtt://host:port, mqtts://host:port, ws://host:port/path or wss://host:port/path. */
    address: z.string().refine((a) => parseAddress(a) !== null, "expected mqtt://, mqtts://, ws:// or wss:// with a host"),
    /** 4 (MQTT 3.1.1) or 5. */
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
    /** Client ID upstream; default HOSTNAME.NAME (as Mosquitto). Must stay the same for the upstream session to persist. */
    clientId: z.string().min(1).max(65535).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    /** TLS options (mqtts / wss). */
    tls: BridgeTls.optional(),
    /** Keep alive in seconds sent in CONNECT; PINGREQ goes out at this period. */
    keepalive: int(5, 65535).default(60),
    /** Start a fresh upstream session at each connection (loses what the upstream held while the bridge was away). */
    cleanStart: z.boolean().default(false),
    /** v5: Session Expiry Interval asked of the upstream, seconds (3.1.1 sessions persist while cleanStart is false). */
    sessionExpiry: int(0, 0xffffffff).default(7 * 86400),
    reconnect: z
      .strictObject({
        /** First delay after a failure; doubled each failure, with jitter. */
        minMs: int(10, 3_600_000).default(500),
        /** Largest delay. */
        maxMs: int(10, 3_600_000).default(30_000),
      })
      .refine((r) => r.maxMs >= r.minMs, { message: "maxMs is below minMs", path: ["maxMs"] })
      .default({ minMs: 500, maxMs: 30_000 }),
    /** Give up a connection attempt (TCP, TLS, CONNACK) after this long. */
    connectTimeoutMs: int(100, 600_000).default(10_000),
    /** QoS 1/2 messages sent upstream and not yet acknowledged (also bounded by the upstream's Receive Maximum). */
    maxInflight: int(1, 65535).default(100),
    /** Bounds of the outbound queue (the messages waiting while the upstream is away or slow). */
    queue: z
      .strictObject({
        maxMessages: int(1, 100_000_000).default(100_000),
        maxBytes: int(1, Number.MAX_SAFE_INTEGER).default(100 * 1024 * 1024),
      })
      .default({ maxMessages: 100_000, maxBytes: 100 * 1024 * 1024 }),
    /** 3.1.1: announce a bridge (protocol level 0x84, Mosquitto's try_private) so the upstream does not echo our messages; retried without when refused. */
    tryPrivate: z.boolean().default(true),
    topics: z.array(BridgeTopic).min(1),
  })
  .superRefine((b, ctx) => {
    const a = parseAddress(b.address);
    if (a === null) return;
    if (b.tls !== undefined && !a.secure) ctx.addIssue({ code: "custom", path: ["tls"], message: `only for mqtts:// or wss:// addresses (this one is ${a.scheme}://)` });
    if ((b.tls?.cert === undefined) !== (b.tls?.key === undefined)) ctx.addIssue({ code: "custom", path: ["tls", b.tls?.cert === undefined ? "cert" : "key"], message: "cert and key go together" });
    if (b.password !== undefined && b.username === undefined && b.protocolVersion === 4) ctx.addIssue({ code: "custom", path: ["password"], message: "MQTT 3.1.1 needs a username with a password" });
  });
export type BridgeConfig = z.infer<typeof BridgeSchema>;

export const BridgesSchema = z.array(BridgeSchema).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((b, i) => {
    if (seen.has(b.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `another bridge is named ${b.name}` });
    seen.add(b.name);
  });
});

export interface BridgeAddress {
  scheme: BridgeScheme;
  host: string;
  port: number;
  /** ws / wss: the HTTP path (default /mqtt). */
  path: string;
  secure: boolean;
}

/** Split a bridge address, or null when it is not one. */
export function parseAddress(address: string): BridgeAddress | null {
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    return null;
  }
  const scheme = u.protocol.replace(/:$/, "") as BridgeScheme;
  if (!BRIDGE_SCHEMES.includes(scheme) || u.hostname === "") return null;
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = u.port === "" ? DEFAULT_PORT[scheme] : Number(u.port);
  const web = scheme === "ws" || scheme === "wss";
  return { scheme, host, port, path: web ? (u.pathname === "/" || u.pathname === "" ? "/mqtt" : u.pathname) : "", secure: scheme === "mqtts" || scheme === "wss" };
}

/** The upstream Client ID of a bridge. */
export function bridgeClientId(b: BridgeConfig): string {
  return b.clientId ?? `${hostname()}.${b.name}`;
}

/** Resolve the bridge's TLS file paths against the config file's directory (in place, before freezing). */
export function resolveBridgePaths(list: BridgeConfig[], baseDir: string): void {
  for (const b of list) {
    const t = b.tls;
    if (t === undefined) continue;
    if (t.ca !== undefined) t.ca = resolve(baseDir, t.ca);
    if (t.cert !== undefined) t.cert = resolve(baseDir, t.cert);
    if (t.key !== undefined) t.key = resolve(baseDir, t.key);
  }
}
