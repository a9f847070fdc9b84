/**
 * @module runtime/deno-net
 * TCP and TLS under Deno: `Deno.listen` / `Deno.listenTls` with an accept
 * loop, `Deno.connect` / `Deno.connectTls` for a bridge's dial, and
 * `DenoConnTransport`, the `Transport` over a `Deno.Conn`.
 *
 * Deno's socket I/O is async where the Transport seam is synchronous (Bun's
 * `write` returns the bytes taken). The count is emulated with one write in
 * flight: a write while none is in flight is copied and taken whole; a write
 * while one is in flight is copied behind it, up to SEND_BUDGET bytes held,
 * and takes only what fits (the budget stands for the part of the kernel's
 * send buffer that Bun's synchronous write fills and Deno's async one
 * cannot). What does not fit stays in the connection's own bounded output,
 * where the pending-output bound and the drain timeout see it as on Bun, and
 * the connection is told `onDrain` once the held bytes are written. The
 * in-flight write waits on the kernel, so a peer that does not read backs up
 * here exactly as on Bun: the held bytes are bounded, the rest is the
 * connection's.
 *
 * Reading: one read in flight, into an arena whose bytes are never reused
 * (see readLoop). `pauseReading` stops
 * issuing reads, so a held-back publisher backs up in the kernel.
 *
 * TLS: the accept loop hands the socket over before the handshake (Deno runs
 * it on the first read), so the connect timeout covers a handshake that
 * never ends. Deno's TLS listener cannot request client certificates: a
 * listener with `requireClientCert` refuses to start under Deno.
 */
import type { PeerCertificate } from "node:tls";
import type { Transport } from "../transport.ts";
import { Deno, type DenoConn, type DenoListener } from "./deno-globals.ts";
import { denoServerTls, plainKey, requireUnstableNet } from "./deno-tls.ts";
import type { DialOptions, Link, StreamSink, TcpServer, TcpServerOptions } from "./types.ts";

/**
 * Read arenas: the first of a socket (small: V8 zero-fills an ArrayBuffer, so
 * every idle socket's arena is resident) and the largest. An arena with less
 * than a quarter of it left is replaced.
 */
const ARENA_MIN = 2 * 1024;
const ARENA_MAX = 256 * 1024;
/**
 * Bytes held behind the write in flight. Without it, every message written
 * while one is in flight would count as not draining, and a busy but healthy
 * subscriber would lose QoS 0 messages that Bun's kernel buffer absorbs.
 */
const SEND_BUDGET = 256 * 1024;

/** Where the write side goes once the write in flight is done. */
const enum End {
  None,
  Shutdown,
  Close,
}

export class DenoConnTransport implements Transport {
  private sink: StreamSink | null = null;
  private writing = false;
  /** Copies of what was taken while a write was in flight, written next as one. */
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  /** A write was refused while one was in flight: say `onDrain` when it completes. */
  private wantDrain = false;
  private end = End.None;
  /** Gone for the connection: closed by us, or EOF / reset from the peer. */
  private closed = false;
  /** The Deno socket itself was closed (once). */
  private connClosed = false;
  private paused = false;
  private resumeReader: (() => void) | null = null;
  readonly remoteAddress: string;
  readonly remotePort: number;

  constructor(
    private readonly conn: DenoConn,
    private readonly onGone: (() => void) | null = null,
  ) {
    const a = conn.remoteAddr as { hostname?: string; port?: number };
    this.remoteAddress = a.hostname ?? "";
    this.remotePort = a.port ?? 0;
    try {
      conn.setNoDelay?.(true);
    } catch {}
  }

  /** Start reading into `sink` (once). */
  start(sink: StreamSink): void {
    this.sink = sink;
    void this.readLoop();
  }

  write(buf: Buffer, offset: number, length: number): number {
    if (this.closed || this.end !== End.None) return -1;
    if (this.writing) {
      const take = Math.min(length, SEND_BUDGET - this.heldBytes);
      if (take < length) this.wantDrain = true;
      if (take <= 0) return 0;
      // Copies: the caller reuses its buffer once the bytes are taken.
      this.held.push(Buffer.from(buf.subarray(offset, offset + take)));
      this.heldBytes += take;
      return take;
    }
    this.writing = true;
    void this.flush(Buffer.from(buf.subarray(offset, offset + length)));
    return length;
  }

  private async flush(first: Uint8Array): Promise<void> {
    try {
      for (let data: Uint8Array | null = first; data !== null; data = this.takeHeld()) {
        let off = 0;
        while (off < data.length) off += await this.conn.write(off === 0 ? data : data.subarray(off));
      }
    } catch {
      this.writing = false;
      this.held = [];
      this.heldBytes = 0;
      this.abort();
      return;
    }
    this.writing = false;
    if (this.end !== End.None) {
      this.finish();
      return;
    }
    if (this.wantDrain) {
      this.wantDrain = false;
      this.sink?.onDrain();
    }
  }

