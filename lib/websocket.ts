/**
 * @module websocket
 * MQTT over WebSocket (`ws`, `wss`; MQTT 3.1.1 §6, MQTT 5 §6): the upgrade
 * with subprotocol negotiation, `WsTransport` (the `Transport` over the
 * runtime's `ServerSocket`: Bun's `ServerWebSocket` as it is, or the Deno
 * adapter of runtime/deno-http.ts) and the WebSocket handlers of the
 * runtime's `serveHttp`. The HTTP side (paths, other routes, TLS) is
 * http-server.ts.
 *
 * Every binary message is handed to the connection's framing as a chunk of
 * the byte stream, so an MQTT packet split across WebSocket frames, or
 * several packets in one frame, are framed exactly as over TCP
 * ([MQTT-6.0.0-2]). A text frame closes the connection ([MQTT-6.0.0-1]).
 *
 * Output: one binary message per batch. `send` returns the bytes written,
 * or -1 when the runtime took the message but must buffer it
 * (backpressure); from then on writes take nothing until `drain`, so the
 * runtime's buffer holds at most one batch and the rest stays in the
 * connection's own bounded output, where the pending-output bound and the
 * drain timeout see it as on TCP.
 * Input: `pause()`/`resume()` stop and restart reading the socket, so a
 * held-back publisher backs up in the kernel as on TCP (under Bun; Deno
 * holds the messages it reads meanwhile, see runtime/deno-http.ts).
 */
import type { PeerCertificate } from "node:tls";
import type { Broker } from "./broker.ts";
import { Connection } from "./connection.ts";
import { type ListenerInfo, normalOrigin } from "./listener-info.ts";
import { log } from "./log.ts";
import { MqttError, RC } from "./protocol/reason-codes.ts";
import type { RequestInfo, ServerSocket, WsHandlers } from "./runtime/index.ts";
import type { Transport } from "./transport.ts";

/** What a WebSocket carries from its upgrade to its connection. */
export interface WsData {
  listener: ListenerInfo;
  address: string;
  port: number;
  conn: Connection | null;
}

/** WebSocket close codes (RFC 6455 §7.4.1). */
const WS_NORMAL = 1000;
const WS_UNSUPPORTED_DATA = 1003;

export class WsTransport implements Transport {
  /** The close handshake was started: a second close cuts the connection. */
  private closing = false;
  /** The close code our close frame carries. */
  closeCode = WS_NORMAL;

  constructor(private readonly ws: ServerSocket<WsData>) {}

  write(buf: Buffer, offset: number, length: number): number {
    const ws = this.ws;
    if (ws.readyState !== 1) return -1;
    // The runtime still holds an earlier message: take nothing, wait for drain.
    if (ws.getBufferedAmount() > 0) return 0;
    // One binary message; the runtime copies what it cannot write at once.
    const r = ws.send(buf.subarray(offset, offset + length));
    if (r === 0) return ws.readyState === 1 ? 0 : -1; // dropped (over backpressureLimit): keep it, wait for drain
    return length; // written (r > 0) or buffered by the runtime (r = -1)
  }
  /** Bytes the runtime holds for this socket (at most one batch, see write). */
  get bufferedAmount(): number {
    return this.ws.readyState === 1 ? this.ws.getBufferedAmount() : 0;
  }
  /** Reading is paused (a held-back publisher). */
  get readingPaused(): boolean {
    return this.ws.isPaused;
  }
  pauseReading(): void {
    this.ws.pause();
  }
  resumeReading(): void {
    this.ws.resume();
  }
  shutdownWrite(): void {
    // The close frame follows what was sent; the runtime then reads (and we discard)
    // until the client's close frame, so the client reads our last packet.
    this.closing = true;
    this.ws.close(this.closeCode);
  }
  close(): void {
    if (this.closing) {
      this.ws.terminate(); // the client never answered our close frame
      return;
    }
    this.closing = true;
    this.ws.close(this.closeCode);
  }
  abort(): void {
    this.ws.terminate();
  }
  get remoteAddress(): string {
    return this.ws.data.address;
  }
  get remotePort(): number {
    return this.ws.data.port;
  }
  peerCertificate(): PeerCertificate | null {
    return null; // Bun.serve verifies client certificates but does not expose them (Deno.serve cannot ask for them)
  }
}

