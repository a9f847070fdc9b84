/**
 * @module listener-info
 * What a connection knows of the listener it arrived on, whatever the
 * transport: its protocol and address (the URL printed at start), the
 * per-listener policy (connection limit, anonymous access, certificate
 * identity as username), and its counters. One per configured listener,
 * shared by its connections; plain fields, read by stats and the API.
 */
import type { ListenerConfig, Protocol } from "./config.ts";
import { formatAddress } from "./listen-error.ts";

export class ListenerInfo {
  readonly protocol: Protocol;
  readonly host: string;
  /** The bound port (port 0 resolved once listening). */
  port: number;
  /** ws / wss: the HTTP path of the endpoint; "" otherwise. */
  readonly path: string;
  /** Connections this listener may hold (limits.maxConnections applies as well). */
  readonly maxConnections: number;
  /** Overrides auth.allowAnonymous, or undefined. */
  readonly allowAnonymous: boolean | undefined;
  /** ws / wss: the Origin header values allowed to upgrade, or null for any. */
  readonly allowedOrigins: ReadonlySet<string> | null;
  /** The verified client certificate's CN is the username (mqtts with requireClientCert). */
  readonly identityAsUsername: boolean;
  /** Sockets of this listener that may not have finished CONNECT at one time (limits.maxUnauthenticated applies as well). */
  readonly maxUnauthenticated: number;
  /** The listener has TLS (mqtts, wss, https). */
  readonly tls: boolean;
  /** Open connections whose CONNECT is not accepted yet. */
  unauthenticated = 0;
  /** Open connections (every socket admitted, authenticated or not). */
  connections = 0;
  /** Sockets refused at accept (full, too many unauthenticated, connect rate). */
  refused = 0;
  /** Sockets admitted since start. */
  accepted = 0;

  constructor(
    /** Position in `listeners[]`, for messages ("listeners.1"). */
    readonly index: number,
    cfg: Pick<ListenerConfig, "protocol" | "host" | "port"> & Partial<ListenerConfig>,
  ) {
    this.protocol = cfg.protocol;
    this.host = cfg.host;
    this.port = cfg.port;
    this.path = cfg.path ?? "";
    this.maxConnections = cfg.maxConnections ?? Number.POSITIVE_INFINITY;
    this.maxUnauthenticated = cfg.maxUnauthenticated ?? Number.POSITIVE_INFINITY;
    this.allowAnonymous = cfg.allowAnonymous;
    this.identityAsUsername = cfg.tls?.useIdentityAsUsername === true;
    this.tls = cfg.tls !== undefined;
    this.allowedOrigins = cfg.allowedOrigins ? new Set(cfg.allowedOrigins.map(normalOrigin)) : null;
  }

  /** mqtt://127.0.0.1:1883, mqtts://…, ws://…/mqtt, wss://…/mqtt, http://…/ (https:// with TLS) */
  get url(): string {
    if (this.protocol === "http") return `${this.tls ? "https" : "http"}://${formatAddress(this.host, this.port)}/`;
    return `${this.protocol}://${formatAddress(this.host, this.port)}${this.path}`;
  }

  /** "listeners.1 (mqtts://0.0.0.0:8883)", for messages about this listener. */
  get name(): string {
    return `listeners.${this.index} (${this.url})`;
  }

  get secure(): boolean {
    return this.tls;
  }
}

/** An origin as browsers send it: scheme://host[:port], lower case, no trailing slash. */
export function normalOrigin(o: string): string {
  return o.trim().toLowerCase().replace(/\/+$/, "");
}