  /**
   * Reads go into an arena, each into the part after the last, and each chunk
   * is a view of its bytes: no copy, and no chunk is ever overwritten (the
   * connection may keep one across calls). A full arena is replaced, not
   * reused; one that a read filled to the end is replaced by one twice its
   * size (up to ARENA_MAX), so a busy socket reads in large chunks while an
   * idle one holds ARENA_MIN.
   */
  private async readLoop(): Promise<void> {
    let size = ARENA_MIN;
    let arena = new Uint8Array(size);
    let off = 0;
    for (;;) {
      if (this.paused) await new Promise<void>((r) => (this.resumeReader = r));
      if (this.closed) break;
      if (arena.length - off < arena.length >> 2) {
        arena = new Uint8Array(size);
        off = 0;
      }
      const room = arena.length - off;
      let n: number | null;
      try {
        n = await this.conn.read(arena.subarray(off));
      } catch {
        n = null; // reset, or closed by us
      }
      if (n === null) break;
      const chunk = Buffer.from(arena.buffer, off, n);
      off += n;
      if (n === room && size < ARENA_MAX) size *= 2;
      this.sink!.onData(chunk);
    }
    // EOF or reset: close our side too (as Bun does; a half-open socket would linger).
    this.abort();
    this.sink!.onClose();
  }

  /** What was held behind the write that just completed, as one buffer; null when nothing was. */
  private takeHeld(): Uint8Array | null {
    if (this.heldBytes === 0) return null;
    const data = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held, this.heldBytes);
    this.held = [];
    this.heldBytes = 0;
    return data;
  }

  pauseReading(): void {
    this.paused = true;
  }
  resumeReading(): void {
    this.paused = false;
    const r = this.resumeReader;
    this.resumeReader = null;
    r?.();
  }
  shutdownWrite(): void {
    if (this.end !== End.None || this.closed) return;
    this.end = End.Shutdown;
    if (!this.writing) this.finish();
  }
  close(): void {
    if (this.closed) return;
    if (this.end === End.Shutdown && !this.writing) {
      this.abort();
      return;
    }
    this.end = End.Close;
    if (!this.writing) this.finish();
  }
  abort(): void {
    this.gone();
    // Not guarded by `closed`: the peer's EOF marks the transport gone before a deferred
    // close() runs, and the socket must still be closed then (else it sits in CLOSE-WAIT).
    if (!this.connClosed) {
      this.connClosed = true;
      try {
        this.conn.close();
      } catch {}
    }
    // A paused reader would never see the close.
    this.resumeReading();
  }
  peerCertificate(): PeerCertificate | null {
    return null; // Deno's TLS listener does not request client certificates
  }

  private finish(): void {
    if (this.end === End.Close) {
      this.abort();
      return;
    }
    // Lingering close: FIN now, reading goes on until the peer closes (or close()).
    this.conn.closeWrite().catch(() => this.abort());
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.onGone?.();
  }
}

export function denoListenTcp(opts: TcpServerOptions): TcpServer {
  const tls = opts.tls;
  if (opts.reusePort) requireUnstableNet();
  const base = { hostname: opts.host, port: opts.port, ...(opts.reusePort ? { reusePort: true } : {}) };
  const listener: DenoListener = tls === null ? Deno.listen(base) : Deno.listenTls({ ...base, ...denoServerTls(tls, "MQTT") });
  const open = new Set<DenoConnTransport>();
  let stopped = false;
  // The loop starts on a later microtask: a listener stopped in the same turn (a port probe)
  // never has an accept pending, which would keep Deno's socket, and so the port, bound past close().
  queueMicrotask(async () => {
    for (;;) {
      if (stopped) return;
      let conn: DenoConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (stopped) return;
        // EMFILE and the like: the connection was not accepted; keep accepting after a breath.
        opts.onError?.(null, err as Error);
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      const t: DenoConnTransport = new DenoConnTransport(conn, () => open.delete(t));
      const sink = opts.accept(t);
      if (sink === null) {
        t.abort();
        continue;
      }
      open.add(t);
      t.start(sink);
    }
  });
  return {
    port: (listener.addr as { port: number }).port,
    stop(closeActive) {
      if (!stopped) {
        stopped = true;
        try {
          listener.close();
        } catch {}
      }
      if (closeActive) for (const t of [...open]) t.close();
    },
  };
}

export async function denoDialTcp(opts: DialOptions): Promise<Link> {
  const tls = opts.tls;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection within ${opts.timeoutMs} ms`)), opts.timeoutMs);
  });
  const connecting = (async () => {
    if (tls === null) return Deno.connect({ hostname: opts.host, port: opts.port });
    const conn = await Deno.connectTls({
      hostname: opts.host,
      port: opts.port,
      ...(tls.servername !== undefined ? { serverName: tls.servername } : {}),
      ...(tls.ca !== undefined ? { caCerts: [tls.ca] } : {}),
      ...(tls.cert !== undefined && tls.key !== undefined ? { cert: tls.cert, key: plainKey(tls) } : {}),
    });
    try {
      await conn.handshake();
    } catch (err) {
      try {
        conn.close();
      } catch {}
      throw new Error(`TLS handshake failed: ${(err as Error).message}`);
    }
    return conn;
  })();
  let conn: DenoConn;
  try {
    conn = await Promise.race([connecting, timeout]);
  } catch (err) {
    // A connection that completes after the timeout is closed, not leaked.
    connecting.then((c) => c.close()).catch(() => {});
    throw err instanceof Error ? err : new Error(String(err));
  } finally {
    clearTimeout(timer);
  }
  const t = new DenoConnTransport(conn);
  return { transport: t, bind: (sink) => t.start(sink) };
}
