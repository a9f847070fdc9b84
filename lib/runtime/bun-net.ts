/**
 * @module runtime/bun-net
 * TCP and TLS under Bun: `Bun.listen` with one shared handler object,
 * `Bun.connect` for a bridge's dial, and `BunSocketTransport`, the
 * `Transport` over a Bun socket. Each handler forwards to the sink kept in
 * `socket.data`; the sink's entry points end the broker's batch.
 *
 * TLS: with a `handshake` handler, Bun calls `open` when the TCP connection
 * is accepted, before the handshake; so the connection exists from the first
 * byte, counts toward the limits, and a handshake that does not finish is
 * closed by the connect timeout like a CONNECT that does not come. A failed
 * handshake (no or untrusted client certificate, plain MQTT bytes, an old
 * TLS version) is closed by Bun and ends that socket only.
 */
import type { Socket, TCPSocketListenOptions } from "bun";
import type { PeerCertificate } from "node:tls";
import type { Transport } from "../transport.ts";
import type { DialOptions, Link, StreamSink, TcpServer, TcpServerOptions } from "./types.ts";

/** A Bun socket seen through the `Transport` interface (accepted, or dialed by a bridge). */
class BunSocketTransport implements Transport {
  constructor(
    protected readonly socket: Socket<unknown>,
    private readonly tls: boolean,
  ) {}

  write(buf: Buffer, offset: number, length: number): number {
    return this.socket.write(buf, offset, length);
  }
  pauseReading(): void {
    this.socket.pause();
  }
  resumeReading(): void {
    this.socket.resume();
  }
  shutdownWrite(): void {
    // shutdown(2) of the write side only; end() would close both and a peer
    // still sending would get a reset instead of our last packet.
    this.socket.shutdown();
  }
  close(): void {
    this.socket.end();
  }
  abort(): void {
    this.socket.terminate();
  }
  get remoteAddress(): string {
    return this.socket.remoteAddress;
  }
  get remotePort(): number {
    return this.socket.remotePort;
  }
  peerCertificate(): PeerCertificate | null {
    if (!this.tls) return null;
    const c = this.socket.getPeerCertificate();
    // Bun gives {} when the client sent none.
    return c !== null && c !== undefined && c.subject !== undefined ? c : null;
  }
}

type Slot = StreamSink | null;

export function bunListenTcp(opts: TcpServerOptions): TcpServer {
  const tls = opts.tls;
  const requireClientCert = tls?.requestCert === true;
  const handlers = {
    open(socket: Socket<Slot>) {
      const sink = opts.accept(new BunSocketTransport(socket as Socket<unknown>, tls !== null));
      // Refused (full): reset at once, so the listener never spins on a descriptor limit.
      if (sink === null) socket.terminate();
      // (Bun sets TCP_NODELAY on accepted sockets itself.)
      else socket.data = sink;
    },
    data(socket: Socket<Slot>, chunk: Buffer) {
      socket.data!.onData(chunk);
    },
    drain(socket: Socket<Slot>) {
      socket.data?.onDrain();
    },
    close(socket: Socket<Slot>) {
      socket.data?.onClose();
    },
    error(socket: Socket<Slot>, err: Error) {
      opts.onError?.(socket.data ?? null, err);
    },
    ...(tls === null
      ? {}
      : {
          handshake(socket: Socket<Slot>, ok: boolean, err: Error | null) {
            // Bun reports an untrusted client certificate as ok with an authorization
            // error (and then closes); a missing one as not ok. Either way this socket
            // ends here, before any MQTT byte is read.
            if (ok && !(requireClientCert && err !== null)) return;
            opts.onError?.(socket.data ?? null, new Error(`TLS handshake refused: ${err?.message ?? "failed"}`));
            socket.terminate();
          },
        }),
  };
  const options: TCPSocketListenOptions<Slot> & { reusePort?: boolean } = { hostname: opts.host, port: opts.port, socket: handlers };
  if (tls !== null) options.tls = tls;
  // Supported by Bun.listen (Linux SO_REUSEPORT), though missing from its listen types.
  if (opts.reusePort) options.reusePort = true;
  const l = Bun.listen<Slot>(options);
  return { port: l.port, stop: (closeActive) => l.stop(closeActive) };
}

interface DialSlot {
  sink: StreamSink | null;
  closed: boolean;
  /** Why the TLS handshake failed, if it did. */
  tlsError: string | null;
}

export function bunDialTcp(opts: DialOptions): Promise<Link> {
  const tls = opts.tls;
  return new Promise<Link>((resolve, reject) => {
    const slot: DialSlot = { sink: null, closed: false, tlsError: null };
    let settled = false;
    let sock: Socket<DialSlot> | null = null;
    const done = (err: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err !== null) {
        sock?.terminate();
        reject(new Error(err));
        return;
      }
      const s = sock!;
      resolve({
        transport: new BunSocketTransport(s as Socket<unknown>, tls !== null),
        bind(sink) {
          slot.sink = sink;
          if (slot.closed) sink.onClose();
        },
      });
    };
    const timer = setTimeout(() => done(`no connection within ${opts.timeoutMs} ms`), opts.timeoutMs);
    Bun.connect<DialSlot>({
      hostname: opts.host,
      port: opts.port,
      data: slot,
      ...(tls !== null ? { tls } : {}),
      socket: {
        open(s) {
          sock = s;
          if (tls === null) done(null);
        },
        handshake(s, ok, err) {
          sock = s;
          // Bun reports an unverified certificate as ok with an authorization error.
          if (ok && (err === null || tls!.rejectUnauthorized === false)) {
            done(null);
            return;
          }
          slot.tlsError = `TLS handshake failed: ${err?.message ?? "refused"}`;
          done(slot.tlsError);
        },
        data(s, chunk) {
          s.data.sink?.onData(chunk);
        },
        drain(s) {
          s.data.sink?.onDrain();
        },
        close(s) {
          s.data.closed = true;
          if (!settled) done(s.data.tlsError ?? "connection closed during set-up");
          else s.data.sink?.onClose();
        },
        error(s, err) {
          if (!settled) done(err.message);
        },
        connectError(_s, err) {
          done(err.message);
        },
      },
    }).catch((err: Error) => done(err.message));
  });
}
