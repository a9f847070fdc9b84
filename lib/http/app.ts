/**
 * @module http/app
 * The observability endpoints of an `http` listener: GET /healthz,
 * GET /metrics (Prometheus), the JSON API under /api/v1 (api.ts) and the
 * dashboard at / (dashboard.ts). One app per http listener, served by the
 * HTTP server of its host:port (http-server.ts), beside any ws endpoints.
 *
 * Access: with `http.token` set, every endpoint but /healthz needs it, as
 * `Authorization: Bearer TOKEN`, the `bunmq_token` cookie the dashboard
 * sets, or `?token=` (EventSource cannot send headers). Without a token
 * (allowed on loopback only, config.ts) the endpoints are open; requests
 * that change something are still refused when a browser page from another
 * origin sends them, and the Host header must name this machine, so that a
 * web page the user happens to open cannot drive the broker (CSRF, DNS
 * rebinding).
 */
import { timingSafeEqual } from "node:crypto";
import type { Broker } from "../broker.ts";
import type { ListenerInfo } from "../listener-info.ts";
import type { RequestInfo } from "../runtime/index.ts";
import type { WsData } from "../websocket.ts";
import { handleApi } from "./api.ts";
import { handleDashboard } from "./dashboard.ts";
import { liveHub } from "./live.ts";
import { prometheusText } from "./prometheus.ts";

export interface HttpContext {
  readonly broker: Broker;
  readonly listener: ListenerInfo;
  /** The request as the HTTP server sees it: the peer's address, `noTimeout()` for streams. */
  readonly request: RequestInfo<WsData>;
  /** The request's URL, parsed once. */
  readonly url: URL;
}

/** A JSON response. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", ...headers } });
}

/** A JSON error: `{ "error": message }`. */
export function jsonError(status: number, message: string): Response {
  return json({ error: message }, status);
}

export class HttpApp {
  constructor(
    private readonly broker: Broker,
    readonly listener: ListenerInfo,
  ) {
    // Rate history and recent events accumulate from the listener's start, not from the first page view.
    liveHub(broker);
  }

  fetch(req: Request, info: RequestInfo<WsData>): Response | Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path === "/healthz") return this.health(req);
    if (!this.hostAllowed(req)) return jsonError(421, "the Host header does not name this broker");
    if (!this.authorized(req, url)) {
      return new Response(JSON.stringify({ error: "a bearer token is required (http.token)" }), {
        status: 401,
        headers: { "Content-Type": "application/json; charset=utf-8", "WWW-Authenticate": 'Bearer realm="bunmq"' },
      });
    }
    if (req.method !== "GET" && req.method !== "HEAD" && !this.sameOrigin(req)) return jsonError(403, "cross-origin request refused");
    const ctx: HttpContext = { broker: this.broker, listener: this.listener, request: info, url };
    if (path === "/metrics") {
      if (req.method !== "GET") return jsonError(405, "GET only");
      return new Response(prometheusText(this.broker), { headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" } });
    }
    if (path === "/api/v1" || path.startsWith("/api/v1/")) return handleApi(ctx, req);
    if (this.broker.config.http.dashboard) {
      const r = handleDashboard(ctx, req);
      if (r !== null) return r;
    }
    return jsonError(404, "not found");
  }

  /** 200 while accepting; 503 while shutting down. */
  private health(req: Request): Response {
    if (req.method !== "GET" && req.method !== "HEAD") return jsonError(405, "GET only");
    if (this.broker.shuttingDown) return json({ status: "shutting down" }, 503);
    return json({ status: "ok" });
  }

  private authorized(req: Request, url: URL): boolean {
    const token = this.broker.config.http.token;
    if (token === undefined) return true;
    const auth = req.headers.get("authorization");
    if (auth !== null && auth.startsWith("Bearer ") && same(auth.slice(7).trim(), token)) return true;
    const cookie = req.headers.get("cookie");
    if (cookie !== null) {
      for (const part of cookie.split(";")) {
        const [k, v] = part.trim().split("=", 2);
        if (k === "bunmq_token" && v !== undefined && same(decodeURIComponent(v), token)) return true;
      }
    }
    const q = url.searchParams.get("token");
    return q !== null && same(q, token);
  }

  /**
   * Without a token, only requests that name this machine (localhost, a
   * loopback address, or the listener's own host) are served: a DNS name
   * rebound to 127.0.0.1 by a web page is not.
   */
  private hostAllowed(req: Request): boolean {
    if (this.broker.config.http.token !== undefined) return true;
    const host = req.headers.get("host");
    if (host === null) return true;
    const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.split(":")[0]!;
    return name === "localhost" || name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name) || name === this.listener.host;
  }

  /** A request without an Origin header (curl, scripts) or from a page of this very server. */
  private sameOrigin(req: Request): boolean {
    const origin = req.headers.get("origin");
    if (origin === null) return true;
    const host = req.headers.get("host");
    try {
      return host !== null && new URL(origin).host === host;
    } catch {
      return false;
    }
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
