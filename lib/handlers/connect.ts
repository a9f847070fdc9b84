/**
 * @module handlers/connect
 * CONNECT: decode (lib/protocol/connect-codec.ts), validate, authenticate, then accept —
 * take over any live connection with the same Client ID, resume or discard
 * the session, CONNACK, re-send what was in flight.
 *
 * Takeover (3.1.1 [MQTT-3.1.4-2], 5 [MQTT-3.1.4-3]) happens for every
 * accepted CONNECT whatever Clean Session / Clean Start says, and only after
 * validation and authentication passed: a refused CONNECT never kicks anyone.
 * The old connection is detached synchronously before the new one attaches,
 * so its later socket-close can no longer reach the session.
 */
import { randomBytes } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { AuthContext, type PendingConnect } from "../auth-context.ts";
import { State } from "../conn-state.ts";
import type { Connection } from "../connection.ts";
import { log } from "../log.ts";
import type { QoS } from "../message.ts";
import { type Packet, rawConnectLevel } from "../protocol/codec.ts";
import type { ConnackExtras } from "../protocol/connack.ts";
import { type DecodedConnect, decodeConnect } from "../protocol/connect-codec.ts";
import { MqttError, RC } from "../protocol/reason-codes.ts";
import { topicNameError } from "../protocol/validate.ts";
import type { Will } from "../session.ts";
import { OutboundAliases } from "../topic-aliases.ts";
import { PublishLimiter } from "../rate-limit.ts";
import { BRIDGE_SESSION_PREFIX } from "../session.ts";

/** Decode a CONNECT frame; an unsupported protocol level gets CONNACK 0x01 in 3.1.1 form ([MQTT-3.1.2-2]). */
export function onConnectFrame(conn: Connection, frame: Buffer): void {
  let packet: DecodedConnect;
  try {
    packet = decodeConnect(frame);
  } catch (err) {
    const level = rawConnectLevel(frame);
    if (err instanceof MqttError && /protocol version/i.test(err.message)) {
      log.debug("unsupported protocol level", { remote: conn.remote, level });
      conn.version = 4;
      conn.refuse(RC.UNSUPPORTED_PROTOCOL_VERSION);
      return;
    }
    if (err instanceof MqttError && /protocolId/.test(err.message) && level === 5) {
      // Unknown protocol name from a v5 client: CONNACK 0x84 ([MQTT-3.1.2-1] 5).
      conn.version = 5;
      conn.v5 = true;
      conn.refuse(RC.UNSUPPORTED_PROTOCOL_VERSION);
      return;
    }
    if (err instanceof MqttError && level === 5) {
      // A v5 client can read why: CONNACK 0x81 (optional per [MQTT-3.1.4-1] 5, but useful).
      conn.version = 5;
      conn.v5 = true;
    }
    throw err;
  }
  handleConnect(conn, packet);
}

