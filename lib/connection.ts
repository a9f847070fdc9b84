/**
 * @module connection
 * `Connection` is transport only: the socket, per-connection framing, the
 * output buffer, timers' timestamps and the per-connection v5 settings
 * (limits the client told us, topic aliases). It holds no session state.
 *
 * Framing: the fixed header and Remaining Length are read here and checked
 * against the maximum packet size *before* the body is buffered
 * (DESIGN.md 7); each complete frame goes to the dispatch table. An idle
 * connection holds no parser and no output buffer.
 *
 * Writing: packets are encoded into `out`; the broker flushes every dirty
 * connection once per batch (after the store commit, so acks never precede
 * the state they acknowledge). A partial write keeps the rest for `drain`.
 */
import type { Socket } from "bun";
import type { Broker } from "./broker.ts";
import type { AuthExchange } from "./enhanced-auth.ts";
import type { PendingConnect } from "./handlers/connect.ts";
import { dispatch } from "./handlers/index.ts";
import { log } from "./log.ts";
import { encode, type Packet } from "./protocol/codec.ts";
import type { Message, QoS } from "./message.ts";
import { type TopicCache, writePublish } from "./protocol/fast-codec.ts";
import { Output } from "./protocol/output.ts";
import { MqttError, RC, reasonName, v3ConnackCode } from "./protocol/reason-codes.ts";
import type { Session } from "./session.ts";

export const enum State {
  /** Accepted; waiting for CONNECT. */
  New = 0,
  /** CONNECT received; authentication in progress (frames are held). */
  Connecting = 1,
  /** CONNACK 0x00 sent. */
  Active = 2,
  /** Closing or closed: nothing more is read or dispatched. */
  Closed = 3,
  /** Enhanced authentication exchange before CONNACK: only AUTH and DISCONNECT are allowed. */
  Authenticating = 4,
}

const EMPTY_CHUNK = Buffer.alloc(0);

export class Connection implements TopicCache {
  state = State.New;
  /** 0 until CONNECT is decoded; then 3 (3.1), 4 (3.1.1) or 5. */
  version: 0 | 3 | 4 | 5 = 0;
  v5 = false;
  clientId = "";
  session: Session | null = null;
  readonly openedAt: number;
  lastRx: number;
  /** Time of the data callback being processed. */
  private rxNow = 0;
  /** Effective keep alive in seconds (0 = off). */
  keepalive = 0;

  readonly out = new Output();
  /** In the broker's dirty list for this batch. */
  dirty = false;
  /** A write was partial; waiting for `drain`. */
  waitingDrain = false;
  drainSince = 0;
  /** End the socket once the output has been flushed. */
  endAfterFlush = false;
  closedAt = 0;
  /** Reading is paused: a subscriber's full queue holds this publisher back. */
  paused = false;

  // Framing of a packet split across chunks.
  private partial: Buffer | null = null;
  private partialLen = 0;
  /** Total frame size when known, 0 while the header itself is incomplete. */
  private partialNeed = 0;
  private held: Buffer[] | null = null;

