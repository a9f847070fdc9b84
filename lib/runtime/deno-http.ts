/**
 * @module runtime/deno-http
 * HTTP and WebSocket under Deno: `Deno.serve`, with `Deno.upgradeWebSocket`
 * for upgrades, and `DenoServerSocket`, the `ServerSocket` over Deno's (web
 * standard) WebSocket. Only runtime/deno.ts loads this module.
 *
 * Where Deno's WebSocket differs from Bun's, it is emulated; the limits:
 *
 * - Output: Deno writes every message on a later turn of the event loop, so
 *   `bufferedAmount` is above 0 after any `send`: `send` returns -1, and the
 *   transport then takes nothing until `drain` (one message in flight, as in
 *   deno-net.ts). Deno has no drain event: one shared poller watches the
 *   sockets that wait, with `setImmediate` (a send is usually written by the
 *   next turn) and, while nothing drains, at growing intervals up to
 *   DRAIN_POLL_MAX_MS (a peer that does not read costs no CPU).
 * - Input: Deno reads every message as it comes; `pause()` cannot stop it.
 *   While paused, messages are held here and delivered on `resume()`, so a
 *   held-back publisher does not back up in the kernel as under Bun: its
 *   messages pile up in memory, up to HOLD_MIN_BYTES or two
 *   maxPayloadLength, whichever is larger; beyond that the socket is closed
 *   (1008).
 * - maxPayloadLength is checked once Deno has read the whole message (Deno
 *   itself refuses messages over 64 MiB, whatever the setting).
 * - `terminate()` cannot cut the TCP connection (Deno has no abort for a
 *   WebSocket): it sends a close frame, and the handlers are told the
 *   socket is closed at once; a peer that never reads keeps its TCP
 *   connection (and the one message in flight) until the server stops.
 * - `stop(false)` cannot stop accepting and keep the WebSockets (shutting a
 *   Deno server down closes its WebSockets, and drops what is still being
 *   sent): the server answers new requests 503 and shuts down once its last
 *   WebSocket is gone, or at `stop(true)`. `retire()` (a restart with new
 *   certificates) shuts down at once, so open WebSockets are closed (1001)
 *   and their clients reconnect, to the new server.
 * - SO_REUSEPORT (`reusePort`, which http-server.ts asks for with TLS) is
 *   unstable in Deno: without --unstable-net (or "unstable": ["net"] in
 *   deno.json) Deno would end the process, so serveHttp throws instead.
 * - TLS: no client certificates (`requestCert`), no cipher list, no
 *   TLS 1.3-only (`secureOptions`): Deno.serve takes a certificate and a key
 *   only, so a listener asking for more refuses to start. An encrypted key
 *   is decrypted here with its passphrase.
 * - `maxRequestBodySize`: a Content-Length over it gets 413; a chunked body
 *   fails when it reads past it. `noTimeout()` does nothing: Deno.serve has
 *   no idle timeout for responses.
 */
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { Deno, type DenoWebSocket } from "./deno-globals.ts";
import { denoServerTls, requireUnstableNet } from "./deno-tls.ts";
import type { HttpServeOptions, HttpServerHandle, RequestInfo, ServerSocket, WsHandlers } from "./types.ts";

/** WebSocket close codes (RFC 6455 §7.4.1). */
const WS_POLICY_VIOLATION = 1008;
const WS_MESSAGE_TOO_BIG = 1009;

/** Messages held while paused, at least this many bytes, before the socket is closed. */
export const HOLD_MIN_BYTES = 8 * 1024 * 1024;
/** The slowest drain poll, for peers that do not read. */
const DRAIN_POLL_MAX_MS = 16;
/** Polls with setImmediate before backing off to timers. */
const DRAIN_POLL_FAST = 4;

// ---------------------------------------------------------------- the drain poller

const waiting = new Set<DenoServerSocket<unknown>>();
let pollScheduled = false;
let pollTimer: ReturnType<typeof setTimeout> | null = null;
/** Polls in a row that drained nothing. */
let idlePolls = 0;

function watchDrain(s: DenoServerSocket<unknown>): void {
  waiting.add(s);
  if (pollTimer !== null) {
    // Backed off for slow peers: this one may be fast.
    clearTimeout(pollTimer);
    pollTimer = null;
    pollScheduled = false;
  }
  if (!pollScheduled) {
    pollScheduled = true;
    idlePolls = 0;
    setImmediate(pollDrain);
  }
}

