/**
 * @module runtime/deno-globals
 * The `Deno` global, typed with just the members the Deno runtime uses.
 * The project is type-checked against Bun's types (@types/bun), which know
 * nothing of `Deno`, and Deno's own declarations cannot be loaded beside
 * them (they clash on the web globals); so the few members used are
 * declared here, by area, and `Deno` is read from `globalThis`. Under Bun
 * it is undefined, and no Bun code path reaches this module.
 *
 * Add an area's members to its section and to `DenoApi` at the bottom.
 */

// ---------------------------------------------------------------- TCP and TLS sockets (deno-net.ts)

export interface DenoConn {
  readonly remoteAddr: unknown;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

export interface DenoTlsConn extends DenoConn {
  handshake(): Promise<unknown>;
}

export interface DenoListener {
  readonly addr: unknown;
  accept(): Promise<DenoConn>;
  close(): void;
}

interface DenoListenOptions {
  hostname: string;
  port: number;
  reusePort?: boolean;
}

interface NetApi {
  listen(o: DenoListenOptions): DenoListener;
  listenTls(o: DenoListenOptions & { cert: string; key: string }): DenoListener;
  connect(o: { hostname: string; port: number }): Promise<DenoConn>;
  connectTls(o: { hostname: string; port: number; serverName?: string; caCerts?: string[]; cert?: string; key?: string }): Promise<DenoTlsConn>;
}

// ---------------------------------------------------------------- HTTP and WebSocket (deno-http.ts)

export interface DenoNetAddr {
  readonly hostname: string;
  readonly port: number;
  readonly transport: string;
}

export interface DenoServeOptions {
  hostname: string;
  port: number;
  reusePort?: boolean;
  /** PEM certificate chain and unencrypted key: a TLS server. */
  cert?: string;
  key?: string;
  /** Called once bound; the default logs "Listening on …". */
  onListen?(addr: DenoNetAddr): void;
  /** The handler threw or rejected: the response to send. */
  onError?(error: unknown): Response | Promise<Response>;
}

export interface DenoServeHandlerInfo {
  readonly remoteAddr: DenoNetAddr;
}

export interface DenoHttpServer {
  /** Bound when `serve` returns (port 0 resolved). */
  readonly addr: DenoNetAddr;
  /** Stop accepting, finish the requests under way, and close the upgraded WebSockets (1001). */
  shutdown(): Promise<void>;
}

/** The server side of a WebSocket (the web standard `WebSocket`, as far as used). */
export interface DenoWebSocket {
  binaryType: "arraybuffer" | "blob";
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes sent but not yet written to the socket: after any `send`, until a later turn of the event loop. */
  readonly bufferedAmount: number;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  onopen: (() => void) | null;
  /** `data`: an ArrayBuffer for a binary message (binaryType "arraybuffer"), a string for a text one. */
  onmessage: ((ev: { readonly data: ArrayBuffer | string }) => void) | null;
  onclose: ((ev: { readonly code: number; readonly reason: string }) => void) | null;
  /** An ErrorEvent; a close event follows. */
  onerror: ((ev: { readonly message?: string; readonly error?: unknown }) => void) | null;
}

export interface DenoUpgradeOptions {
  /** The subprotocol to answer with (Sec-WebSocket-Protocol). */
  protocol?: string;
  /** Seconds without a pong before the socket is closed; 0: no pings. */
  idleTimeout?: number;
}

interface HttpApi {
  /** Throws synchronously when it cannot bind (AddrInUse, with `code: "EADDRINUSE"`). */
  serve(options: DenoServeOptions, handler: (req: Request, info: DenoServeHandlerInfo) => Response | Promise<Response>): DenoHttpServer;
  /** Throws when `req` is not a WebSocket upgrade request. */
  upgradeWebSocket(req: Request, options?: DenoUpgradeOptions): { socket: DenoWebSocket; response: Response };
}

// ---------------------------------------------------------------- the process (deno.ts)

interface ProcessApi {
  readonly version: { readonly deno: string };
}

// ---------------------------------------------------------------- unstable features

interface UnstableProbes {
  /** Defined only with --unstable-net (or "unstable": ["net"] in deno.json), which `reusePort` needs. */
  readonly listenDatagram?: unknown;
}

// ---------------------------------------------------------------- the global

/** What lib/ uses of `Deno`: one intersection member per area. */
export type DenoApi = NetApi & HttpApi & ProcessApi & UnstableProbes;

export const Deno: DenoApi = (globalThis as unknown as { Deno: DenoApi }).Deno;
