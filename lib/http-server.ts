/**
 * @module http-server
 * One HTTP server (the runtime's `serveHttp`: Bun.serve, Deno.serve) per
 * host:port that carries `ws` / `wss` listeners and at most one `http`
 * listener: each ws listener is an MQTT WebSocket endpoint at its path, and
 * every other request goes to the http listener's app (health, metrics,
 * API, dashboard: http/app.ts), or gets 404.
 *
 * The server can be restarted with new TLS options on the same port
 * (`restart`): the new server binds first with SO_REUSEPORT, then the old
 * one is retired: it accepts nothing more and, under Bun, keeps its open
 * WebSockets until they close (under Deno they are closed, see
 * runtime/deno-http.ts).
 */
import type { Broker } from "./broker.ts";
import type { HttpApp } from "./http/app.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { listenError } from "./listen-error.ts";
import { log } from "./log.ts";
import { type HttpServerHandle, runtime, type TlsOptions } from "./runtime/index.ts";
import { upgradeMqtt, websocketHandler, type WsData } from "./websocket.ts";

/** Largest HTTP request body accepted (the MQTT endpoints take none). */
const MAX_BODY = 1024 * 1024;

export class HttpServer {
  /** MQTT WebSocket endpoints by path. */
  readonly endpoints = new Map<string, ListenerInfo>();
  /** The http listener's endpoints, or null when this server only carries WebSockets. */
  app: HttpApp | null = null;
  private server: HttpServerHandle | null = null;
  /** Servers replaced by a restart: they accept nothing but may still carry WebSockets. */
  private retired: HttpServerHandle[] = [];

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
  start(tls: TlsOptions | null): void {
    this.server = this.serve(tls, this.port);
    this.port = this.server.port;
  }

  /** New TLS options for new connections; open WebSockets stay on the old server until they close (Bun). */
  restart(tls: TlsOptions): void {
    const old = this.server!;
    this.server = this.serve(tls, this.port);
    old.retire();
    this.retired.push(old);
  }

  /** Stop accepting; with `closeActive`, close every connection too. */
  stop(closeActive: boolean): void {
    for (const s of [this.server, ...this.retired]) s?.stop(closeActive);
    if (closeActive) this.retired = [];
  }

  private serve(tls: TlsOptions | null, port: number): HttpServerHandle {
    const broker = this.broker;
    const endpoints = this.endpoints;
    const self = this;
    try {
      return runtime().serveHttp<WsData>({
        host: this.host,
        port,
        tls,
        // With TLS, SO_REUSEPORT, so that `restart` can bind beside this server.
        reusePort: tls !== null,
        // Nothing served here takes a large body; a bound keeps a request from pinning memory.
        maxRequestBodySize: MAX_BODY,
        fetch(req, info) {
          const path = pathOf(req.url);
          const endpoint = endpoints.get(path);
          if (endpoint !== undefined) return upgradeMqtt(req, info, endpoint, broker);
          const app = self.app;
          if (app !== null) return app.fetch(req, info);
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

/** The path of a request URL, without query (requests carry absolute URLs). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}