function pollDrain(): void {
  pollScheduled = false;
  pollTimer = null;
  let drained: DenoServerSocket<unknown>[] | null = null;
  for (const s of waiting) {
    if (s.drainPending()) continue;
    waiting.delete(s);
    (drained ??= []).push(s);
  }
  // After the scan: a drain handler sends again, and its socket waits anew.
  if (drained !== null) for (const s of drained) s.drained();
  if (waiting.size === 0 || pollScheduled) return;
  idlePolls = drained !== null ? 0 : idlePolls + 1;
  pollScheduled = true;
  if (idlePolls < DRAIN_POLL_FAST) setImmediate(pollDrain);
  else pollTimer = setTimeout(pollDrain, Math.min(2 ** (idlePolls - DRAIN_POLL_FAST), DRAIN_POLL_MAX_MS));
}

// ---------------------------------------------------------------- the socket

/** What a server knows of its WebSockets. */
interface Sockets {
  readonly open: Set<DenoServerSocket<unknown>>;
  /** The last one went (stop(false) waits for it). */
  onEmpty: (() => void) | null;
}

/** A `ServerSocket` over Deno's WebSocket (see the module comment for what is emulated). */
export class DenoServerSocket<T> implements ServerSocket<T> {
  isPaused = false;
  /** Messages read while paused (or not yet delivered after resume), oldest first. */
  private held: (Buffer | string)[] | null = null;
  private heldBytes = 0;
  private flushScheduled = false;
  /** The handlers were told it closed (or terminate() said so): nothing more is delivered. */
  private gone = false;
  /** We closed it for a message over maxPayloadLength: discard what follows. */
  private refused = false;
  /** terminate() was called: closed as far as the handlers know. */
  private terminated = false;

  constructor(
    private readonly ws: DenoWebSocket,
    readonly data: T,
    private readonly handlers: WsHandlers<T>,
    private readonly sockets: Sockets,
    private readonly holdLimit: number,
  ) {
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.call(this.handlers.open);
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = () => this.closed();
    ws.onerror = (ev) => {
      if (this.gone) return;
      const err = ev.error instanceof Error ? ev.error : new Error(ev.message ?? "WebSocket error");
      try {
        this.handlers.error?.(this, err);
      } catch {}
    };
    sockets.open.add(this as DenoServerSocket<unknown>);
  }

  get readyState(): number {
    return this.gone || this.terminated ? 3 : this.ws.readyState;
  }

  send(data: Uint8Array): number {
    if (this.readyState !== 1) return 0;
    this.ws.send(data); // copied by Deno
    if (this.ws.bufferedAmount === 0) return data.length;
    watchDrain(this as DenoServerSocket<unknown>);
    return -1;
  }

  getBufferedAmount(): number {
    return this.gone ? 0 : this.ws.bufferedAmount;
  }

  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    // Later, not from inside the caller: Bun too delivers after resume() returns.
    if (this.held !== null && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flushHeld());
    }
  }

  close(code?: number): void {
    if (this.gone) return;
    try {
      this.ws.close(code);
    } catch {}
  }

  terminate(): void {
    if (this.gone || this.terminated) return;
    this.terminated = true;
    try {
      this.ws.close();
    } catch {}
    // Told at once (asynchronously, as an event), whenever Deno sees the close.
    queueMicrotask(() => this.closed());
  }

  /** The drain poller: still waiting for Deno to write what was sent? */
  drainPending(): boolean {
    return !this.gone && this.ws.readyState === 1 && this.ws.bufferedAmount > 0;
  }

  /** The drain poller: what was sent is written. */
  drained(): void {
    if (this.gone || this.ws.readyState !== 1) return;
    this.call(this.handlers.drain);
  }

  private onMessage(raw: ArrayBuffer | string): void {
    if (this.gone || this.refused) return;
    const message = typeof raw === "string" ? raw : Buffer.from(raw);
    const size = typeof message === "string" ? Buffer.byteLength(message) : message.length;
    if (size > this.handlers.maxPayloadLength) {
      this.refused = true;
      this.held = null;
      this.close(WS_MESSAGE_TOO_BIG);
      return;
    }
    if (this.isPaused || this.held !== null) {
      (this.held ??= []).push(message);
      this.heldBytes += size;
      if (this.heldBytes > this.holdLimit) {
        // Deno cannot stop reading: a peer that goes on sending while held back is cut off.
        this.refused = true;
        this.held = null;
        this.close(WS_POLICY_VIOLATION);
      }
      return;
    }
    this.deliver(message);
  }

  private flushHeld(): void {
    this.flushScheduled = false;
    while (this.held !== null && !this.isPaused && !this.gone) {
      const m = this.held.shift()!;
      this.heldBytes -= typeof m === "string" ? Buffer.byteLength(m) : m.length;
      if (this.held.length === 0) {
        this.held = null;
        this.heldBytes = 0;
      }
      this.deliver(m);
    }
  }

  private deliver(message: Buffer | string): void {
    try {
      this.handlers.message(this, message);
    } catch (err) {
      this.failed(err);
    }
  }

  private closed(): void {
    if (this.gone) return;
    this.gone = true;
    this.held = null;
    waiting.delete(this as DenoServerSocket<unknown>);
    const s = this.sockets;
    s.open.delete(this as DenoServerSocket<unknown>);
    this.call(this.handlers.close);
    if (s.open.size === 0 && s.onEmpty !== null) s.onEmpty();
  }

  /** A handler, its throw reported (an exception out of a Deno event listener would end the process). */
  private call(fn: (ws: ServerSocket<T>) => void): void {
    try {
      fn(this);
    } catch (err) {
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    try {
      this.handlers.error?.(this, err instanceof Error ? err : new Error(String(err)));
    } catch {}
  }
}

