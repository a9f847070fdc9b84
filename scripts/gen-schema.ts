/**
 * Writes config.schema.json, the JSON Schema of the config file, from the
 * zod schema in lib/config.ts (input side: every key with a default is
 * optional, and the default is shown). zod only carries descriptions given
 * with .describe()/.meta(), and config.ts documents its options in JSDoc,
 * so the descriptions live in DESCRIPTIONS below, by option path, written
 * from those comments and README's option tables. Not read from README.md
 * at generation time on purpose: a wording change there would then fail
 * CI's schema check for a change that touched no option.
 *
 * An option with no entry, or an entry for an option that no longer
 * exists, fails the generator, so the table cannot drift from the schema.
 *
 *   bun run scripts/gen-schema.ts          write config.schema.json
 *   bun run scripts/gen-schema.ts --check  exit 1 if the checked-in file is not what would be written
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ConfigSchema } from "../lib/config.ts";

export const SCHEMA_PATH = join(import.meta.dir, "..", "config.schema.json");

type Json = { [k: string]: unknown };

/**
 * Markdown, by path: `a.b` for an object's key, `a[]` for an array's items.
 * Defaults are not repeated here: the schema's `default` says them, except
 * where none can be given (limits.maxConnections, listeners[].port).
 */
export const DESCRIPTIONS: Record<string, string> = {
  $schema: "The JSON Schema of this file (`./config.schema.json`), for editors; ignored by the broker.",

  listeners: "Where the broker listens: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS, WebSocket or WebSocket over TLS, and the `http` observability endpoints. At least one.",
  "listeners[]": "One address and one transport.",
  "listeners[].host": "Address to bind; `0.0.0.0` or `::` listens on all interfaces.",
  "listeners[].port": "TCP port; `0` picks a free one (the real port is printed). Default by protocol: mqtt 1883, mqtts 8883, ws 8080, wss 8081, http 8080.",
  "listeners[].protocol": "`mqtt` (TCP), `mqtts` (TLS), `ws` (WebSocket), `wss` (WebSocket over TLS), or `http`: the observability endpoints (`/healthz`, `/metrics`, `/api/v1`, the dashboard; HTTPS with `tls`; it may share a host and port with a `ws` listener).",
  "listeners[].path": "`ws`/`wss` only: the HTTP path of the MQTT endpoint (default `/mqtt`).",
  "listeners[].tls": "TLS of an `mqtts`, `wss` or `http` (HTTPS) listener. File paths are relative to the config file; the files are read at start and on SIGHUP.",
  "listeners[].tls.cert": "Server certificate chain (PEM file): the certificate, then any intermediates.",
  "listeners[].tls.key": "Private key of the certificate (PEM file).",
  "listeners[].tls.passphrase": "Passphrase of an encrypted key.",
  "listeners[].tls.ca": "CA certificates (PEM file) that client certificates must chain to.",
  "listeners[].tls.crl": "Certificate revocation lists (PEM file), with `requireClientCert`: a revoked client certificate fails the handshake. Re-read on SIGHUP.",
  "listeners[].tls.requireClientCert": "Mutual TLS: a client without a certificate signed by `ca` fails the handshake.",
  "listeners[].tls.useIdentityAsUsername": "`mqtts` with `requireClientCert`: the client certificate's Common Name is the user name and no password is checked (Mosquitto's `use_identity_as_username`).",
  "listeners[].tls.minVersion": "Oldest TLS version accepted; `TLSv1.3` refuses TLS 1.2 clients (TLS 1.0/1.1 are never offered).",
  "listeners[].tls.ciphers": "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not configurable); the library default when absent.",
  "listeners[].allowedOrigins": "`ws`/`wss` only: browser origins (the `Origin` header) allowed to open the WebSocket; others get HTTP 403. Requests without an `Origin` (clients that are not browsers) are always allowed. Absent: any origin.",
  "listeners[].allowedOrigins[]": "A browser origin, e.g. `https://app.example.com`.",
  "listeners[].maxConnections": "Connections on this listener (`limits.maxConnections` applies too); more are closed at accept (WebSocket: HTTP 503 before the upgrade).",
  "listeners[].allowAnonymous": "This listener's own anonymous-access rule, overriding `auth.allowAnonymous`.",
  "listeners[].maxUnauthenticated": "Sockets of this listener that have not finished CONNECT (`limits.maxUnauthenticated` applies too); more are closed at accept.",

  logLevel: "`silent`, `error`, `warn`, `info` or `debug`. At `info`: start-up, one line per client connect, disconnect, refused CONNECT, limit hit, takeover, reload and shutdown. `silent` logs nothing (embedded use in test suites).",
  logFormat: "`text`: `TIME LEVEL msg key=value`; `json`: one JSON object per line.",
  logFile: "Append log lines to this file instead of stderr (relative to the config file).",

  limits: "Limits that protect memory and other clients; every one has a finite default.",
  "limits.maxPacketSize": "Largest packet accepted, fixed header included (checked before the body is buffered); also told to v5 clients.",
  "limits.maxConnections": "Concurrent connections; more are closed at accept. Default: derived at start from the process's open-file limit minus a margin.",
  "limits.connectTimeoutMs": "A socket that sends no CONNECT within this time is closed.",
  "limits.maxClientIdLength": "Longest Client Identifier accepted, in bytes (the spec requires at least 23).",
  "limits.maxTopicLevels": "Most levels in a topic name or filter.",
  "limits.maxInflight": "Unacknowledged QoS 1/2 messages in flight to one client (v5: also capped by its Receive Maximum).",
  "limits.maxInflightBytes": "Payload bytes in flight to one client; the window closes when it is reached.",
  "limits.receiveMaximum": "Receive Maximum told to v5 clients: unacknowledged QoS 2 messages a client may have in flight to the broker (beyond it: v5 0x93).",
  "limits.maxQueuedMessages": "Messages queued per session (offline, or beyond the in-flight window); newer ones are dropped and counted.",
  "limits.maxQueuedBytes": "Payload bytes queued per session; newer messages are dropped and counted.",
  "limits.maxKeepalive": "Largest Keep Alive accepted; v5 clients asking for more (or 0) are told this value as Server Keep Alive, 3.1.x clients are refused.",
  "limits.maxSessionExpiry": "Cap on the v5 Session Expiry Interval in seconds (told in CONNACK), and the expiry of 3.1.1 persistent sessions.",
  "limits.topicAliasMaximum": "Topic Alias Maximum told to v5 clients (`0` disables inbound aliases).",
  "limits.maxPendingOutput": "Output bytes a connection may have pending; beyond it QoS 0 messages to it are dropped.",
  "limits.drainTimeoutMs": "A client whose output does not drain for this long is disconnected.",
  "limits.maxSubscriptionsPerSession": "Subscriptions one session may hold; more are refused in SUBACK (v5 0x97, 3.1.1 0x80).",
  "limits.maxConnectSize": "Largest CONNECT accepted before authentication, so a client cannot make the broker buffer more for it (v5 CONNACK 0x95).",
  "limits.maxPublisherStallMs": "Longest a publisher is held back by a subscriber that makes no progress; then that subscriber's overflow is dropped (counted). `0` never holds a publisher back.",
  "limits.maxRetainedMessages": "Retained topics kept; beyond it a new retained topic is not retained (delivered live only, counted).",
  "limits.publishRate": "PUBLISH packets per second one client may send (`0`: unlimited); above it the broker stops reading that client until it is back under (nothing is dropped).",
  "limits.publishBytesRate": "PUBLISH bytes per second one client may send (`0`: unlimited); same policy as `publishRate`.",
  "limits.connectRate": "New connections per second from one source address (`0`: unlimited); more are closed at accept and counted.",
  "limits.maxUnauthenticated": "Sockets that have not finished CONNECT and authentication at one time; more are closed at accept, so a flood of idle sockets cannot take the places of real clients.",

  persistence: "Where and how session state and retained messages are stored.",
  "persistence.path": "SQLite file (created with its directory), or `:memory:` to keep state in memory only.",
  "persistence.durability": "`ack`: acknowledge only what is committed; `interval`: commit every `flushIntervalMs` (a crash loses at most that window).",
  "persistence.flushIntervalMs": "Commit period in `interval` durability.",
  "persistence.synchronous": "SQLite `synchronous`: `normal` survives a crash of the broker, `full` also a power loss.",

  auth: "Authentication and access control.",
  "auth.allowAnonymous": "Accept clients that send no user name.",
  "auth.users": "Users and their passwords. Users with a plain-text password can also log in with MQTT 5 enhanced authentication (`SCRAM-SHA-256`).",
  "auth.users[]": "A user.",
  "auth.users[].username": "The user name.",
  "auth.users[].password": "Plain text, or a hash: Mosquitto's `$6$`/`$7$` (mosquitto_passwd) or a `Bun.password.hash()` string (argon2, bcrypt), verified off the event loop.",
  "auth.users[].clientIdPattern": "Client IDs this user may connect with (`*` any run of characters, `%u` the user name); overrides `auth.clientIdPattern`.",
  "auth.passwordFile": "Users from a file, one `name:hash` per line: Mosquitto's password file (`$6$`, `$7$`) or one written by `bunmq passwd` (argon2id). Relative to the config file; re-read on SIGHUP and when it changes.",
  "auth.acl": "ACL rules, checked before those of `aclFile`; the first rule that matches decides, and once any rule exists, what no rule allows is denied.",
  "auth.acl[]": "One ACL rule: the first that matches the client, the action and the topic decides.",
  "auth.acl[].user": "A user name, or `$anonymous` for clients without one; absent: every client.",
  "auth.acl[].client": "A Client ID, `*` matching any run of characters (`dev-*`); absent: every client.",
  "auth.acl[].topic": "A topic filter; a level that is exactly `%u` or `%c` is replaced by the user name or Client ID.",
  "auth.acl[].action": "`publish`, `subscribe` (and so receive), or `all`.",
  "auth.acl[].allow": "Allow (`true`) or deny (`false`).",
  "auth.aclFile": "A Mosquitto `acl_file` (`user`, `topic [read|write|readwrite|deny]`, `pattern`), checked after `auth.acl`. Relative to the config file.",
  "auth.clientIdOwnership": "A session belongs to the user that created it: another user's CONNECT with its Client ID is refused (v5 0x87, 3.1.1 5) and the live connection stays.",
  "auth.clientIdPattern": "Client IDs every user may connect with, e.g. `%u-*` (`*` any run of characters, `%u` the user name), unless the user has its own `clientIdPattern`.",

  mqtt: "Protocol options.",
  "mqtt.outboundTopicAliases": "Assign outbound Topic Aliases to v5 clients that accept them.",
  "mqtt.responseInformation": "Response Information prefix for v5 clients that request it (the Client ID is appended); empty: none offered.",
  "mqtt.redirect": "Refuse every connection and send clients elsewhere (v5 CONNACK 0x9D or 0x9C with a Server Reference; 3.1.x: 0x03).",
  "mqtt.redirect.serverReference": "Where clients should connect instead (v5 Server Reference), e.g. `broker2.example.com:1883`.",
  "mqtt.redirect.permanent": "`true`: Server moved (0x9D); `false`: Use another server (0x9C).",

  sys: "`$SYS` topics (retained, Mosquitto's topic names).",
  "sys.interval": "Seconds between `$SYS` updates; `0` turns `$SYS` off.",

  http: "The `http` listener's endpoints (`/healthz`, `/metrics`, `/api/v1`, the dashboard).",
  "http.token": "Bearer token (at least 16 characters) for the `http` endpoints other than `/healthz`. Optional on loopback; an `http` listener on any other address refuses to start without it.",
  "http.dashboard": "Serve the live dashboard at `/` of the `http` listener.",

  bridges: "Upstream brokers that chosen topics are forwarded to and from (README: Bridges). Reloaded on SIGHUP: bridges are added, removed, or restarted when changed.",
  "bridges[]": "One upstream broker; the local session `$bridge/NAME` holds what waits for it.",
  "bridges[].name": "Names the bridge in the log, `$SYS/broker/bridges/NAME/...`, the metrics and its local session `$bridge/NAME` (1 to 64 of `A-Z a-z 0-9 _ . -`, unique).",
  "bridges[].address": "`mqtt://host:port`, `mqtts://host:port`, `ws://host:port/path` or `wss://host:port/path` (default ports 1883, 8883, 80, 443; default path `/mqtt`).",
  "bridges[].protocolVersion": "`4` (MQTT 3.1.1) or `5`.",
  "bridges[].clientId": "Client ID upstream; default `HOSTNAME.NAME` (as Mosquitto). Keep it stable: the upstream session is found by it.",
  "bridges[].username": "User name sent upstream.",
  "bridges[].password": "Password sent upstream (3.1.1: only with a username).",
  "bridges[].tls": "TLS to an `mqtts://` or `wss://` upstream. File paths are relative to the config file.",
  "bridges[].tls.ca": "CA certificates (PEM file) the upstream's certificate must chain to; absent: the system's roots.",
  "bridges[].tls.cert": "Client certificate (PEM file), for an upstream that requires one; with `key`.",
  "bridges[].tls.key": "Private key of the client certificate (PEM file).",
  "bridges[].tls.passphrase": "Passphrase of an encrypted key.",
  "bridges[].tls.servername": "Server name for SNI and certificate verification; default: the address's host.",
  "bridges[].tls.rejectUnauthorized": "Verify the upstream's certificate. Turn off only for tests.",
  "bridges[].keepalive": "Keep alive (seconds) sent in CONNECT; PINGREQ goes out at this period, and a silent upstream is dropped after 1.5 times it.",
  "bridges[].cleanStart": "`false` (default): resume the upstream session, so messages the upstream held for the bridge while it was away arrive. `true`: a fresh session at each connection.",
  "bridges[].sessionExpiry": "v5: Session Expiry Interval asked of the upstream, in seconds (a 3.1.1 session persists while `cleanStart` is false).",
  "bridges[].reconnect": "Reconnection backoff: the delay doubles from `minMs` to `maxMs` after each failure, each drawn between half and all of its step (jitter).",
  "bridges[].reconnect.minMs": "First delay after a failure, in ms.",
  "bridges[].reconnect.maxMs": "Largest delay, in ms.",
  "bridges[].connectTimeoutMs": "Give up a connection attempt (TCP, TLS, WebSocket upgrade, CONNACK) after this long.",
  "bridges[].maxInflight": "QoS 1/2 messages sent upstream and not yet acknowledged (also bounded by the upstream's Receive Maximum).",
  "bridges[].queue": "Bounds of the bridge's outbound queue, stored like a persistent session's. Beyond them messages are dropped and counted while the upstream is away; while it is connected, publishers are held back instead.",
  "bridges[].queue.maxMessages": "Messages the queue holds.",
  "bridges[].queue.maxBytes": "Payload bytes the queue holds.",
  "bridges[].tryPrivate": "3.1.1: announce a bridge (protocol level 0x84, Mosquitto's `try_private`) so that the upstream does not echo our messages back; retried without it when refused, with echo detection instead.",
  "bridges[].topics": "What is forwarded, as Mosquitto's `topic` lines. At least one.",
  "bridges[].topics[]": "One topic filter and its direction.",
  "bridges[].topics[].pattern": "Topic filter; `localPrefix + pattern` is subscribed locally (out, both), `remotePrefix + pattern` upstream (in, both).",
  "bridges[].topics[].direction": "`out` (local to upstream), `in` (upstream to local) or `both`.",
  "bridges[].topics[].qos": "Subscription QoS on each side: a message is forwarded at the lower of its QoS and this.",
  "bridges[].topics[].localPrefix": "Stripped from outgoing topics, added to incoming ones (no wildcards).",
  "bridges[].topics[].remotePrefix": "Added to outgoing topics, stripped from incoming ones (no wildcards).",

  shutdown: "What a shutdown (SIGINT, SIGTERM) does.",
  "shutdown.publishWills": "Publish the wills of connected clients when the broker shuts down (as Mosquitto does).",
};

