/**
 * @module connection
 * `Connection` is transport and framing: it owns one `Transport`, cuts
 * frames out of its bytes, and holds the timestamps the housekeeping reads
 * and the per-connection v5 limits the client told us (its output side is
 * conn-output.ts, which it extends). It
 * holds no session state and knows no handler: frames go to the dispatch
 * table the broker was given.
 *
 * Entry points (`onData`, `onDrain`, `onClose`, `run`) are the only way in
 * from a transport or a callback. Each catches what the code below it
 * throws — that connection is closed (v5: DISCONNECT 0x83) and nothing else
 * is touched — and ends the broker's batch.
 *
 * Framing: the fixed header and Remaining Length are read here and checked
 * against the maximum packet size *before* the body is buffered (DESIGN.md
 * 7). Until CONNECT is accepted only what has arrived is buffered, CONNECT is
 * capped at limits.maxConnectSize, and a client that sends more than that
 * ahead of its CONNACK stops being read until then.
 *
 * Writing (conn-output.ts): packets are encoded into `out`; every dirty
 * connection is sealed and flushed once per batch, after the commit point
 * (batch.ts). A drain event writes only sealed bytes, so no ack reaches the
 * wire before the state it acknowledges is committed.
 *
 * Closing is a lingering close: our last packet (DISCONNECT, a refusing
 * CONNACK) is flushed, the write side is shut, and input is read and
 * discarded until the peer closes or LINGER_MS pass, so a client that is
 * still sending reads the reason instead of a reset.
 */
import type { Broker } from "./broker.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { State } from "./conn-state.ts";
import type { AuthContext } from "./auth-context.ts";
import { log } from "./log.ts";
import { ConnectionOutput } from "./conn-output.ts";
import type { TopicCache } from "./protocol/fast-codec.ts";
import { encodeConnackRefusal } from "./protocol/connack.ts";
import { encodeDisconnect } from "./protocol/disconnect-encoder.ts";
import { MqttError, RC, reasonName } from "./protocol/reason-codes.ts";
import { readVarint, VARINT_INCOMPLETE, VARINT_TOO_LONG, varintEnd } from "./protocol/varint.ts";
import type { Session } from "./session.ts";
import type { InboundAliases } from "./topic-aliases.ts";
import type { Transport } from "./transport.ts";
import type { PublishLimiter } from "./rate-limit.ts";

export { State } from "./conn-state.ts";

/** What a bridge's upstream connection adds to the dispatch (bridge/uplink.ts). */
export interface UplinkHooks {
  /** A frame from the upstream: true when it was handled here (CONNACK, SUBACK, PINGRESP, ...), false for the normal handlers. */
  intercept(type: number, flags: number, buf: Buffer, body: number, end: number, frame: number): boolean;
  /** The local topic of a PUBLISH from the upstream, or null to acknowledge and drop it (no topic entry, an echo). */
  inbound(topic: string, buf: Buffer, payloadStart: number, end: number): string | null;
}

const EMPTY_CHUNK = Buffer.alloc(0);

/** Why reading is paused (a bit set: reading resumes when none is left). */
const PAUSE_BACKPRESSURE = 1;
const PAUSE_PRE_ACCEPT = 2;
const PAUSE_RATE = 4;

export class Connection extends ConnectionOutput implements TopicCache {
  session: Session | null = null;
  readonly openedAt: number;
  lastRx: number;
  /** Time of the data callback being processed. */
  private rxNow = 0;
  /** Effective keep alive in seconds (0 = off). */
  keepalive = 0;

  closedAt = 0;
  /**
   * Frames are not processed: a subscriber's full queue holds this publisher
   * back, or it is over its publish rate. Keep alive is not enforced meanwhile.
   */
  paused = false;
  private pauseBits = 0;
  /** Held back by a full subscriber queue (outbox.ts). */
  private backpressured = false;
  /** limits.publishRate / publishBytesRate of this client, or null when off. */
  limiter: PublishLimiter | null = null;
  private rateTimer: ReturnType<typeof setTimeout> | null = null;

