/**
 * @module bridge/bridge
 * One bridge: a local session `$bridge/NAME` and a client connection to the
 * upstream broker that serves it.
 *
 * Outbound, the local side is an ordinary persistent session: it subscribes
 * to the `out`/`both` filters (No Local, Retain As Published), so matching
 * messages are routed, queued, stored and acknowledged to their publishers
 * under the same "acknowledge only after commit" rule as for any durable
 * subscriber; its queue has the bridge's own bounds. While the upstream is
 * connected, the session is attached to the upstream connection and the
 * outbox sends its queue in order, re-sending QoS 1/2 with DUP after each
 * reconnection until the upstream acknowledges them. A `kill -9` of this
 * broker loses nothing it acknowledged: the queue is restored from the store.
 *
 * Inbound, PUBLISHes from the upstream go through the normal publish
 * handler with the bridge's session as origin; their PUBACK / PUBREC leave
 * only after the local commit. The upstream session is persistent
 * (cleanStart false, a session expiry) so what it holds for us while we are
 * away arrives after reconnection.
 *
 * No loops: our local subscriptions are No Local, and an inbound message's
 * origin is the bridge's session, so it never goes back out through this
 * bridge. Upstream, v5 subscriptions are No Local; 3.1.1 announces a bridge
 * (protocol level | 0x80, Mosquitto's try_private), and where the upstream
 * refuses that, an `EchoFilter` drops our own messages coming back.
 *
 * Reconnection: exponential backoff from reconnect.minMs to maxMs, each
 * delay drawn between half and all of the step ("equal jitter").
 */
import type { Broker } from "../broker.ts";
import { State } from "../conn-state.ts";
import { Connection, type UplinkHooks } from "../connection.ts";
import { ListenerInfo } from "../listener-info.ts";
import { log } from "../log.ts";
import type { Message } from "../message.ts";
import { decodeFrame, type Packet } from "../protocol/codec.ts";
import { MqttError, RC, reasonName } from "../protocol/reason-codes.ts";
import { topicNameError } from "../protocol/validate.ts";
import { BRIDGE_SESSION_PREFIX, type Session } from "../session.ts";
import { type BridgeAddress, type BridgeConfig, bridgeClientId, parseAddress } from "./config.ts";
import { bridgeTls, dial } from "./dial.ts";
import { EchoFilter, TopicMap } from "./topics.ts";

export type BridgeState = "connecting" | "connected" | "disconnected" | "stopped";

/** Counters and state of one bridge, for the log, stats, $SYS, metrics and the API. */
export interface BridgeStatus {
  name: string;
  address: string;
  state: BridgeState;
  connected: boolean;
  /** QoS 1/2 messages waiting to be sent upstream, and unacknowledged ones. */
  queued: number;
  queuedBytes: number;
  inflight: number;
  messagesOut: number;
  bytesOut: number;
  messagesIn: number;
  bytesIn: number;
  /** Messages dropped because the bridge's queue was full. */
  dropped: number;
  /** Incoming messages recognised as our own coming back (3.1.1 upstreams without the bridge bit). */
  echoesDropped: number;
  connects: number;
  /** Failed or lost connections. */
  failures: number;
  lastError: string;
  /** When the current connection was accepted (ms since epoch), 0 when not connected. */
  connectedSince: number;
}

/** `$bridge/NAME`: the local session of bridge NAME. */
export function bridgeSessionId(name: string): string {
  return BRIDGE_SESSION_PREFIX + name;
}

export class Bridge implements UplinkHooks {
  readonly session: Session;
  readonly addr: BridgeAddress;
  private readonly topics: TopicMap;
  private readonly listener: ListenerInfo;
  private conn: Connection | null = null;
  private state: BridgeState = "disconnected";
  private stopped = false;
  /** Consecutive failures, for the backoff. */
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  /** The CONNACK arrived on the current connection. */
  private accepted = false;
  /** Why the current connection ends, when the upstream or we said so (a refusal, its DISCONNECT). */
  private endReason = "";
  /** 3.1.1: the upstream refused the bridge bit; connect without it and filter echoes. */
  private plain = false;
  private echo: EchoFilter | null = null;
  /** Packet ids of our SUBSCRIBE / UNSUBSCRIBE awaiting their ack, with their filters. */
  private readonly pendingSubs = new Map<number, string[]>();
  /** Upstream filters to unsubscribe on the next connection (removed from the config by a reload). */
  staleRemote: string[] = [];
  private readonly stats = { messagesOut: 0, bytesOut: 0, messagesIn: 0, bytesIn: 0, connects: 0, failures: 0, lastError: "", connectedSince: 0 };