/** CONNECT checks beyond the layout the decoder already enforced (UTF-8, properties, flags). */
export function handleConnect(conn: Connection, p: DecodedConnect): void {
  const broker = conn.broker;
  const lim = broker.limits;
  const version = p.protocolVersion ?? 4;
  conn.version = version;
  conn.v5 = version === 5;
  // Protocol name and level go together: "MQIsdp"/3, "MQTT"/4, "MQTT"/5 (3.1.1 [MQTT-3.1.2-1], [MQTT-3.1.2-2]).
  if ((p.protocolId === "MQIsdp") !== (version === 3)) {
    conn.version = 4;
    conn.v5 = false;
    throw new MqttError(RC.UNSUPPORTED_PROTOCOL_VERSION, `protocol name ${p.protocolId} with level ${version}`);
  }
  // 3.1.1 needs a user name for a password ([MQTT-3.1.2-22]); v5 allows a password alone.
  if (!conn.v5 && p.password !== undefined && p.username === undefined) {
    throw new MqttError(RC.MALFORMED_PACKET, "password without user name");
  }
  const props = p.properties as Record<string, unknown> | undefined;
  if (conn.v5) {
    // Known from here on, so even a refusing CONNACK respects it ([MQTT-3.1.2-24]).
    const mps = props?.maximumPacketSize as number | undefined;
    if (mps !== undefined && mps > 0) conn.maxOutPacket = mps;
    if (props?.receiveMaximum === 0) throw new MqttError(RC.PROTOCOL_ERROR, "Receive Maximum 0");
    if (props?.maximumPacketSize === 0) throw new MqttError(RC.PROTOCOL_ERROR, "Maximum Packet Size 0");
    if (props?.authenticationData !== undefined && props.authenticationMethod === undefined) {
      throw new MqttError(RC.PROTOCOL_ERROR, "Authentication Data without Authentication Method");
    }

  }
  const will = p.will ? parseWill(conn, p.will as WillPacket, lim.maxTopicLevels, p.willPassThrough) : null;

  // Client identifier rules.
  let clientId = p.clientId;
  let assigned = false;
  if (clientId.length === 0) {
    // 3.1 requires 1–23 characters; 3.1.1 allows an empty id only with Clean Session = 1 ([MQTT-3.1.3-8]);
    // v5 accepts it with either Clean Start and returns an Assigned Client Identifier ([MQTT-3.1.3-6/7] 5).
    if (version === 3 || (version === 4 && !p.clean)) {
      throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, "empty client identifier");
    }
    clientId = generateClientId(conn);
    assigned = conn.v5;
  } else if (Buffer.byteLength(clientId, "utf8") > lim.maxClientIdLength) {
    throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, "client identifier too long"); // [MQTT-3.1.3-9] 3.1.1
  } else if (clientId.startsWith(BRIDGE_SESSION_PREFIX)) {
    // The sessions of this broker's own bridges: no client may take them over.
    throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, "client identifiers starting with $bridge/ are reserved"); // [MQTT-3.1.3-5]: the server may refuse
  }
  // Mosquitto's bridge convention (protocol level | 0x80): its subscriptions get No Local.
  conn.bridgePeer = (p as { bridgeMode?: boolean }).bridgeMode === true;
  conn.clientId = clientId;

  // Keep alive: v5 clients are told our maximum as Server Keep Alive ([MQTT-3.2.2-21]); 3.1.x clients above it are refused.
  const ka = p.keepalive ?? 0;
  let serverKeepAlive: number | undefined;
  if (ka > lim.maxKeepalive || (ka === 0 && lim.maxKeepalive < 65535)) {
    if (!conn.v5) throw new MqttError(RC.CLIENT_IDENTIFIER_NOT_VALID, `keep alive ${ka} above the maximum ${lim.maxKeepalive}`);
    serverKeepAlive = lim.maxKeepalive;
  }
  conn.keepalive = serverKeepAlive ?? ka;

  const redirect = broker.config.mqtt.redirect;
  if (redirect !== undefined) {
    // Server redirection (v5 §4.11): every client is sent elsewhere; 3.1.x clients get "server unavailable".
    throw new MqttError(redirect.permanent ? RC.SERVER_MOVED : RC.USE_ANOTHER_SERVER, "this server has moved", redirect.serverReference);
  }

  const pending: PendingConnect = { p, clientId, assigned, will, serverKeepAlive };

  if (conn.listener.identityAsUsername) {
    // The TLS handshake verified the certificate against the listener's CA: its Common Name
    // is the user, and the CONNECT's user name and password are not used (Mosquitto's
    // use_identity_as_username).
    const cn = commonName(conn.transport.peerCertificate());
    if (cn === undefined) throw new MqttError(RC.NOT_AUTHORIZED, "the client certificate has no Common Name");
    conn.username = cn;
  }

  if (conn.v5 && props?.authenticationMethod !== undefined) {
    // Enhanced authentication (v5 §4.12): the method runs its exchange; unknown methods get 0x8C ([MQTT-4.12.0-1]).
    const name = String(props.authenticationMethod);
    const method = broker.authMethods.get(name);
    if (!method) throw new MqttError(RC.BAD_AUTHENTICATION_METHOD, `authentication method ${name} not supported`);
    const auth = (conn.auth = new AuthContext(name));
    auth.exchange = method.start();
    auth.pendingConnect = pending;
    continueAuth(conn, props.authenticationData as Buffer | undefined);
    return;
  }

  let verdict: number | Promise<number>;
  if (conn.listener.identityAsUsername) {
    verdict = 0; // the certificate authenticated the client (above)
  } else {
    conn.username = p.username;
    verdict = broker.auth.check(p.username, p.password, conn.listener.allowAnonymous);
  }
  if (typeof verdict === "number") {
    if (verdict !== 0) throw new MqttError(verdict, "authentication failed");
    accept(conn, pending);
    return;
  }
  // Slow hash, verified off the event loop. Frames that follow are held, not
  // processed, until the verdict ([MQTT-3.1.4-5] 3.1.1 / [MQTT-3.1.4-6] 5);
  // reading goes on (bounded by limits.maxConnectSize) so that a socket that
  // closes meanwhile is seen closed, and its verdict takes over nothing.
  conn.state = State.Connecting;
  verdict.then(
    (code) => onVerdict(conn, pending, code),
    () => onVerdict(conn, pending, RC.UNSPECIFIED_ERROR),
  );
}