/** The MQTT subprotocol to answer with, or null: "mqtt" ([MQTT-6.0.0-3], [MQTT-6.0.0-4]), else "mqttv3.1" for old clients. */
export function selectSubprotocol(header: string | null): string | null {
  if (header === null) return null;
  const offered = header.split(",").map((p) => p.trim().toLowerCase());
  if (offered.includes("mqtt")) return "mqtt";
  if (offered.includes("mqttv3.1")) return "mqttv3.1";
  return null;
}

/**
 * Upgrade `req` to an MQTT WebSocket on `listener`, or return the refusal:
 * 426 for a plain request, 403 from a browser origin the listener does not
 * allow, 400 without an MQTT subprotocol, 503 when the broker or the
 * listener is full.
 */
export function upgradeMqtt(req: Request, info: RequestInfo<WsData>, listener: ListenerInfo, broker: Broker): Response | undefined {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("This is an MQTT over WebSocket endpoint: connect with a WebSocket client and the subprotocol \"mqtt\".\n", {
      status: 426,
      headers: { Upgrade: "websocket", "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  const origin = req.headers.get("origin");
  if (origin !== null && listener.allowedOrigins !== null && !listener.allowedOrigins.has(normalOrigin(origin))) {
    // A page from another site must not reach a broker the user can reach (cross-site WebSocket).
    if (log.debugEnabled) log.debug("WebSocket upgrade from an origin not allowed", { listener: listener.url, origin });
    return new Response("origin not allowed\n", { status: 403, headers: { "Content-Type": "text/plain; charset=utf-8" } });
  }
  const protocol = selectSubprotocol(req.headers.get("sec-websocket-protocol"));
  if (protocol === null) {
    return new Response('WebSocket subprotocol "mqtt" required (Sec-WebSocket-Protocol: mqtt)\n', {
      status: 400,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  const address = info.remoteAddress;
  if (!broker.admit(listener, address)) return new Response("server full\n", { status: 503, headers: { "Retry-After": "5" } });
  const data: WsData = { listener, address, port: info.remotePort, conn: null };
  if (info.upgrade(data, protocol)) return undefined;
  return new Response("WebSocket upgrade failed\n", { status: 400 });
}

/** The WebSocket handlers of every MQTT endpoint of an HTTP server (the runtime applies Bun's settings: no idle timeout, no pings, no compression). */
export function websocketHandler(broker: Broker): WsHandlers<WsData> {
  const lim = broker.limits;
  return {
    // A message may hold several packets; beyond this one the client is cut off (close 1009).
    maxPayloadLength: lim.maxPacketSize + 64 * 1024,
    open(ws) {
      ws.data.conn = new Connection(new WsTransport(ws), broker, ws.data.listener);
    },
    message(ws, message) {
      const conn = ws.data.conn!;
      if (typeof message === "string") {
        // [MQTT-6.0.0-1]: MQTT travels in binary frames; a text frame closes the connection.
        (conn.transport as WsTransport).closeCode = WS_UNSUPPORTED_DATA;
        conn.run(() => conn.fail(new MqttError(RC.MALFORMED_PACKET, "WebSocket text frame")));
        return;
      }
      conn.onData(message);
    },
    drain(ws) {
      ws.data.conn?.onDrain();
    },
    close(ws) {
      ws.data.conn?.onClose();
    },
    error(ws, err) {
      if (log.debugEnabled) log.debug("websocket error", { client: ws.data.conn?.clientId, listener: ws.data.listener.url, err });
    },
  };
}
