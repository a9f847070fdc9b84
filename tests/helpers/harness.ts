/**
 * The in-process harness (DESIGN.md 5): real `Connection`s and a real
 * `Broker`, no port. `MemoryTransport` is a `Transport` whose "wire" is an
 * array of written byte chunks; tests feed client packets encoded with
 * mqtt-packet to `conn.onData` and read back what the broker wrote, decoded
 * by a second mqtt-packet parser. Nothing of lib/ is mocked: the transport is
 * simply an in-memory implementation of the interface TCP implements.
 *
 * Timing: the broker flushes once per event-loop turn (setImmediate, see
 * Broker.endBatch), and resumes held publishers on a later turn
 * (Outbox.unblock). `settle()` waits enough turns for both. Calling
 * `broker.publish` directly ends no batch: use `Harness.publish`, or call
 * `broker.endBatch()` after it.
 *
 * Closing: the broker's close shuts the write side (`shutdownCalled`) and
 * waits for the peer; `TestClient.drop()` is the peer closing its socket
 * (the connection's `onClose`). `close()` / `abort()` on the transport
 * deliver `onClose` on the microtask queue, as a socket's close callback
 * comes after the call. While the connection has paused reading, what the
 * client sends stays in `transport.inbound` (the kernel buffer) and arrives
 * on a later turn after `resumeReading`.
 */
import mqtt from "mqtt-packet";
import type { PeerCertificate } from "node:tls";
import { Broker } from "../../lib/broker.ts";
import { type ConfigInput, parseConfig } from "../../lib/config.ts";
import { Connection } from "../../lib/connection.ts";
import { ListenerInfo } from "../../lib/listener-info.ts";
import { setLogLevel } from "../../lib/log.ts";
import { Message } from "../../lib/message.ts";
import type { Routed } from "../../lib/router.ts";
import { MemoryStore, type Store } from "../../lib/store.ts";
import type { Transport } from "../../lib/transport.ts";

/** A decoded packet, loosely typed (fields depend on `cmd`). */
export type Packet = { cmd: mqtt.PacketCmd } & Record<string, any>;

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/**
 * A `Transport` over memory. `chunks` is the wire (copies of every write, in
 * order). Backpressure: `accept` is how many bytes writes may still take
 * (Infinity = all); a write takes min(length, accept) and returns that count,
 * and a short write makes the connection wait for `drain()`. After `close()`
 * or `abort()` writes return -1.
 */
export class MemoryTransport implements Transport {
  /** Every chunk written, copied, in order. */
  readonly chunks: Buffer[] = [];
  /** Bytes writes may still take (decremented by each write); Infinity = no backpressure. */
  accept = Number.POSITIVE_INFINITY;
  /** Calls to write() (including those that took 0 bytes). */
  writes = 0;
  /** Reading is paused (pauseReading called more recently than resumeReading). */
  readingPaused = false;
  pauseCalls = 0;
  resumeCalls = 0;
  shutdownCalled = false;
  closeCalled = false;
  abortCalled = false;
  /** close() or abort() was called, or the peer closed: writes return -1. */
  closed = false;
  /** Called with every chunk as it is written (the harness client parses here). */
  onWrite: ((chunk: Buffer) => void) | null = null;
  /** The connection on top, told `onClose` when the transport closes. */
  conn: Connection | null = null;
  private closeDelivered = false;

  constructor(
    readonly remoteAddress = "127.0.0.1",
    readonly remotePort = 50000,
  ) {}

  write(buf: Buffer, offset: number, length: number): number {
    this.writes++;
    if (this.closed) return -1;
    const n = Math.min(length, this.accept);
    if (this.accept !== Number.POSITIVE_INFINITY) this.accept -= n;
    if (n > 0) {
      const chunk = Buffer.from(buf.subarray(offset, offset + n)); // the output buffer is reused: copy
      this.chunks.push(chunk);
      this.onWrite?.(chunk);
    }
    return n;
  }
  pauseReading(): void {
    this.pauseCalls++;
    this.readingPaused = true;
  }
  resumeReading(): void {
    this.resumeCalls++;
    this.readingPaused = false;
    // Like a socket, what the peer sent meanwhile arrives on a later turn, never inside this call.
    if (this.inbound.length > 0) setImmediate(() => this.pumpInbound());
  }
  shutdownWrite(): void {
    this.shutdownCalled = true;
  }
  close(): void {
    this.closeCalled = true;
    this.closeSoon();
  }
  abort(): void {
    this.abortCalled = true;
    this.closeSoon();
  }
  peerCertificate(): PeerCertificate | null {
    return null;
  }