  constructor(
    private readonly broker: Broker,
    readonly cfg: BridgeConfig,
    index: number,
  ) {
    this.addr = parseAddress(cfg.address)!; // the schema checked it
    this.topics = new TopicMap(cfg.topics);
    this.listener = new ListenerInfo(index, { protocol: this.addr.scheme, host: this.addr.host, port: this.addr.port, allowAnonymous: true });
    this.session = broker.bridgeSession(bridgeSessionId(cfg.name));
    this.session.queueBound = { maxMessages: cfg.queue.maxMessages, maxBytes: cfg.queue.maxBytes };
    this.session.version = cfg.protocolVersion;
    this.plain = cfg.protocolVersion === 4 && !cfg.tryPrivate;
    if (this.plain) this.echo = new EchoFilter(broker.now());
  }

  get name(): string {
    return this.cfg.name;
  }

  /** Make the local subscriptions match the config (also after a restore), then connect. */
  start(): void {
    const b = this.broker;
    const s = this.session;
    const want = new Map(this.topics.localSubs.map((x) => [x.filter, x.qos]));
    for (const filter of [...s.subs.keys()]) if (!want.has(filter)) b.unsubscribe(s, filter);
    for (const [filter, qos] of want) {
      // No Local: what came in through this bridge never goes back out through it.
      b.subscribe(s, { filter, qos, noLocal: true, rap: true, rh: 2, subId: 0, group: null, matchFilter: filter });
    }
    b.endBatch();
    this.connect();
  }

  /** Close the upstream connection (normal DISCONNECT: the upstream keeps our session) and stop reconnecting. */
  stop(): void {
    this.stopped = true;
    this.state = "stopped";
    this.clearTimers();
    const c = this.conn;
    if (c !== null && c.state !== State.Closed) {
      c.run(() => {
        if (this.accepted) c.sendPacket({ cmd: "disconnect" } as Packet);
        c.normalDisconnect = true;
        c.close("bridge stopped");
      });
    }
  }

  status(): BridgeStatus {
    const s = this.session;
    const st = this.stats;
    return {
      name: this.cfg.name,
      address: this.cfg.address,
      state: this.state,
      connected: this.state === "connected",
      queued: s.queue.length,
      queuedBytes: s.queue.bytes,
      inflight: s.inflight.count,
      messagesOut: st.messagesOut,
      bytesOut: st.bytesOut,
      messagesIn: st.messagesIn,
      bytesIn: st.bytesIn,
      dropped: s.dropped,
      echoesDropped: this.echo?.dropped ?? 0,
      connects: st.connects,
      failures: st.failures,
      lastError: st.lastError,
      connectedSince: st.connectedSince,
    };
  }