  // Per-connection v5 state (not session state: v5 §4.9, [MQTT-3.3.2-7]).
  /** Largest packet the client accepts ([MQTT-3.1.2-24]). */
  maxOutPacket = 268_435_460;
  /** How many QoS 1/2 deliveries may be unacknowledged: min(our maxInflight, client's Receive Maximum). */
  sendWindow = 0;
  /** The last PUBLISH topic from this client, decoded once and reused while it repeats (TopicCache). */
  lastTopicBytes: Buffer | null = null;
  lastTopic = "";
  /** Inbound Topic Alias bindings, index = alias. */
  aliasesIn: (string | undefined)[] | null = null;
  /** Outbound Topic Aliases we may assign: the client's Topic Alias Maximum (0 = none, [MQTT-3.1.2-26]). */
  aliasOutMax = 0;
  /** Outbound bindings topic → alias on this connection ([MQTT-3.3.2-7]: never carried over). */
  private aliasesOut: Map<string, number> | null = null;
  /** The client allows Reason Strings / User Properties on acks ([MQTT-3.1.2-29]). */
  problemInfo = true;
  /** A DISCONNECT (v5: reason 0x00) was received: the will is discarded. */
  normalDisconnect = false;
  /** The CONNACK that accepted this connection went out; DISCONNECT is allowed from now ([MQTT-3.14.0-1]). */
  connackSent = false;
  /** v5 Authentication Method of the CONNECT, or null (then AUTH is a Protocol Error, [MQTT-4.12.0-7]). */
  authMethod: string | null = null;
  /** The enhanced-authentication exchange in progress (first authentication or re-authentication). */
  authExchange: AuthExchange | null = null;
  /** The CONNECT waiting for its authentication exchange to finish. */
  pendingConnect: PendingConnect | null = null;

  constructor(
    readonly socket: Socket<Connection>,
    readonly broker: Broker,
    now: number,
  ) {
    this.openedAt = now;
    this.lastRx = now;
  }

  /** A method, not a field read, so TypeScript does not narrow it across calls that close. */
  isClosed(): boolean {
    return this.state === State.Closed;
  }

  get remote(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  /** Bytes from the socket: frame them and dispatch each complete packet. */
  onData(chunk: Buffer, now: number): void {
    if (this.state === State.Closed) return;
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
    const max = this.broker.limits.maxPacketSize;
    const n = buf.length;
    while (pos < n) {
      const b0 = buf[pos]!;
      // The first packet must be CONNECT [MQTT-3.1.0-1]: refuse anything else before buffering it.
      if (this.state === State.New && b0 >> 4 !== 1) {
        this.close(undefined, false, "first packet is not CONNECT");
        return;
      }
      // Remaining Length: at most 4 bytes, each but the last with the continuation bit.
      let rl = 0;
      let mul = 1;
      let p = pos + 1;
      let complete = false;
      for (let i = 0; i < 4 && p < n; i++) {
        const b = buf[p++]!;
        rl += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
        if (i === 3) {
          this.fail(new MqttError(RC.MALFORMED_PACKET, "Remaining Length longer than 4 bytes"));
          return;
        }
      }
      if (!complete) break; // header incomplete: keep the bytes
      const total = p - pos + rl;
      if (total > max) {
        this.tooLarge(total);
        return;
      }
      if (pos + total > n) {
        // Body incomplete: allocate the whole frame once and fill it as chunks arrive.
        this.partial = Buffer.allocUnsafe(total);
        this.partialLen = buf.copy(this.partial, 0, pos, n);
        this.partialNeed = total;
        return;
      }
      this.frame(buf, pos, pos + total);
      if (this.isClosed()) return;
      pos += total;
      if (this.paused) {
        // Held back by a full subscriber queue: stop at this packet, keep the rest for resume().
        this.hold(buf, pos, n);
        return;
      }
    }
    if (pos < n) {
      this.partial = Buffer.from(buf.subarray(pos, n));
      this.partialLen = n - pos;
      this.partialNeed = 0;
    }
  }

  /** Keep unprocessed bytes (at most the rest of one read) until reading resumes. */
  private hold(buf: Buffer, from: number, to: number): void {
    if (from >= to) return;
    this.partial = Buffer.from(buf.subarray(from, to));
    this.partialLen = to - from;
    this.partialNeed = 0;
  }

  /**
   * Stop reading: a subscriber this client publishes to has a full queue.
   * Frames already read but not processed wait in `partial`.
   */
  pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  /** Read again, first processing what was held back (may pause again). */
  resumeReading(now: number): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastRx = now; // it could not send PINGREQ while we did not read it
    if (this.state === State.Closed) return;
    this.socket.resume();
    if (this.partial !== null && this.partialNeed === 0) this.onData(EMPTY_CHUNK, now);
  }