  /** Total bytes written. */
  get bytesWritten(): number {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  /** Let writes take `bytes` more (Infinity: no backpressure) and tell the connection it may write (socket drain). */
  drain(bytes = Number.POSITIVE_INFINITY): void {
    this.accept = bytes === Number.POSITIVE_INFINITY ? bytes : (this.accept === Number.POSITIVE_INFINITY ? 0 : this.accept) + bytes;
    this.conn?.onDrain();
  }

  /** Bytes the peer sent while reading was paused ("in the kernel"), delivered when reading resumes. */
  readonly inbound: Buffer[] = [];

  /** The peer sends `chunk`: delivered to the connection now, or kept while reading is paused. */
  deliver(chunk: Buffer): void {
    if (this.readingPaused || this.inbound.length > 0) {
      this.inbound.push(chunk);
      return;
    }
    this.conn?.onData(chunk);
  }

  private pumpInbound(): void {
    while (this.inbound.length > 0 && !this.readingPaused && this.conn !== null) this.conn.onData(this.inbound.shift()!);
  }

  /** The peer closed the socket: the connection is told at once. */
  peerClose(): void {
    this.closed = true;
    this.deliverClose();
  }

  /** Like a socket, the close callback comes after the call that closed it (here: on the microtask queue). */
  private closeSoon(): void {
    this.closed = true;
    queueMicrotask(() => this.deliverClose());
  }

  private deliverClose(): void {
    if (this.closeDelivered) return;
    this.closeDelivered = true;
    this.conn?.onClose();
  }
}

/** A clock tests move by hand; `now` is the function the Broker takes. */
export class TestClock {
  constructor(public t = 1_700_000_000_000) {}
  readonly now = (): number => this.t;
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}

export interface HarnessOptions {
  /** Config overrides (validated by the real schema; persistence defaults to ":memory:"). */
  config?: DeepPartial<ConfigInput>;
  store?: Store;
  clock?: TestClock;
}

/** A Broker without listeners, with an injectable clock, and clients over MemoryTransports. */
export class Harness {
  readonly broker: Broker;
  readonly clock: TestClock;
  readonly store: Store;
  readonly clients: TestClient[] = [];
  /** The listener every harness connection "arrived on" (the config's first). */
  readonly listener: ListenerInfo;

  constructor(opts: HarnessOptions = {}) {
    const cfg = opts.config ?? {};
    const config = parseConfig({
      ...cfg,
      persistence: { path: ":memory:", ...(cfg.persistence ?? {}) },
      listeners: [{ host: "127.0.0.1", port: 0 }],
      logLevel: (cfg.logLevel as string | undefined) ?? process.env.BUNMQ_TEST_LOG ?? "error",
    });
    setLogLevel(config.logLevel);
    this.clock = opts.clock ?? new TestClock();
    this.store = opts.store ?? new MemoryStore();
    this.broker = new Broker(config, this.store, this.clock.now);
    this.listener = new ListenerInfo(0, config.listeners[0]!);
  }

  /** A new Connection over a new MemoryTransport (nothing sent yet). */
  client(version: 3 | 4 | 5 = 4): TestClient {
    const c = new TestClient(this, version);
    this.clients.push(c);
    return c;
  }

  /** A client that sent CONNECT and got CONNACK 0 (throws otherwise). `opts` go into the CONNECT packet. */
  async connected(clientId: string, version: 3 | 4 | 5 = 4, opts: Record<string, unknown> = {}): Promise<TestClient> {
    const c = this.client(version);
    const ack = await c.connect({ clientId, ...opts });
    if (ack.cmd !== "connack" || (ack.returnCode ?? ack.reasonCode ?? 0) !== 0) throw new Error(`CONNECT refused: ${JSON.stringify(ack)}`);
    return c;
  }

  /**
   * Publish from outside any connection (origin null, like a will or the
   * broker's own message) and end the batch, as every entry point does:
   * Broker.publish alone writes into output buffers but schedules no flush.
   */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 1, opts: { retain?: boolean; origin?: Connection | null; expiresAt?: number; from?: string } = {}): Routed {
    const msg = new Message(topic, Buffer.from(payload), qos, opts.retain ?? false, null, opts.expiresAt ?? 0, opts.from ?? "");
    const routed = this.broker.publish(msg, opts.origin ?? null);
    this.broker.endBatch();
    return routed;
  }

  /** Run housekeeping at `now` (default: the test clock). */
  tick(now = this.clock.t): void {
    this.broker.tick(now);
  }
}

/**
 * Wait until the batch end has run: one setImmediate turn flushes (the flush
 * was scheduled before our callback); more turns cover publishers resumed
 * on the next turn (Outbox.unblock) and the flush their packets schedule.
 */
