/**
 * A raw MQTT client over a real TCP socket (or a TLS one, `connectTls`):
 * send hand-built bytes or packets encoded by mqtt-packet, and read what the
 * broker answers, decoded by an mqtt-packet parser (the reference codec).
 * For precise and malformed input that MQTT.js would never send. The
 * WebSocket variant is ws-raw.ts.
 */
import * as net from "node:net";
import * as tls from "node:tls";
import mqtt from "mqtt-packet";

export type Packet = mqtt.Packet & Record<string, any>;

export class RawClient {
  readonly socket: net.Socket;
  private readonly parser: mqtt.Parser;
  private readonly packets: Packet[] = [];
  private waiters: (() => void)[] = [];
  /** Bytes received, in order (for byte-exact checks). */
  readonly received: Buffer[] = [];
  closed = false;
  parseError: Error | null = null;
  readonly closedPromise: Promise<void>;

  protected constructor(socket: net.Socket, readonly version: 3 | 4 | 5) {
    this.socket = socket;
    this.parser = mqtt.parser({ protocolVersion: version });
    this.parser.on("packet", (p: Packet) => {
      this.packets.push(p);
      this.wake();
    });
    this.parser.on("error", (e: Error) => {
      this.parseError = e;
      this.wake();
    });
    socket.on("data", (d: Buffer) => this.input(d));
    this.closedPromise = new Promise((resolve) => {
      socket.on("close", () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
    socket.on("error", () => {});
  }

  static connect(port: number, version: 3 | 4 | 5 = 4): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => resolve(new RawClient(s, version)));
      s.once("error", reject);
    });
  }

  /** Over TLS: resolves once the handshake is done (rejects if the broker refuses it). */
  static connectTls(port: number, version: 3 | 4 | 5 = 4, opts: tls.ConnectionOptions = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...opts }, () => resolve(new RawClient(s, version)));
      s.once("error", reject);
    });
  }

  /** Bytes from the socket (a WebSocket client unwraps frames first). */
  protected input(d: Buffer): void {
    this.received.push(d);
    this.parser.parse(d);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(data: Buffer | number[]): void {
    this.socket.write(Buffer.isBuffer(data) ? data : Buffer.from(data));
  }

  /** Encode with mqtt-packet for this client's version and send. */
  send(packet: Record<string, unknown>): void {
    this.write(mqtt.generate(packet as unknown as mqtt.Packet, { protocolVersion: this.version }));
  }

  /** The next packet from the broker; throws if none arrives in `ms` or the socket closes first. */
  async next(ms = 2000): Promise<Packet> {
    const end = Date.now() + ms;
    while (this.packets.length === 0) {
      if (this.closed) throw new Error("connection closed while waiting for a packet");
      const left = end - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a packet");
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.packets.shift()!;
  }

  /** The next packet of type `cmd`, skipping others (they are returned in `skipped`). */
  async nextOf(cmd: string, ms = 2000, skipped: Packet[] = []): Promise<Packet> {
    for (;;) {
      const p = await this.next(ms);
      if (p.cmd === cmd) return p;
      skipped.push(p);
    }
  }

  /** Packets received so far and not yet taken. */
  pending(): Packet[] {
    return this.packets.splice(0);
  }

  /** True if the broker closes the connection within `ms`. */
  async waitClose(ms = 2000): Promise<boolean> {
    if (this.closed) return true;
    return Promise.race([this.closedPromise.then(() => true), Bun.sleep(ms).then(() => false)]);
  }

  /** Collect packets until nothing arrives for `quietMs`. */
  async drain(quietMs = 150): Promise<Packet[]> {
    const out: Packet[] = [];
    for (;;) {
      try {
        out.push(await this.next(quietMs));
      } catch {
        return out;
      }
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** CONNECT and wait for CONNACK; returns it. */
  async handshake(opts: Record<string, unknown> = {}): Promise<Packet> {
    this.send({
      cmd: "connect",
      protocolId: this.version === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: this.version,
      clean: true,
      keepalive: 0,
      clientId: `raw-${Math.random().toString(16).slice(2)}`,
      ...opts,
    });
    return this.next();
  }

  static async connected(port: number, version: 3 | 4 | 5 = 4, opts: Record<string, unknown> = {}): Promise<RawClient> {
    return RawClient.handshaken(await RawClient.connect(port, version), opts);
  }

  /** `c` after CONNECT and a successful CONNACK (throws otherwise). */
  static async handshaken<C extends RawClient>(c: C, opts: Record<string, unknown> = {}): Promise<C> {
    const ack = await c.handshake(opts);
    if (ack.cmd !== "connack" || (ack.returnCode ?? ack.reasonCode ?? 0) !== 0) {
      throw new Error(`CONNECT refused: ${JSON.stringify(ack)}`);
    }
    return c;
  }
}

/** Collect PUBLISH packets until one satisfies `last` (included); other packet types are skipped. */
export async function publishesUntil(c: RawClient, last: (p: Packet) => boolean, ms = 3000): Promise<Packet[]> {
  const out: Packet[] = [];
  for (;;) {
    const p = await c.nextOf("publish", ms);
    out.push(p);
    if (last(p)) return out;
  }
}

/** Encode a packet with mqtt-packet. */
export function encode(packet: Record<string, unknown>, version: 3 | 4 | 5 = 4): Buffer {
  return mqtt.generate(packet as unknown as mqtt.Packet, { protocolVersion: version });
}