  // Framing of a packet split across chunks.
  private partial: Buffer | null = null;
  private partialLen = 0;
  /** Total frame size when known and preallocated, 0 while growing with what arrives. */
  private partialNeed = 0;
  /** Frames read while authentication is pending, and their bytes. */
  private held: Buffer[] | null = null;
  private heldBytes = 0;

  // Per-connection v5 state (not session state: v5 §4.9, [MQTT-3.3.2-7]).
  /** How many QoS 1/2 deliveries may be unacknowledged: min(our maxInflight, client's Receive Maximum). */
  sendWindow = 0;
  /** The last PUBLISH topic from this client, decoded once and reused while it repeats (TopicCache). */
  lastTopicBytes: Buffer | null = null;
  lastTopic = "";
  /** Topic Aliases the client bound (null until the first). */
  aliasesIn: InboundAliases | null = null;
  /** The client allows Reason Strings / User Properties on acks ([MQTT-3.1.2-29]). */
  problemInfo = true;
  /** A DISCONNECT (v5: reason 0x00) was received: the will is discarded. */
  normalDisconnect = false;
  /** The CONNACK that accepted this connection went out; DISCONNECT is allowed from now ([MQTT-3.14.0-1]). */
  connackSent = false;
  /** v5 enhanced authentication: the CONNECT's method and the exchange in progress, or null ([MQTT-4.12.0-7]). */
  auth: AuthContext | null = null;

  /** The v5 reason code of the DISCONNECT we sent, if any (for the disconnect event). */
  private closeReason: number | undefined = undefined;

  /** Counted by admission.ts as a socket that has not finished CONNECT. */
  unauthenticated = false;

  /**
   * Set on a bridge's connection to its upstream (bridge/uplink.ts): this
   * side is the client. It takes the server-to-client packets and maps
   * the topics of incoming PUBLISHes; null on every client connection.
   */
  uplink: UplinkHooks | null = null;

  /** The client announced itself as a bridge (protocol level | 0x80): its subscriptions are No Local and Retain As Published, as in Mosquitto. */
  bridgePeer = false;

  /** The user name this connection authenticated as (CONNECT, enhanced authentication, or the certificate's CN), or undefined. */
  username: string | undefined = undefined;

  constructor(
    transport: Transport,
    broker: Broker,
    /** The listener it arrived on: its policy and counters. */
    readonly listener: ListenerInfo,
  ) {
    super(transport, broker);
    const addr = transport.remoteAddress;
    this.remote = `${addr.includes(":") ? `[${addr}]` : addr}:${transport.remotePort}`;
    const now = broker.now();
    this.openedAt = now;
    this.lastRx = now;
    broker.adopt(this);
  }

  /** A method, not a field read, so TypeScript does not narrow it across calls that close. */
  isClosed(): boolean {
    return this.state === State.Closed;
  }

  /** Input bytes buffered for this connection (a partial frame, frames held during authentication). */
  get buffered(): number {
    return (this.partial?.length ?? 0) + this.heldBytes;
  }

  /**
   * The peer as host:port (IPv6 bracketed), read once at accept: Bun's socket
   * forgets its remote port once closed, and the disconnect log needs it then.
   */
  readonly remote: string;

  // ---- entry points ------------------------------------------------------

  /** Bytes from the transport. */
  onData(chunk: Buffer): void {
    this.broker.metrics.netIn += chunk.length;
    try {
      this.receive(chunk, this.broker.now());
    } catch (err) {
      this.crash(err);
    }
    this.broker.endBatch();
  }

  /**
   * The transport can take more output: write what is sealed. Bytes a
   * handler wrote in this turn wait for the batch end and its commit.
   */
  onDrain(): void {
    try {
      this.waitingDrain = false;
      this.write(this.broker.now());
    } catch (err) {
      this.crash(err);
    }
    this.broker.endBatch(); // output that waited for room (paced retained messages) may go on
  }