export async function settle(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** One client: a real Connection over a MemoryTransport, fed with mqtt-packet encoded packets. */
export class TestClient {
  readonly transport = new MemoryTransport();
  readonly conn: Connection;
  private readonly parser: mqtt.Parser;
  private readonly inbox: Packet[] = [];
  /** Every packet the broker sent, in order (not consumed by take()). */
  readonly log: Packet[] = [];
  parseError: Error | null = null;

  constructor(
    readonly h: Harness,
    readonly version: 3 | 4 | 5,
  ) {
    this.conn = new Connection(this.transport, h.broker, h.listener);
    this.transport.conn = this.conn;
    this.parser = mqtt.parser({ protocolVersion: version });
    this.parser.on("packet", (p: Packet) => {
      this.inbox.push(p);
      this.log.push(p);
    });
    this.parser.on("error", (e: Error) => {
      this.parseError = e;
    });
    this.transport.onWrite = (chunk) => this.parser.parse(chunk);
  }

  /**
   * The client sends raw bytes: one data callback, or kept by the transport
   * while the connection has paused reading (delivered when it resumes).
   */
  sendBytes(bytes: Buffer): void {
    this.transport.deliver(bytes);
  }

  /** Encode with mqtt-packet for this client's version and feed it. */
  send(packet: Record<string, unknown>): void {
    this.sendBytes(encodePacket(packet, this.version));
  }

  /** Encode several packets and send them as one chunk (one data callback). */
  sendMany(packets: Record<string, unknown>[]): void {
    this.sendBytes(Buffer.concat(packets.map((p) => encodePacket(p, this.version))));
  }

  /** Packets received and not yet taken (decoded); takes them. */
  take(): Packet[] {
    if (this.parseError) throw this.parseError;
    return this.inbox.splice(0);
  }

  /** Wait for the batch end, then take what arrived. */
  async receive(turns?: number): Promise<Packet[]> {
    await settle(turns);
    return this.take();
  }

  /** CONNECT, settle, and return the first packet received (the CONNACK). */
  async connect(opts: Record<string, unknown> = {}): Promise<Packet> {
    this.send({
      cmd: "connect",
      protocolId: this.version === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: this.version,
      clean: true,
      keepalive: 0,
      clientId: `h-${Math.random().toString(16).slice(2)}`,
      ...opts,
    });
    const got = await this.receive();
    if (got.length === 0) throw new Error("no CONNACK");
    this.inbox.unshift(...got.slice(1));
    return got[0]!;
  }

  /** SUBSCRIBE to `filter` at `qos` and return the SUBACK. */
  async subscribe(filter: string, qos: 0 | 1 | 2 = 1, messageId = 1, opts: Record<string, unknown> = {}): Promise<Packet> {
    this.send({ cmd: "subscribe", messageId, subscriptions: [{ topic: filter, qos, ...opts }] });
    const got = await this.receive();
    const i = got.findIndex((p) => p.cmd === "suback");
    if (i < 0) throw new Error(`no SUBACK: ${JSON.stringify(got.map((p) => p.cmd))}`);
    this.inbox.unshift(...got.slice(i + 1));
    return got[i]!;
  }

  /** Send one PUBLISH (not awaited). */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 1, messageId = 1, extra: Record<string, unknown> = {}): void {
    this.send(publishPacket(topic, payload, qos, messageId, extra));
  }

  puback(messageId: number): void {
    this.send({ cmd: "puback", messageId });
  }
  pubrec(messageId: number): void {
    this.send({ cmd: "pubrec", messageId });
  }
  pubcomp(messageId: number): void {
    this.send({ cmd: "pubcomp", messageId });
  }
  pubrel(messageId: number): void {
    this.send({ cmd: "pubrel", messageId });
  }
  /** Send DISCONNECT (v5: with `reasonCode`); the peer's socket stays open until `drop()`. */
  disconnect(reasonCode?: number): void {
    this.send(this.version === 5 && reasonCode !== undefined ? { cmd: "disconnect", reasonCode } : { cmd: "disconnect" });
  }

  /** The peer closes the socket (no DISCONNECT): the connection is told at once. */
  drop(): void {
    this.transport.peerClose();
  }
}

/** Encode a packet with mqtt-packet. */
export function encodePacket(packet: Record<string, unknown>, version: 3 | 4 | 5 = 4): Buffer {
  return mqtt.generate(packet as unknown as mqtt.Packet, { protocolVersion: version });
}

/** A PUBLISH packet object for `send` / `sendMany`. */
export function publishPacket(topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 1, messageId = 1, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cmd: "publish", topic, payload, qos, messageId: qos > 0 ? messageId : undefined, retain: false, dup: false, ...extra };
}