// ---------------------------------------------------------------- the server

const plain = { "Content-Type": "text/plain; charset=utf-8" };

/** `req` with its body bounded to `max` bytes, or the 413 to answer. */
function boundedBody(req: Request, max: number): Request | Response {
  const length = req.headers.get("content-length");
  if (length !== null) return Number(length) > max ? new Response("request body too large\n", { status: 413, headers: plain }) : req;
  let seen = 0;
  const body = req.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        seen += chunk.byteLength;
        if (seen > max) out.error(new Error("request body too large"));
        else out.enqueue(chunk);
      },
    }),
  );
  // Not new Request(req, …): copying its signal makes Deno warn about request.signal.
  return new Request(req.url, { method: req.method, headers: req.headers, body, duplex: "half" } as RequestInit);
}

export function denoServeHttp<T>(opts: HttpServeOptions<T>): HttpServerHandle {
  if (opts.reusePort) requireUnstableNet();
  const sockets: Sockets = { open: new Set(), onEmpty: null };
  const handlers = opts.websocket;
  const holdLimit = Math.max(HOLD_MIN_BYTES, 2 * handlers.maxPayloadLength);
  const max = opts.maxRequestBodySize;
  let accepting = true;
  let shutDown = false;

  // Throws synchronously when it cannot bind (EADDRINUSE and the like): the caller maps it (listen-error.ts).
  const server = Deno.serve(
    {
      hostname: opts.host,
      port: opts.port,
      ...(opts.reusePort ? { reusePort: true } : {}),
      ...(opts.tls !== null ? denoServerTls(opts.tls, "WebSocket and HTTP") : {}),
      onListen() {},
      onError: (err) => opts.error(err instanceof Error ? err : new Error(String(err))),
    },
    (request, conn) => {
      if (!accepting) return new Response("server stopping\n", { status: 503, headers: plain });
      let req = request;
      if (req.body !== null) {
        const r = boundedBody(req, max);
        if (r instanceof Response) return r;
        req = r;
      }
      let upgraded: Response | null = null;
      const info: RequestInfo<T> = {
        remoteAddress: conn.remoteAddr.hostname,
        remotePort: conn.remoteAddr.port,
        upgrade(data, protocol) {
          if (upgraded !== null) return false;
          let u;
          try {
            // idleTimeout 0: no pings; MQTT keep alive governs idle connections.
            u = Deno.upgradeWebSocket(req, { protocol, idleTimeout: 0 });
          } catch {
            return false; // not an upgrade request Deno accepts
          }
          new DenoServerSocket(u.socket, data, handlers, sockets, holdLimit);
          upgraded = u.response;
          return true;
        },
        noTimeout() {},
      };
      const r = opts.fetch(req, info);
      if (r instanceof Promise) return r.then((res) => upgraded ?? res ?? noResponse());
      return upgraded ?? r ?? noResponse();
    },
  );

  const shutdown = () => {
    accepting = false;
    sockets.onEmpty = null;
    if (shutDown) return;
    shutDown = true;
    server.shutdown().catch(() => {});
  };
  return {
    port: server.addr.port,
    stop(closeActive) {
      accepting = false;
      if (closeActive) {
        shutdown();
        for (const s of [...sockets.open]) s.terminate();
      } else if (sockets.open.size === 0) {
        shutdown();
      } else {
        // Shutting down now would close the WebSockets: wait for the last one.
        sockets.onEmpty = shutdown;
      }
    },
    retire: shutdown,
  };
}

function noResponse(): Response {
  return new Response("no response\n", { status: 500, headers: plain });
}