  /** Handle one complete frame `buf[start..end)`. */
  private frame(buf: Buffer, start: number, end: number): void {
    // A complete Control Packet (not a stray byte) resets keep alive (3.1.1 [MQTT-3.1.2-24], 5 [MQTT-3.1.2-22]).
    this.lastRx = this.rxNow;
    if (this.state === State.Connecting) {
      // Authentication pending: hold the frame; it is processed after CONNACK,
      // or dropped if the CONNECT is refused ([MQTT-3.1.4-5] 3.1.1 / [MQTT-3.1.4-6] 5).
      // The socket is paused meanwhile, so only the rest of the chunk that held
      // the CONNECT can arrive here: bounded by one read.
      (this.held ??= []).push(Buffer.from(buf.subarray(start, end)));
      return;
    }
    const b0 = buf[start]!;
    let p = start + 1;
    while (buf[p++]! & 0x80);
    try {
      dispatch(this, b0 >> 4, b0 & 0x0f, buf, p, end, start);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Process frames held during authentication (after CONNACK 0x00). */
  releaseHeld(): void {
    const held = this.held;
    this.held = null;
    if (!held) return;
    for (const f of held) {
      if (this.state !== State.Active) return;
      this.frame(f, 0, f.length);
    }
  }

  /** Drop frames held during authentication (the CONNECT was refused). */
  dropHeld(): void {
    this.held = null;
  }

  /** A packet over our maximum size: v5 0x95 ([MQTT-3.2.2-15]); 3.1.1 just closes. */
  private tooLarge(size: number): void {
    const err = new MqttError(RC.PACKET_TOO_LARGE, `packet of ${size} bytes exceeds maximum packet size`);
    this.fail(err);
  }

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
      this.close(code, true, why);
    } else if (this.version !== 0 && (this.state === State.New || this.state === State.Connecting || this.state === State.Authenticating)) {
      this.refuse(code, why, err instanceof MqttError ? err.serverReference : undefined);
    } else {
      this.close(undefined, false, why);
    }
  }

  /**
   * Refuse a CONNECT: CONNACK with the code when the version has one, then
   * close. v5 gets the reason as a Reason String (allowed on CONNACK whatever
   * Request Problem Information says, [MQTT-3.1.2-29]) and, for 0x9C/0x9D,
   * the Server Reference (v5 §4.11).
   */
  refuse(code: number, why?: string, serverReference?: string): void {
    this.dropHeld();
    if (this.v5) {
      const properties: Record<string, unknown> = {};
      if (serverReference !== undefined && (code === RC.USE_ANOTHER_SERVER || code === RC.SERVER_MOVED)) properties.serverReference = serverReference;
      // The Reason String is optional: left out when it would exceed the client's limit ([MQTT-3.2.2-19]).
      if (why !== undefined && why.length <= 256 && 8 + Buffer.byteLength(why) + (serverReference?.length ?? 0) * 4 <= this.maxOutPacket) {
        properties.reasonString = why;
      }
      this.sendPacket({ cmd: "connack", sessionPresent: false, reasonCode: code, properties } as Packet);
    } else {
      const rc = v3ConnackCode(code);
      if (rc !== null) this.sendPacket({ cmd: "connack", sessionPresent: false, returnCode: rc } as Packet);
    }
    this.close(undefined, false, `connect refused: ${reasonName(code)}`);
  }

  /** Encode a non-hot packet with mqtt-packet into the output buffer. */
  sendPacket(packet: Packet): void {
    if (this.state === State.Closed) return;
    const bytes = encode(packet, this.version === 0 ? 4 : this.version);
    this.out.append(bytes);
    this.markDirty();
  }