  /** The transport closed (the peer, our close, or an abort). */
  onClose(): void {
    try {
      if (this.state !== State.Closed) this.markClosed("connection lost");
    } catch (err) {
      log.error("closing a connection failed", { client: this.clientId || undefined, err, stack: (err as Error)?.stack });
    }
    this.partial = null;
    this.held = null;
    this.out.discard();
    this.broker.batch.holding.delete(this);
    this.broker.forget(this);
    this.broker.endBatch();
  }

  /**
   * Run `fn` for this connection from a callback that is not a transport
   * event (an authentication verdict, a resumed publisher): a throw closes
   * this connection only, and the batch ends.
   */
  run(fn: () => void): void {
    try {
      if (this.state !== State.Closed) fn();
    } catch (err) {
      this.crash(err);
    }
    this.broker.endBatch();
  }

  /** An unexpected exception on this connection: close it, never let it reach others. */
  private crash(err: unknown): void {
    try {
      this.fail(err);
    } catch (again) {
      log.error("closing a failed connection failed", { client: this.clientId || undefined, err: again, stack: (again as Error)?.stack });
      this.transport.abort();
    }
  }

  // ---- framing -----------------------------------------------------------

  private receive(chunk: Buffer, now: number): void {
    if (this.state === State.Closed) return; // lingering close: discard
    if (this.paused && chunk.length > 0) {
      // Held back, yet bytes arrive: a WebSocket delivers the messages it had
      // already read when it was paused (TCP delivers none). Keep them
      // unprocessed for resumeReading(); their size is one transport read.
      this.stash(chunk);
      return;
    }
    this.rxNow = now;
    let buf = chunk;
    let pos = 0;
    if (this.partial !== null) {
      if (this.partialNeed > 0) {
        // Known frame size: fill the preallocated buffer.
        const take = Math.min(this.partialNeed - this.partialLen, chunk.length);
        chunk.copy(this.partial, this.partialLen, 0, take);
        this.partialLen += take;
        if (this.partialLen < this.partialNeed) return;
        const frame = this.partial;
        this.partial = null;
        this.frame(frame, 0, frame.length);
        if (this.isClosed()) return;
        pos = take;
        if (this.paused) {
          this.hold(chunk, pos, chunk.length);
          return;
        }
      } else {
        buf = Buffer.concat([this.partial.subarray(0, this.partialLen), chunk]);
        this.partial = null;
      }
    }
    const lim = this.broker.limits;
    const n = buf.length;
    while (pos < n) {
      const b0 = buf[pos]!;
      const accepted = this.state === State.Active;
      // The first packet must be CONNECT [MQTT-3.1.0-1]: refuse anything else before buffering it.
      if (this.state === State.New && b0 >> 4 !== 1) {
        this.close("first packet is not CONNECT");
        return;
      }
      // Remaining Length: at most 4 bytes, each but the last with the continuation bit.
      const rl = readVarint(buf, pos + 1, n);
      if (rl === VARINT_INCOMPLETE) break; // header incomplete: keep the bytes
      if (rl === VARINT_TOO_LONG) {
        this.fail(new MqttError(RC.MALFORMED_PACKET, "Remaining Length longer than 4 bytes"));
        return;
      }
      const total = varintEnd - pos + rl;
      if (this.state === State.New && total > lim.maxConnectSize) {
        this.connectTooLarge(buf, pos, n, total);
        return;
      }
      if (total > lim.maxPacketSize) {
        this.fail(new MqttError(RC.PACKET_TOO_LARGE, `packet of ${total} bytes exceeds maximum packet size`)); // v5 [MQTT-3.2.2-15]
        return;
      }
      if (pos + total > n) {
        if (accepted) {
          // Body incomplete: allocate the whole frame once and fill it as chunks arrive.
          this.partial = Buffer.allocUnsafe(total);
          this.partialLen = buf.copy(this.partial, 0, pos, n);
          this.partialNeed = total;
          return;
        }
        break; // not accepted yet: keep only what has arrived
      }
      this.frame(buf, pos, pos + total);
      if (this.isClosed()) return;
      pos += total;
      if (this.paused) {
        // Held back by a full subscriber queue: stop at this packet, keep the rest for resumeReading().
        this.hold(buf, pos, n);
        return;
      }
    }
    if (pos < n) this.hold(buf, pos, n);
    // Before CONNACK, a client gets maxConnectSize of buffer; beyond it, reading waits for the verdict.
    // (A read to look for a close before the verdict, peekForClose, is one read: this pauses again after it.)
    if (this.state !== State.Active && this.heldBytes + this.partialLen > lim.maxConnectSize) this.pause(PAUSE_PRE_ACCEPT);
  }

