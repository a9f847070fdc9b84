/**
 * @module runtime/types
 * The runtime seam: everything the broker needs from its JavaScript runtime
 * beyond ECMAScript and the node: modules both Bun and Deno provide. One
 * implementation per runtime (bun.ts, deno.ts), chosen by the entry point
 * (broker.ts, broker.deno.ts) with `useRuntime`; `lib/` reaches the runtime
 * only through `runtime()` (index.ts), never through a global `Bun` or
 * `Deno`, so Deno never loads `bun:sqlite` and Bun never loads Deno code.
 *
 * The shapes follow Bun's where that costs Bun nothing (its socket, server
 * and WebSocket objects satisfy them as they are, so the Bun path has no
 * wrapper on the hot path); Deno adapts to them.
 */
import type { PeerCertificate } from "node:tls";
import type { Transport } from "../transport.ts";

// ---------------------------------------------------------------- SQL

/** What a statement takes: no `undefined`, no booleans (node:sqlite refuses both). */
export type SqlValue = string | number | bigint | Uint8Array | null;
export type SqlRow = Record<string, unknown>;

export interface SqlStatement {
  run(...params: SqlValue[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  all(...params: SqlValue[]): SqlRow[];
  /** The first row, or null / undefined when there is none. */
  get(...params: SqlValue[]): SqlRow | null | undefined;
}

/** A synchronous SQLite connection (bun:sqlite, node:sqlite). Transactions are BEGIN/COMMIT through `exec`. */
export interface SqlDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  /** Close now, whatever statements are still prepared (the file lock goes with it). */
  close(): void;
}

/** Opens SQLite databases: bun:sqlite (bun.ts) or node:sqlite (node-sqlite.ts). A `Runtime` is one. */
export interface SqlDriver {
  /** Open (creating) the SQLite file at `path`, or ":memory:". */
  openDatabase(path: string): SqlDatabase;
  /** Is `err` SQLite's SQLITE_BUSY (the database is locked by someone else)? */
  isBusy(err: unknown): boolean;
}

// ---------------------------------------------------------------- TLS

/** TLS options as PEM text (tls-material.ts reads the files). */
export interface TlsOptions {
  cert?: string;
  key?: string;
  ca?: string;
  crl?: string;
  passphrase?: string;
  /** Ask for a client certificate and refuse the handshake without a trusted one. */
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
  /** Client side: the name to verify and to send as SNI. */
  servername?: string;
  ciphers?: string;
  /** OpenSSL option bits (SSL_OP_NO_TLSv1_2 for a TLS 1.3-only listener). */
  secureOptions?: number;
}

// ---------------------------------------------------------------- streams

/** Where a stream socket delivers its events: a Connection's entry points. */
export interface StreamSink {
  onData(chunk: Buffer): void;
  onDrain(): void;
  onClose(): void;
}

export interface TcpServerOptions {
  host: string;
  port: number;
  /** TLS options (mqtts), or null for plain TCP. */
  tls: TlsOptions | null;
  /** Bind with SO_REUSEPORT (certificate reload binds a second listener on the port). */
  reusePort?: boolean;
  /**
   * A socket was accepted (for TLS: before the handshake, so that the connect
   * timeout covers a handshake that never ends). Return its sink, or null to
   * refuse it (it is aborted at once).
   */
  accept(transport: Transport): StreamSink | null;
  /** A socket error (the sink's own entry points catch their failures). */
  onError?(sink: StreamSink | null, err: Error): void;
}

export interface TcpServer {
  readonly port: number;
  /** Stop accepting; with `closeActive`, close every accepted socket too. */
  stop(closeActive: boolean): void;
}

export interface DialOptions {
  host: string;
  port: number;
  tls: TlsOptions | null;
  timeoutMs: number;
}

/** A dialed stream: bytes can flow; bind a sink to receive them. */
export interface Link {
  transport: Transport;
  /** Start delivering events to `sink`; a close that came before is delivered at once. */
  bind(sink: StreamSink): void;
}

// ---------------------------------------------------------------- HTTP and WebSocket

/** A server-side WebSocket, shaped like Bun's ServerWebSocket (which satisfies it as it is). */
export interface ServerSocket<T> {
  readonly data: T;
  /** 1 while open. */
  readonly readyState: number;
  /** Send one binary message: > 0 written, -1 taken but buffered (backpressure), 0 dropped. */
  send(data: Uint8Array): number;
  getBufferedAmount(): number;
  readonly isPaused: boolean;
  pause(): void;
  resume(): void;
  close(code?: number): void;
  terminate(): void;
}

/** Called as plain functions, not as methods (Bun gets them unbound). */
export interface WsHandlers<T> {
  /** Largest message accepted; beyond it the socket is closed (1009). */
  maxPayloadLength: number;
  open(ws: ServerSocket<T>): void;
  message(ws: ServerSocket<T>, message: Buffer | string): void;
  /** Buffered output was sent (after `send` returned -1 or 0). */
  drain(ws: ServerSocket<T>): void;
  close(ws: ServerSocket<T>): void;
  error?(ws: ServerSocket<T>, err: Error): void;
}

/** What a request handler knows about its request beyond the Request. */
export interface RequestInfo<T> {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Upgrade this request to a WebSocket answering with `protocol`; false if it cannot be upgraded. */
  upgrade(data: T, protocol: string): boolean;
  /** The response is a long stream: no idle timeout for it. */
  noTimeout(): void;
}

export interface HttpServeOptions<T> {
  host: string;
  port: number;
  tls: TlsOptions | null;
  reusePort?: boolean;
  maxRequestBodySize: number;
  /** A response, or undefined once `info.upgrade` succeeded. */
  fetch(req: Request, info: RequestInfo<T>): Response | Promise<Response> | undefined;
  websocket: WsHandlers<T>;
  /** The handler threw: the response to send (no stack trace). */
  error(err: Error): Response;
}

export interface HttpServerHandle {
  /** The bound port (port 0 resolved). */
  readonly port: number;
  /**
   * Stop accepting; open connections go on (the broker's last DISCONNECTs
   * still leave). With `closeActive`, close every connection too.
   */
  stop(closeActive: boolean): void;
  /**
   * A restart replaced this server (a new one is bound on the port): stop
   * accepting now. Its WebSockets go on where the runtime can keep them
   * (Bun: as `stop(false)`); under Deno they are closed (1001), as stopping
   * a Deno.serve server does.
   */
  retire(): void;
}

// ---------------------------------------------------------------- the runtime

export interface Runtime extends SqlDriver {
  /** "bun" or "deno". */
  readonly name: "bun" | "deno";
  /** The runtime's version, for the start line. */
  readonly version: string;
  listenTcp(opts: TcpServerOptions): TcpServer;
  dialTcp(opts: DialOptions): Promise<Link>;
  /** Bind an HTTP server whose requests may upgrade to WebSockets (throws synchronously when it cannot bind). */
  serveHttp<T>(opts: HttpServeOptions<T>): HttpServerHandle;
  /** Verify a password against an argon2 or bcrypt hash without blocking the event loop. Never rejects on a bad hash: false. */
  verifyPassword(password: string, hash: string): Promise<boolean>;
  /** An argon2id hash (PHC string). */
  hashPassword(password: string): Promise<string>;
  /**
   * Copy `src[start, end)` into `dst` at `at`: the hot path's copy of a kept
   * payload. Bun's Buffer#copy is native; Deno's is JavaScript, where
   * Uint8Array#set over a plain view costs about half.
   */
  copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): void;
  /** A fast 64-bit non-cryptographic hash of bytes, as text (echo filters). */
  hash(data: Uint8Array): string;
  /** The TLS client certificate capabilities of this runtime's listeners. */
  readonly tlsClientCertificates: boolean;
}

export type { PeerCertificate };
