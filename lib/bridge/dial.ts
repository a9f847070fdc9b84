/**
 * @module bridge/dial
 * Opening a bridge's byte stream to its upstream: TCP and TLS through the
 * runtime (`Bun.connect`, `Deno.connectTls`), WebSocket (subprotocol "mqtt",
 * MQTT 3.1.1 §6 / 5 §6) with the runtime's WebSocket client. Each gives a `Transport`, the seam `Connection`
 * reads and writes through, so the upstream connection is framed, flushed
 * and held back exactly like a client's. Nothing MQTT-specific here.
 *
 * `dial` resolves once bytes can flow (after the TLS handshake, after the
 * WebSocket upgrade) and rejects with a one-line reason otherwise. The
 * caller then binds a sink (the connection) to the returned link; events
 * before that are not expected, since the upstream speaks only after our
 * CONNECT.
 */
import { readFileSync } from "node:fs";
import type { PeerCertificate } from "node:tls";
import { type Link, runtime, type StreamSink, type TlsOptions as TLSOptions } from "../runtime/index.ts";
import type { Transport } from "../transport.ts";
import type { BridgeAddress, BridgeConfig } from "./config.ts";

/** Where a dialed stream delivers its events (a Connection's entry points). */
export type LinkSink = StreamSink;
export type { Link };

/** The TLS options of a bridge, with files read now (a reload re-reads them). */
export function bridgeTls(b: BridgeConfig, addr: BridgeAddress): TLSOptions & { rejectUnauthorized: boolean; servername?: string } {
  const t = b.tls;
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      throw new Error(`bridges ${b.name}: cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  };
  const o: TLSOptions & { rejectUnauthorized: boolean; servername?: string } = { rejectUnauthorized: t?.rejectUnauthorized ?? true };
  if (t?.ca !== undefined) o.ca = read(t.ca, "CA file");
  if (t?.cert !== undefined) o.cert = read(t.cert, "certificate");
  if (t?.key !== undefined) o.key = read(t.key, "key");
  if (t?.passphrase !== undefined) o.passphrase = t.passphrase;
  o.servername = t?.servername ?? addr.host;
  return o;
}


/**
 * The client side of a WebSocket. Bun's client WebSocket has no drain event
 * and cannot pause reading: writes are always taken (Bun buffers them), and
 * the connection's own pending-output bound and drain timeout do not apply
 * to it. A limitation of the WebSocket client API, named in README.md.
 */
class WsClientTransport implements Transport {
  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    readonly remotePort: number,
  ) {}
  write(buf: Buffer, offset: number, length: number): number {
    if (this.ws.readyState !== 1) return -1;
    this.ws.send(buf.subarray(offset, offset + length));
    return length;
  }
  pauseReading(): void {}
  resumeReading(): void {}
  shutdownWrite(): void {
    this.ws.close(1000);
  }
  close(): void {
    this.ws.close(1000);
  }
  abort(): void {
    (this.ws as WebSocket & { terminate?: () => void }).terminate?.() ?? this.ws.close();
  }
  peerCertificate(): PeerCertificate | null {
    return null;
  }
}

function dialWs(addr: BridgeAddress, tls: ReturnType<typeof bridgeTls> | null, timeoutMs: number): Promise<Link> {
  return new Promise<Link>((resolve, reject) => {
    const host = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
    const url = `${addr.scheme}://${host}:${addr.port}${addr.path}`;
    let sink: LinkSink | null = null;
    let closed = false;
    let settled = false;
    // Bun's constructor takes TLS options and the subprotocol list as an object.
    const ws = new WebSocket(url, { protocols: ["mqtt"], ...(tls !== null ? { tls } : {}) } as unknown as string[]);
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      ws.close();
      reject(new Error(`no WebSocket connection within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.onopen = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ws.protocol !== "mqtt") {
        ws.close();
        reject(new Error(`the upstream did not accept the "mqtt" WebSocket subprotocol`));
        return;
      }
      resolve({
        transport: new WsClientTransport(ws, addr.host, addr.port),
        bind(s) {
          sink = s;
          if (closed) s.onClose();
        },
      });
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === "string") {
        ws.close(1003); // text frames are not MQTT ([MQTT-6.0.0-1])
        return;
      }
      sink?.onData(Buffer.from(ev.data as ArrayBuffer));
    };
    ws.onerror = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error("WebSocket connection failed"));
    };
    ws.onclose = (ev: CloseEvent) => {
      closed = true;
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(new Error(`WebSocket closed during set-up (code ${ev.code})`));
        return;
      }
      sink?.onClose();
    };
  });
}

/** Open the stream to `addr`. Rejects with an Error whose message is one line. */
export function dial(addr: BridgeAddress, tls: ReturnType<typeof bridgeTls> | null, timeoutMs: number): Promise<Link> {
  if (addr.scheme === "ws" || addr.scheme === "wss") return dialWs(addr, tls, timeoutMs);
  return runtime().dialTcp({ host: addr.host, port: addr.port, tls, timeoutMs });
}