  /** Append a chunk that arrived while held back to the unprocessed bytes. */
  private stash(chunk: Buffer): void {
    this.partial = this.partial === null ? Buffer.from(chunk) : Buffer.concat([this.partial.subarray(0, this.partialLen), chunk]);
    this.partialLen = this.partial.length;
    this.partialNeed = 0; // growing: framed again from its start when reading resumes
  }

  /** Keep unprocessed bytes (at most the rest of one read) until more arrive or reading resumes. */
  private hold(buf: Buffer, from: number, to: number): void {
    if (from >= to) return;
    this.partial = Buffer.from(buf.subarray(from, to));
    this.partialLen = to - from;
    this.partialNeed = 0;
  }

  /** A CONNECT over limits.maxConnectSize: v5 (when its level byte has arrived) gets CONNACK 0x95. */
  private connectTooLarge(buf: Buffer, pos: number, n: number, total: number): void {
    readVarint(buf, pos + 1, n); // known complete
    const p = varintEnd;
    if (p + 6 < n && buf[p] === 0 && buf[p + 1] === 4 && buf[p + 6] === 5) {
      this.version = 5;
      this.v5 = true;
    }
    this.fail(new MqttError(RC.PACKET_TOO_LARGE, `CONNECT of ${total} bytes exceeds limits.maxConnectSize`));
  }

  private pause(bit: number): void {
    if (this.pauseBits === 0) this.transport.pauseReading();
    this.pauseBits |= bit;
  }

  private unpause(bit: number): void {
    if ((this.pauseBits & bit) === 0) return;
    this.pauseBits &= ~bit;
    if (this.pauseBits === 0) this.transport.resumeReading();
  }

  /** True while reading waits for the authentication verdict (a close may be unseen until resumed). */
  get readingHeld(): boolean {
    return (this.pauseBits & PAUSE_PRE_ACCEPT) !== 0;
  }

  /**
   * Read once more before the verdict so that a pending close is seen; what
   * arrives is held as before, and reading pauses again after that read, so
   * before CONNACK a client holds at most maxConnectSize plus two reads.
   */
  peekForClose(): void {
    this.unpause(PAUSE_PRE_ACCEPT);
  }

  /**
   * Stop reading: a subscriber this client publishes to has a full queue.
   * Frames already read but not processed wait in `partial`.
   */
  pauseReading(): void {
    if (this.backpressured) return;
    this.backpressured = true;
    this.paused = true;
    this.pause(PAUSE_BACKPRESSURE);
  }

  /** Read again, first processing what was held back (may pause again). Called inside `run`. */
  resumeReading(now: number): void {
    if (!this.backpressured) return;
    this.backpressured = false;
    this.lastRx = now; // it could not send PINGREQ while we did not read it
    if (this.state === State.Closed) return;
    this.unpause(PAUSE_BACKPRESSURE);
    this.readOn(now);
  }

