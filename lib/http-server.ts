/**
 * @module http-server
 * One `Bun.serve` HTTP server per host:port that carries `ws` / `wss`
 * listeners and at most one `http` listener: each ws listener is an MQTT
 * WebSocket endpoint at its path, and every other request goes to the http
 * listener's app (health, metrics, API, dashboard: http/app.ts), or gets 404.
 *
 * The server can be restarted with new TLS options on the same port without
 * touching open WebSockets (`restart`): the new server binds first with
 * SO_REUSEPORT, then the old one stops accepting and keeps its connections.
 */
import type { Server, TLSOptions } from "bun";
import type { Broker } from "./broker.ts";
import type { HttpApp } from "./http/app.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { listenError } from "./listen-error.ts";
import { log } from "./log.ts";
import { upgradeMqtt, websocketHandler, type WsData } from "./websocket.ts";

/** Largest HTTP request body accepted (the MQTT endpoints take none). */
const MAX_BODY = 1024 * 1024;

export class HttpServer {
  /** MQTT WebSocket endpoints by path. */
  readonly endpoints = new Map<string, ListenerInfo>();
  /** The http listener's endpoints, or null when this server only carries WebSockets. */
  app: HttpApp | null = null;
  private server: Server<WsData> | null = null;
  /** Servers replaced by a restart: they accept nothing but still carry their WebSockets. */
  private retired: Server<WsData>[] = [];

  constructor(
    readonly host: string,
    private port: number,
    private readonly broker: Broker,
  ) {}

  /** The bound port. */
  get boundPort(): number {
    return this.server?.port ?? this.port;
  }

  /** Bind (throws ListenError). With `tls`, bind with SO_REUSEPORT so that `restart` can take over the port. */
  start(tls: TLSOptions | null): void {
    this.server = this.serve(tls, this.port);
    this.port = this.server.port!;
  }

  /** New TLS options for new connections; open WebSockets stay on the old server until they close. */
  restart(tls: TLSOptions): void {
    const old = this.server!;
    this.server = this.serve(tls, this.port);
    old.stop(false);
    this.retired.push(old);
  }

  /** Stop accepting; with `closeActive`, close every connection too. */
  stop(closeActive: boolean): void {
    for (const s of [this.server, ...this.retired]) s?.stop(closeActive);
    if (closeActive) this.retired = [];
  }

  private serve(tls: TLSOptions | null, port: number): Server<WsData> {
    const broker = this.broker;
    const endpoints = this.endpoints;
    const self = this;
    try {
      return Bun.serve<WsData>({
        hostname: this.host,
        port,
        ...(tls !== null ? { tls, reusePort: true } : {}),
        // No error pages with stack traces, whatever NODE_ENV says.
        development: false,
        // Nothing served here takes a large body; a bound keeps a request from pinning memory.
        maxRequestBodySize: MAX_BODY,
        fetch(req, server) {
          const path = pathOf(req.url);
          const endpoint = endpoints.get(path);
          if (endpoint !== undefined) return upgradeMqtt(req, server, endpoint, broker);
          const app = self.app;
          if (app !== null) return app.fetch(req, server);
          return new Response("Not Found\n", { status: 404, headers: { "Content-Type": "text/plain; charset=utf-8" } });
        },
        websocket: websocketHandler(broker),
        error(err) {
          log.error("HTTP request failed", { err, stack: err?.stack });
          return new Response("Internal Server Error\n", { status: 500, headers: { "Content-Type": "text/plain; charset=utf-8" } });
        },
      });
    } catch (err) {
      throw listenError(err, this.host, port);
    }
  }
}

/** The path of a request URL, without query (Bun gives absolute URLs). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}