/** The authentication verdict of a held CONNECT arrived. */
function onVerdict(conn: Connection, pending: PendingConnect, code: number, looked = false): void {
  if (conn.state !== State.Connecting) return; // closed meanwhile: it takes over nothing
  if (conn.readingHeld && !looked) {
    // Reading was paused (the client sent more than maxConnectSize ahead of its
    // CONNACK): a close may be waiting unseen. Read once more, decide on a later
    // turn (measured on Bun 1.4: the close is delivered before a 0 ms timer).
    conn.peekForClose();
    setTimeout(() => onVerdict(conn, pending, code, true), 0);
    return;
  }
  conn.run(() => {
    if (code !== 0) {
      conn.refuse(code, "authentication failed");
      return;
    }
    conn.state = State.New;
    accept(conn, pending);
    conn.releaseHeld();
  });
}

type WillPacket = NonNullable<DecodedConnect["will"]> & { properties?: Record<string, unknown> };

function parseWill(conn: Connection, w: WillPacket, maxLevels: number, passThrough: Buffer | null): Will {
  const qos = w.qos ?? 0;
  if (qos > 2) throw new MqttError(RC.MALFORMED_PACKET, "Will QoS 3"); // 3.1.1 [MQTT-3.1.2-14], 5 [MQTT-3.1.2-12]
  const bad = topicNameError(w.topic, maxLevels);
  if (bad !== 0) throw new MqttError(bad === RC.MALFORMED_PACKET ? bad : RC.TOPIC_NAME_INVALID, "invalid will topic");
  const props = w.properties;
  let delay = 0;
  let expiry = -1;
  if (conn.v5 && props) {
    delay = (props.willDelayInterval as number | undefined) ?? 0;
    expiry = (props.messageExpiryInterval as number | undefined) ?? -1;
    if (typeof props.responseTopic === "string" && topicNameError(props.responseTopic, maxLevels) !== 0) {
      throw new MqttError(RC.PROTOCOL_ERROR, "invalid will Response Topic");
    }
  }
  const payload = w.payload as Buffer; // already an owned copy (connect-codec)
  return {
    topic: w.topic,
    payload,
    qos: qos as QoS,
    retain: !!w.retain,
    props: conn.v5 ? passThrough : null,
    delay,
    expiry,
  };
}

/** The subject CN of a peer certificate (the first, if it has several), or undefined. */
function commonName(cert: PeerCertificate | null): string | undefined {
  const cn = cert?.subject?.CN as string | string[] | undefined;
  const first = Array.isArray(cn) ? cn[0] : cn;
  return first !== undefined && first.length > 0 ? first : undefined;
}

function generateClientId(conn: Connection): string {
  // Unique among existing sessions ([MQTT-3.2.2-16] 5).
  for (;;) {
    const id = `bunmq-${randomBytes(8).toString("hex")}`;
    if (!conn.broker.hasSession(id)) return id;
  }
}


/**
 * Feed one step of the enhanced-authentication exchange that a CONNECT
 * started: more data → AUTH 0x18 ([MQTT-4.12.0-2]); success → accept with
 * CONNACK carrying the method ([MQTT-4.12.0-5]); failure → refuse
 * ([MQTT-4.12.0-4]).
 */
export function continueAuth(conn: Connection, data: Buffer | undefined): void {
  const auth = conn.auth!;
  const step = auth.exchange!.step(data);
  if (step.kind === "continue") {
    conn.state = State.Authenticating;
    conn.sendPacket({
      cmd: "auth",
      reasonCode: RC.CONTINUE_AUTHENTICATION,
      properties: { authenticationMethod: auth.method, authenticationData: step.data },
    } as Packet);
    return;
  }
  auth.exchange = null;
  if (step.kind === "fail") throw new MqttError(step.code, step.reason);
  const pending = auth.pendingConnect!;
  auth.pendingConnect = null;
  if (!conn.listener.identityAsUsername) conn.username = step.username ?? pending.p.username;
  conn.state = State.New;
  accept(conn, pending, step.data);
}

/**
 * Client ID ownership (auth.clientIdOwnership): a session belongs to the user
 * name that created it, so another user cannot take it over (a kick-out by a
 * reused Client ID would be the takeover rule turned into an attack). And a
 * user's clientIdPattern ("%u-*") limits the Client IDs it may use. Both
 * refuse with 0x87 (3.1.1: 0x05 not authorized). An assigned Client ID is
 * new and the client's own.
 */
function checkClientIdOwner(conn: Connection, clientId: string, assigned: boolean): void {
  if (assigned) return;
  const broker = conn.broker;
  const auth = broker.config.auth;
  const user = conn.username;
  if (auth.clientIdOwnership) {
    const owner = broker.sessions.get(clientId);
    if (owner !== undefined && owner.username !== user) {
      log.info("client id belongs to another user; connection refused", { client: clientId, user, remote: conn.remote });
      throw new MqttError(RC.NOT_AUTHORIZED, "this Client ID belongs to another user");
    }
  }
  if (user !== undefined) {
    const pattern = broker.clientIdPattern(user);
    if (pattern !== null && !pattern.test(clientId)) throw new MqttError(RC.NOT_AUTHORIZED, "this Client ID is not allowed for this user");
  }
}