  /**
   * Over its publish rate: stop reading for `ms` (the bucket's debt). The
   * packet that overdrew it was processed; the next ones wait in the kernel
   * (TCP flow control slows the client), so nothing is lost.
   */
  private throttle(ms: number): void {
    this.broker.throttled++;
    this.paused = true;
    this.pause(PAUSE_RATE);
    this.rateTimer = setTimeout(() => {
      this.rateTimer = null;
      this.run(() => {
        const now = this.broker.now();
        this.lastRx = now;
        this.unpause(PAUSE_RATE);
        this.readOn(now);
      });
    }, ms);
  }

  /** No reason to hold frames back is left: process what was held (may pause again). */
  private readOn(now: number): void {
    this.paused = this.backpressured || (this.pauseBits & PAUSE_RATE) !== 0;
    if (!this.paused && this.partial !== null && this.partialNeed === 0) this.receive(EMPTY_CHUNK, now);
  }

  /** Handle one complete frame `buf[start..end)`. */
  private frame(buf: Buffer, start: number, end: number): void {
    // A complete Control Packet (not a stray byte) resets keep alive (3.1.1 [MQTT-3.1.2-24], 5 [MQTT-3.1.2-22]).
    this.lastRx = this.rxNow;
    if (this.state === State.Connecting) {
      // Authentication pending: hold the frame; it is processed after CONNACK,
      // or dropped if the CONNECT is refused ([MQTT-3.1.4-5] 3.1.1 / [MQTT-3.1.4-6] 5).
      (this.held ??= []).push(Buffer.from(buf.subarray(start, end)));
      this.heldBytes += end - start;
      return;
    }
    const b0 = buf[start]!;
    readVarint(buf, start + 1, end); // known complete
    try {
      this.broker.dispatch(this, b0 >> 4, b0 & 0x0f, buf, varintEnd, end, start);
    } catch (err) {
      this.fail(err);
      return;
    }
    // limits.publishRate / publishBytesRate: the whole packet counts.
    if (this.limiter !== null && b0 >> 4 === 3 && this.state === State.Active) {
      const wait = this.limiter.took(end - start, this.broker.now());
      if (wait > 0) this.throttle(wait);
    }
  }

  /** The CONNECT was accepted: process what was held during authentication, read on. */
  releaseHeld(): void {
    const held = this.held;
    this.held = null;
    this.heldBytes = 0;
    if (held) {
      for (const f of held) {
        if (this.state !== State.Active) return;
        this.frame(f, 0, f.length);
      }
    }
    if (this.state !== State.Active) return;
    this.unpause(PAUSE_PRE_ACCEPT);
    if (this.partial !== null && this.partialNeed === 0 && !this.paused) this.receive(EMPTY_CHUNK, this.broker.now());
  }

  // ---- errors and refusals -----------------------------------------------

  /**
   * The one place that turns an error into the reaction the protocol wants:
   * before CONNACK, a CONNACK refusal (v5 code / 3.1.1 return code when one
   * fits, else a silent close); after CONNACK, v5 DISCONNECT with the code, or a
   * plain close for 3.1.x ([MQTT-4.13.1-1], 3.1.1 [MQTT-4.8.0-1]).
   */
  fail(err: unknown): void {
    if (this.state === State.Closed) return;
    let code: number;
    let why: string;
    if (err instanceof MqttError) {
      code = err.code;
      why = err.message;
      if (log.debugEnabled) log.debug("protocol error", { client: this.clientId || undefined, remote: this.remote, code: reasonName(code), err });
    } else {
      code = RC.IMPLEMENTATION_SPECIFIC_ERROR;
      why = "internal error";
      log.error("handler failed; closing the connection", { client: this.clientId || undefined, err, stack: (err as Error)?.stack });
    }
    if (this.connackSent) {
      this.close(why, code);
    } else if (this.version !== 0) {
      this.refuse(code, why, err instanceof MqttError ? err.serverReference : undefined);
    } else {
      this.close(why);
    }
  }