/** Attach descriptions by path, recording the paths used and those without one. */
function describe(node: Json, path: string, used: Set<string>, missing: string[]): void {
  if (path !== "") {
    const text = DESCRIPTIONS[path];
    if (text === undefined) missing.push(path);
    else {
      used.add(path);
      node.description = text.replace(/`/g, ""); // plain text for validators and editors without Markdown
      node.markdownDescription = text; // VS Code shows this one
    }
  }
  // A non-standard format (zod's "starts_with") would make strict validators refuse the schema.
  if (typeof node.format === "string" && !["uri", "email", "date-time"].includes(node.format)) delete node.format;
  const props = node.properties as Record<string, Json> | undefined;
  if (props) for (const [k, v] of Object.entries(props)) describe(v, path === "" ? k : `${path}.${k}`, used, missing);
  const items = node.items as Json | undefined;
  if (items && typeof items === "object") describe(items, `${path}[]`, used, missing);
}

export function generate(): string {
  // No `unrepresentable: "any"`: a type JSON Schema cannot say should fail here, not become `{}` (anything goes).
  const schema = z.toJSONSchema(ConfigSchema, { io: "input" }) as Json;
  const used = new Set<string>();
  const missing: string[] = [];
  describe(schema, "", used, missing);
  if (missing.length > 0) throw new Error(`options without a description (add them to DESCRIPTIONS in scripts/gen-schema.ts): ${missing.join(", ")}`);
  const stale = Object.keys(DESCRIPTIONS).filter((k) => !used.has(k));
  if (stale.length > 0) throw new Error(`DESCRIPTIONS in scripts/gen-schema.ts names options the schema does not have: ${stale.join(", ")}`);
  const out = {
    $schema: schema.$schema,
    $id: "https://github.com/bunmq/bunmq/config.schema.json",
    title: "bunmq configuration",
    description: "The bunmq config file (bun run broker.ts --config FILE). Every option is optional.",
    ...schema,
  };
  return JSON.stringify(out, null, 2) + "\n";
}

if (import.meta.main) {
  const text = generate();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(SCHEMA_PATH, "utf8");
    } catch {
      // missing: reported as out of date below
    }
    if (current !== text) {
      console.error("config.schema.json is not up to date with lib/config.ts and scripts/gen-schema.ts: run `bun run schema` and commit it");
      process.exit(1);
    }
    console.log("config.schema.json is up to date");
  } else {
    writeFileSync(SCHEMA_PATH, text);
    console.log(`wrote ${SCHEMA_PATH}`);
  }
}