  /**
   * Encode a PUBLISH to this client, with an outbound Topic Alias when the
   * client allows them: the first PUBLISH of a topic binds the next free
   * alias (topic + alias), later ones send an empty topic + alias. Aliases
   * are handed out first come, first served up to the client's maximum
   * ([MQTT-3.1.2-27], [MQTT-3.3.2-11]). Returns false when the packet would
   * exceed the client's Maximum Packet Size (nothing written, no binding made).
   */
  writePublish(msg: Message, qos: QoS, packetId: number, dup: boolean, retain: boolean, subIds: readonly number[] | null, now: number): boolean {
    if (this.aliasOutMax === 0) {
      if (!writePublish(this.out, msg, this.v5, qos, packetId, dup, retain, subIds, 0, true, this.maxOutPacket, now)) return false;
      this.markDirty();
      return true;
    }
    const map = (this.aliasesOut ??= new Map());
    const bound = map.get(msg.topic);
    if (bound !== undefined) {
      if (!writePublish(this.out, msg, true, qos, packetId, dup, retain, subIds, bound, false, this.maxOutPacket, now)) return false;
    } else if (map.size < this.aliasOutMax) {
      const alias = map.size + 1;
      if (!writePublish(this.out, msg, true, qos, packetId, dup, retain, subIds, alias, true, this.maxOutPacket, now)) return false;
      map.set(msg.topic, alias);
    } else if (!writePublish(this.out, msg, true, qos, packetId, dup, retain, subIds, 0, true, this.maxOutPacket, now)) {
      return false;
    }
    this.markDirty();
    return true;
  }

  markDirty(): void {
    if (!this.dirty) {
      this.dirty = true;
      this.broker.dirty.push(this);
    }
  }

  /** Write the pending output once (called by the broker at the end of a batch, and on drain). */
  flush(now: number): void {
    this.dirty = false;
    const out = this.out;
    if (out.len > 0 && !this.waitingDrain) {
      const n = this.socket.write(out.buf, 0, out.len);
      if (n < 0) {
        out.len = 0;
        out.release();
      } else if (n === out.len) {
        out.consume(n);
      } else {
        out.consume(n);
        this.waitingDrain = true;
        this.drainSince = now;
      }
    }
    if (this.endAfterFlush && out.len === 0) {
      this.endAfterFlush = false;
      this.socket.end();
    }
  }

  onDrain(now: number): void {
    this.waitingDrain = false;
    this.flush(now);
  }

  /**
   * Close the connection. `reason` (v5, after CONNACK only) sends DISCONNECT
   * first ([MQTT-3.14.0-1]); `publishWill` says whether the will is due (it is
   * for every close that did not follow the client's normal DISCONNECT).
   * The session is detached at once, so nothing later on this connection can
   * touch it; the socket ends after the pending output is flushed.
   */
  close(reason: number | undefined, publishWill: boolean, why: string): void {
    if (this.state === State.Closed) return;
    if (reason !== undefined && this.v5 && this.connackSent) {
      // A Reason String goes along when it fits the client's Maximum Packet Size ([MQTT-3.14.2-3]).
      const properties = why.length <= 256 && why.length + 16 <= this.maxOutPacket ? { reasonString: why } : undefined;
      this.sendPacket({ cmd: "disconnect", reasonCode: reason, properties } as Packet);
    }
    this.state = State.Closed;
    this.closedAt = Date.now();
    this.partial = null;
    this.held = null;
    if (log.debugEnabled) log.debug("closing connection", { client: this.clientId || undefined, remote: this.remote, why });
    this.broker.detach(this, publishWill && !this.normalDisconnect);
    this.endAfterFlush = true;
    this.markDirty();
  }

  /** The socket closed (by the peer, or after our end()). */
  onSocketClose(): void {
    if (this.state !== State.Closed) {
      this.state = State.Closed;
      this.closedAt = Date.now();
      this.broker.detach(this, !this.normalDisconnect);
    }
    this.partial = null;
    this.out.len = 0;
    this.out.release();
    this.broker.forget(this);
  }
}