  /**
   * Refuse a CONNECT: CONNACK with the code when the version has one, then
   * close. v5 gets the reason as a Reason String (allowed on CONNACK whatever
   * Request Problem Information says, [MQTT-3.1.2-29]) and, for 0x9C/0x9D,
   * the Server Reference (v5 §4.11).
   */
  refuse(code: number, why?: string, serverReference?: string): void {
    const b = this.broker;
    if (code === RC.BAD_USER_NAME_OR_PASSWORD || code === RC.NOT_AUTHORIZED || code === RC.BAD_AUTHENTICATION_METHOD) b.metrics.authFailures++;
    if (b.events.refused.length > 0) b.events.emit(b.events.refused, { conn: this, clientId: this.clientId, code, why });
    this.held = null;
    this.heldBytes = 0;
    // 3.1.x: the return code when one fits, else none ([MQTT-3.2.2-6]). v5: the Reason String
    // and Server Reference only when they fit the client's Maximum Packet Size ([MQTT-3.2.2-19]).
    const version = this.v5 ? 5 : this.version === 3 ? 3 : 4;
    const redirect = code === RC.USE_ANOTHER_SERVER || code === RC.SERVER_MOVED ? serverReference : undefined;
    const bytes = encodeConnackRefusal(version, code, this.maxOutPacket, why !== undefined && why.length <= 256 ? why : undefined, redirect);
    if (bytes !== null) this.append(bytes);
    this.close(`connect refused: ${reasonName(code)}`);
  }

  // ---- closing -----------------------------------------------------------

  /**
   * Close the connection. With `reason` (v5, after CONNACK only) DISCONNECT
   * goes first ([MQTT-3.14.0-1]). The will is due for every close that did
   * not follow the client's normal DISCONNECT. The session is detached at
   * once, so nothing later on this connection can touch it; the transport
   * shuts its write side once the pending output has left (lingering close).
   */
  close(why: string, reason?: number): void {
    if (this.state === State.Closed) return;
    if (reason !== undefined && this.v5 && this.connackSent) {
      // A Reason String goes along when it fits the client's Maximum Packet Size ([MQTT-3.14.2-3]).
      const bytes = encodeDisconnect(reason, this.maxOutPacket, why.length <= 256 ? why : undefined);
      if (bytes !== null) this.append(bytes);
    }
    if (log.debugEnabled) log.debug("closing connection", { client: this.clientId || undefined, remote: this.remote, why });
    this.closeReason = reason;
    this.endAfterFlush = true;
    this.markDirty();
    // Keep reading (and discarding) until the peer closes, so it can read what we sent.
    this.stopThrottle();
    if (this.pauseBits !== 0) {
      this.pauseBits = 0;
      this.transport.resumeReading();
    }
    this.markClosed(why);
  }

  private stopThrottle(): void {
    if (this.rateTimer === null) return;
    clearTimeout(this.rateTimer);
    this.rateTimer = null;
  }

  /** Close without lingering (a peer that does not read). */
  abort(why: string): void {
    this.close(why);
    this.transport.abort();
  }

  /** State change to Closed and detach; a failure in the detach (a will) is logged, never spread. */
  private markClosed(why: string): void {
    const wasActive = this.state === State.Active;
    this.state = State.Closed;
    const ev = this.broker.events;
    if (ev.disconnected.length > 0) ev.emit(ev.disconnected, { conn: this, clientId: this.clientId, why, reason: this.closeReason, wasActive });
    this.stopThrottle();
    this.closedAt = this.broker.now();
    this.partial = null;
    this.held = null;
    this.heldBytes = 0;
    try {
      this.broker.detach(this, !this.normalDisconnect);
    } catch (err) {
      log.error("detaching a closed connection failed", { client: this.clientId || undefined, why, err, stack: (err as Error)?.stack });
    }
  }
}