/** Steps of an accepted CONNECT, in the order of 3.1.1 §3.1.4 / 5 §3.1.4. */
function accept(conn: Connection, pending: PendingConnect, authData?: Buffer): void {
  const { p, clientId, assigned, will, serverKeepAlive } = pending;
  const broker = conn.broker;
  const lim = broker.limits;
  const props = p.properties as Record<string, unknown> | undefined;

  // 0. Whose Client ID is it? Refused here, before any takeover, the live connection stays.
  checkClientIdOwner(conn, clientId, assigned);

  // 1.-2. Takeover of a live connection, then Clean Session / Clean Start (Broker.openSession).
  const { session, present: sessionPresent } = broker.openSession(conn, clientId, p.clean === true); // 3.1.1 [MQTT-3.2.2-1..3], 5 [MQTT-3.2.2-2/3]
  session.version = conn.version as 3 | 4 | 5;
  broker.setIdentity(session, conn.username);
  let expiry: number;
  let expiryTold: number | undefined;
  if (conn.v5) {
    const asked = (props?.sessionExpiryInterval as number | undefined) ?? 0;
    expiry = Math.min(asked, lim.maxSessionExpiry);
    if (expiry !== asked) expiryTold = expiry; // v5 §3.2.2.3.2: the server's value applies and is told
  } else {
    expiry = p.clean ? 0 : lim.maxSessionExpiry;
  }
  session.expiryInterval = expiry;
  session.will = will; // a new connection replaces (and so cancels) any pending will ([MQTT-3.1.3-9] 5)

  // Per-connection limits the client told us (v5 §4.9: not session state).
  conn.sendWindow = Math.min(lim.maxInflight, (props?.receiveMaximum as number | undefined) ?? 65535);
  conn.maxOutPacket = (props?.maximumPacketSize as number | undefined) ?? 268_435_460;
  conn.problemInfo = props?.requestProblemInformation !== false;
  conn.aliasesIn = null;
  const aliasMax = broker.config.mqtt.outboundTopicAliases ? ((props?.topicAliasMaximum as number | undefined) ?? 0) : 0;
  conn.aliasesOut = aliasMax > 0 ? new OutboundAliases(aliasMax) : null;

  broker.attach(conn, session);
  broker.journal.saveSession(session); // committed before CONNACK leaves (group commit)

  // 3. CONNACK (the first packet we send, [MQTT-3.2.0-1]); it waits for the session's commit.
  conn.holdForCommit();
  conn.state = State.Active;
  broker.admission.authenticated(conn); // no longer counts toward limits.maxUnauthenticated
  conn.limiter = PublishLimiter.create(lim.publishRate, lim.publishBytesRate, broker.now());
  conn.connackSent = true;
  if (conn.v5) {
    let x: ConnackExtras | null = null;
    if (assigned) (x ??= {}).assignedClientIdentifier = clientId; // [MQTT-3.2.2-16]
    if (expiryTold !== undefined) (x ??= {}).sessionExpiryInterval = expiryTold;
    if (serverKeepAlive !== undefined) (x ??= {}).serverKeepAlive = serverKeepAlive;
    // Response Information only when asked for ([MQTT-3.1.2-28] 5).
    const prefix = broker.config.mqtt.responseInformation;
    if (props?.requestResponseInformation === true && prefix !== "") (x ??= {}).responseInformation = prefix + clientId;
    if (conn.auth !== null) {
      (x ??= {}).authenticationMethod = conn.auth.method; // [MQTT-4.12.0-5]
      if (authData !== undefined) x.authenticationData = authData;
    }
    if (!broker.connack.writeV5(conn.out, sessionPresent, x, conn.maxOutPacket)) {
      // Not even a CONNACK without properties fits the client's Maximum Packet Size
      // ([MQTT-3.1.2-24]): nothing can be sent to it.
      conn.close("the client's Maximum Packet Size is too small for a CONNACK");
      return;
    }
  } else {
    broker.connack.writeV3(conn.out, sessionPresent);
  }
  conn.markDirty();
  const ev = broker.events;
  if (ev.connected.length > 0) ev.emit(ev.connected, { conn, clientId, resumed: sessionPresent, clean: p.clean === true });
  if (log.debugEnabled) log.debug("client connected", { client: clientId, user: conn.username, listener: conn.listener.url, remote: conn.remote, version: conn.version, clean: p.clean, sessionPresent });

  // 4. Re-send what was in flight, then the queue.
  if (sessionPresent) broker.outbox.resume(session, conn);
}
