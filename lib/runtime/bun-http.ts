/**
 * @module runtime/bun-http
 * HTTP and WebSocket under Bun: `Bun.serve`, passed straight through. Bun's
 * `ServerWebSocket` is a `ServerSocket` as it is and the handlers go to Bun
 * unwrapped (only `error`, whose arguments Bun gives the other way round, is
 * adapted), so the WebSocket hot path has no layer of its own. Only Bun
 * loads this module (runtime/bun.ts).
 */
import type { Server, SocketAddress } from "bun";
import type { HttpServeOptions, HttpServerHandle, RequestInfo } from "./types.ts";

/** `Server<T>.upgrade` for a generic T (Bun's declaration is a conditional type TypeScript cannot resolve for one). */
interface Upgrader<T> {
  upgrade(req: Request, options: { data: T; headers: HeadersInit }): boolean;
}

export function bunServeHttp<T>(opts: HttpServeOptions<T>): HttpServerHandle {
  const ws = opts.websocket;
  const server: Server<T> = Bun.serve<T>({
    hostname: opts.host,
    port: opts.port,
    // With TLS, SO_REUSEPORT so that a restart with new certificates can bind beside this server.
    ...(opts.tls !== null ? { tls: opts.tls, reusePort: true } : opts.reusePort ? { reusePort: true } : {}),
    // No error pages with stack traces, whatever NODE_ENV says.
    development: false,
    maxRequestBodySize: opts.maxRequestBodySize,
    fetch(req, server) {
      let ip: SocketAddress | null | undefined;
      const info: RequestInfo<T> = {
        get remoteAddress() {
          return (ip === undefined ? (ip = server.requestIP(req)) : ip)?.address ?? "";
        },
        get remotePort() {
          return (ip === undefined ? (ip = server.requestIP(req)) : ip)?.port ?? 0;
        },
        upgrade: (data, protocol) => (server as unknown as Upgrader<T>).upgrade(req, { data, headers: { "Sec-WebSocket-Protocol": protocol } }),
        noTimeout: () => server.timeout(req, 0),
      };
      return opts.fetch(req, info);
    },
    websocket: {
      maxPayloadLength: ws.maxPayloadLength,
      // Writes stop at the first buffered message (WsTransport.write): the connection's own bounds apply.
      backpressureLimit: 0,
      closeOnBackpressureLimit: false,
      // MQTT keep alive and the connect timeout govern idle connections.
      idleTimeout: 0,
      sendPings: false,
      perMessageDeflate: false,
      open: ws.open,
      message: ws.message,
      drain: ws.drain,
      close: ws.close,
      error: (err, socket) => ws.error?.(socket, err),
    },
    error: (err) => opts.error(err),
  });
  return {
    port: server.port!,
    stop: (closeActive) => void server.stop(closeActive),
    retire: () => void server.stop(false),
  };
}