  // ---- connecting --------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    this.state = "connecting";
    this.accepted = false;
    this.endReason = "";
    let tls = null;
    try {
      tls = this.addr.secure ? bridgeTls(this.cfg, this.addr) : null;
    } catch (err) {
      this.failed((err as Error).message);
      return;
    }
    const started = this.broker.now();
    dial(this.addr, tls, this.cfg.connectTimeoutMs).then(
      (link) => {
        if (this.stopped) {
          link.transport.abort();
          return;
        }
        const c = new Connection(link.transport, this.broker, this.listener);
        this.setUp(c);
        link.bind({
          onData: (chunk) => c.onData(chunk),
          onDrain: () => c.onDrain(),
          onClose: () => {
            c.onClose();
            this.lost(c);
          },
        });
        const left = Math.max(100, this.cfg.connectTimeoutMs - (this.broker.now() - started));
        this.connectTimer = setTimeout(() => {
          this.connectTimer = null;
          if (this.conn === c && !this.accepted) {
            this.endReason = "no CONNACK in time";
            c.abort("no CONNACK in time");
          }
        }, left);
        c.run(() => this.sendConnect(c));
      },
      (err: Error) => this.failed(err.message),
    );
  }

  /** The new upstream connection, before CONNECT: it is past the server-side states, and this is its client side. */
  private setUp(c: Connection): void {
    this.conn = c;
    c.uplink = this;
    c.clientId = this.session.id;
    c.version = this.cfg.protocolVersion;
    c.v5 = c.version === 5;
    // Active from the start: framing does not wait for a CONNECT, and errors close with a DISCONNECT (v5) instead of a CONNACK.
    c.state = State.Active;
    c.connackSent = true;
    c.sendWindow = 0;
    c.problemInfo = true;
    if (!this.topics.identity || this.echo !== null) c.topicMap = (m) => this.mapOut(m);
    else c.topicMap = (m) => this.countOut(m);
    this.broker.admission.authenticated(c); // ours: not an unauthenticated socket
  }

  private sendConnect(c: Connection): void {
    const cfg = this.cfg;
    const lim = this.broker.limits;
    const packet: Record<string, unknown> = {
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: cfg.protocolVersion,
      clean: cfg.cleanStart,
      clientId: bridgeClientId(cfg),
      keepalive: cfg.keepalive,
    };
    // 3.1.1: Mosquitto's bridge convention, the protocol level with 0x80 (its try_private).
    if (cfg.protocolVersion === 4 && !this.plain) packet.bridgeMode = true;
    if (cfg.username !== undefined) packet.username = cfg.username;
    if (cfg.password !== undefined) packet.password = Buffer.from(cfg.password, "utf8");
    if (cfg.protocolVersion === 5) {
      packet.properties = {
        sessionExpiryInterval: cfg.cleanStart ? 0 : cfg.sessionExpiry,
        receiveMaximum: lim.receiveMaximum, // what we accept in flight from the upstream ([MQTT-3.3.4-7] 5 applies to it)
        maximumPacketSize: lim.maxPacketSize,
      };
    }
    c.sendPacket(packet as unknown as Packet);
  }

  /** The CONNACK: accepted, or why not. */
  private onConnack(c: Connection, p: { returnCode?: number; reasonCode?: number; sessionPresent?: boolean; properties?: Record<string, unknown> }): void {
    const code = (c.v5 ? p.reasonCode : p.returnCode) ?? 0;
    if (code !== 0) {
      // 3.1.1 return code 1: the bridge bit (level 0x84) is not understood; the next attempt goes without it.
      if (!c.v5 && code === 1 && !this.plain) {
        this.plain = true;
        this.echo = new EchoFilter(this.broker.now());
        log.info("bridge: the upstream refused the bridge protocol level; retrying as a plain 3.1.1 client", { bridge: this.name });
        this.attempt = 0;
      }
      const why = c.v5 ? reasonName(code) : V3_RETURN[code] ?? `return code ${code}`;
      this.endReason = `connection refused: ${why}`;
      c.close(`upstream refused the connection: ${why}`);
      return;
    }
    this.accepted = true;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const props = p.properties ?? {};
    const b = this.broker;
    const s = this.session;
    const present = p.sessionPresent === true;
    c.keepalive = (props.serverKeepAlive as number | undefined) ?? this.cfg.keepalive;
    c.sendWindow = Math.min(this.cfg.maxInflight, (props.receiveMaximum as number | undefined) ?? 65535);
    c.maxOutPacket = (props.maximumPacketSize as number | undefined) ?? 268_435_460;
    this.state = "connected";
    this.attempt = 0;
    this.stats.connects++;
    this.stats.connectedSince = b.now();
    log.info("bridge connected", { bridge: this.name, address: this.cfg.address, sessionPresent: present, queued: s.queue.length + s.inflight.count });
    b.attach(c, s);
    b.journal.saveSession(s);
    // The upstream subscriptions first: their packet ids are taken before any PUBLISH's.
    const subs = this.topics.remoteSubs;
    if (subs.length > 0) {
      const id = s.inflight.nextId();
      this.pendingSubs.set(id, subs.map((x) => x.filter));
      c.sendPacket({
        cmd: "subscribe",
        messageId: id,
        subscriptions: subs.map((x) => (c.v5 ? { topic: x.filter, qos: x.qos, nl: true, rap: true, rh: 0 } : { topic: x.filter, qos: x.qos })),
      } as Packet);
    }
    if (this.staleRemote.length > 0) {
      const id = s.inflight.nextId();
      this.pendingSubs.set(id, []);
      c.sendPacket({ cmd: "unsubscribe", messageId: id, unsubscriptions: this.staleRemote } as Packet);
      this.staleRemote = [];
    }
    // Then what was in flight (DUP, same ids, [MQTT-4.4.0-1]) and the queue, in order.
    b.outbox.resume(s, c);
    const ka = c.keepalive;
    if (ka > 0) {
      this.pingTimer = setInterval(() => {
        if (this.conn === c) c.run(() => c.sendPacket({ cmd: "pingreq" } as Packet));
      }, ka * 1000);
    }
  }

  /** The upstream connection is gone: count it, and reconnect after the backoff. */
  private lost(c: Connection): void {
    if (this.conn !== c) return;
    this.conn = null;
    this.pendingSubs.clear();
    this.clearTimers();
    const was = this.state;
    if (this.stopped) return;
    const why = this.endReason !== "" ? this.endReason : this.accepted ? "connection lost" : "connection closed before CONNACK";
    if (was === "connected") {
      log.warn("bridge disconnected", { bridge: this.name, address: this.cfg.address, why, queued: this.session.queue.length + this.session.inflight.count });
    }
    this.failed(why, was === "connected");
  }

  /** A connection attempt failed (or a connection ended): retry after the next backoff step. */
  private failed(why: string, wasConnected = false): void {
    this.state = "disconnected";
    this.stats.connectedSince = 0;
    this.stats.failures++;
    this.stats.lastError = why;
    if (this.stopped) return;
    const { minMs, maxMs } = this.cfg.reconnect;
    const step = Math.min(maxMs, minMs * 2 ** Math.min(this.attempt, 30));
    const delay = Math.round(step / 2 + (Math.random() * step) / 2);
    this.attempt++;
    if (!wasConnected) log.warn("bridge connection failed; retrying", { bridge: this.name, address: this.cfg.address, err: why, retryMs: delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.retryTimer = this.connectTimer = this.pingTimer = null;
  }

  // ---- the dispatch hooks (UplinkHooks) -----------------------------------

  intercept(type: number, flags: number, buf: Buffer, body: number, end: number, frame: number): boolean {
    const c = this.conn;
    if (c === null) return true;
    if (!this.accepted) {
      // The server's first packet is CONNACK (3.1.1 [MQTT-3.2.0-1], 5 [MQTT-3.2.0-1]).
      if (type !== 2) throw new MqttError(RC.PROTOCOL_ERROR, `packet type ${type} before CONNACK`);
      this.onConnack(c, this.decode(buf, frame, end) as never);
      return true;
    }
    switch (type) {
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
        return false; // PUBLISH and the acks: the normal handlers
      case 9:
      case 11:
        this.onSubAck(type, this.decode(buf, frame, end) as { messageId: number; granted?: number[]; reasonCode?: number });
        return true;
      case 13: // PINGRESP (its frame already counted as traffic for keep alive)
        if (flags !== 0 || end !== body) throw new MqttError(RC.MALFORMED_PACKET, "malformed PINGRESP");
        return true;
      case 14: {
        const p = this.decode(buf, frame, end) as { reasonCode?: number; properties?: { reasonString?: string } };
        const why = `upstream sent DISCONNECT ${reasonName(p.reasonCode ?? 0)}${p.properties?.reasonString ? ` (${p.properties.reasonString})` : ""}`;
        this.endReason = why;
        c.close(why); // no DISCONNECT back ([MQTT-3.14.4-1] applies to the sender)
        return true;
      }
      case 0:
        throw new MqttError(RC.MALFORMED_PACKET, "reserved packet type 0");
      default:
        // CONNECT, a second CONNACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, AUTH: not from a server to this client.
        throw new MqttError(RC.PROTOCOL_ERROR, `packet type ${type} may not be sent by the server here`);
    }
  }

  private decode(buf: Buffer, frame: number, end: number): Packet {
    return decodeFrame(buf.subarray(frame, end), this.cfg.protocolVersion);
  }

  private onSubAck(type: number, p: { messageId: number; granted?: number[]; reasonCode?: number }): void {
    const filters = this.pendingSubs.get(p.messageId);
    if (filters === undefined) return;
    this.pendingSubs.delete(p.messageId);
    if (type !== 9) return;
    const codes = p.granted ?? [];
    filters.forEach((f, i) => {
      const code = codes[i] ?? 0x80;
      if (code >= 0x80) {
        this.stats.lastError = `upstream refused the subscription ${f}: ${this.cfg.protocolVersion === 5 ? reasonName(code) : "failure"}`;
        log.warn("bridge: the upstream refused a subscription", { bridge: this.name, filter: f, code: `0x${code.toString(16)}` });
      }
    });
  }

  inbound(topic: string, buf: Buffer, payloadStart: number, end: number): string | null {
    const local = this.topics.localTopic(topic);
    const st = this.stats;
    if (local === null) {
      if (log.debugEnabled) log.debug("bridge: message on a topic no entry maps; dropped", { bridge: this.name, topic });
      return null;
    }
    if (this.echo !== null && this.echo.isEcho(topic, buf.subarray(payloadStart, end), this.broker.now())) return null;
    if (local !== topic && topicNameError(local, this.broker.limits.maxTopicLevels) !== 0) return null;
    st.messagesIn++;
    st.bytesIn += end - payloadStart;
    return local;
  }

  private countOut(m: Message): Buffer {
    this.stats.messagesOut++;
    this.stats.bytesOut += m.payload.length;
    return m.bytesOfTopic();
  }

  private mapOut(m: Message): Buffer {
    const t = this.topics.remoteBytes(m.topic);
    this.stats.messagesOut++;
    this.stats.bytesOut += m.payload.length;
    if (this.echo !== null) this.echo.sent(t, m.payload, this.broker.now());
    return t;
  }
}

/** 3.1.1 CONNACK return codes (§3.2.2.3), for the log. */
const V3_RETURN: Record<number, string> = {
  1: "unacceptable protocol version",
  2: "identifier rejected",
  3: "server unavailable",
  4: "bad user name or password",
  5: "not authorized",
};
