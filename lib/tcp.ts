/**
 * @module tcp
 * MQTT over TCP and over TLS (`mqtt`, `mqtts`): `Bun.listen` with one shared
 * handler object, and `TcpTransport` / `TlsTransport`, the `Transport` over a
 * Bun socket. Each handler forwards to the `Connection` kept in
 * `socket.data`; the connection's entry points end the batch. Nothing
 * MQTT-specific here.
 *
 * TLS: with a `handshake` handler, Bun calls `open` when the TCP connection
 * is accepted, before the handshake; so the connection exists from the first
 * byte, counts toward the limits, and a handshake that does not finish is
 * closed by the connect timeout like a CONNECT that does not come. A failed
 * handshake (no or untrusted client certificate, plain MQTT bytes, an old
 * TLS version) is closed by Bun and ends that socket only.
 */
import type { Socket, TCPSocketListener, TCPSocketListenOptions, TLSOptions } from "bun";
import type { PeerCertificate } from "node:tls";
import type { Broker } from "./broker.ts";
import { Connection } from "./connection.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { listenError } from "./listen-error.ts";
import { log } from "./log.ts";
import type { Transport } from "./transport.ts";

/** A Bun socket seen through the `Transport` interface (accepted here, or dialed by a bridge). */
export class TcpTransport implements Transport {
  constructor(protected readonly socket: Socket<unknown>) {}

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
    return null;
  }
}

/** The same over TLS: the client's certificate is there to read. */
export class TlsTransport extends TcpTransport {
  override peerCertificate(): PeerCertificate | null {
    const c = this.socket.getPeerCertificate();
    // Bun gives {} when the client sent none.
    return c !== null && c !== undefined && c.subject !== undefined ? c : null;
  }
}

export interface TcpListenOptions {
  /** TLS options (mqtts), or null for plain TCP. */
  tls: TLSOptions | null;
  /** Bind with SO_REUSEPORT, so that a second listener can take over the port (certificate reload, listeners.ts). */
  reusePort?: boolean;
}

/** Listen for `info` (host, port); a failure is a ListenError with a one-line message (port in use, ...). */
export function startTcpListener(info: ListenerInfo, broker: Broker, opts: TcpListenOptions): TCPSocketListener<Connection> {
  try {
    const options: TCPSocketListenOptions<Connection> & { reusePort?: boolean } = {
      hostname: info.host,
      port: info.port,
      socket: opts.tls !== null ? tlsHandlers(info, broker, opts.tls.requestCert === true) : tcpHandlers(info, broker),
    };
    if (opts.tls !== null) options.tls = opts.tls;
    // Supported by Bun.listen (Linux SO_REUSEPORT), though missing from its listen types.
    if (opts.reusePort) options.reusePort = true;
    return Bun.listen<Connection>(options);
  } catch (err) {
    throw listenError(err, info.host, info.port);
  }
}

function tcpHandlers(info: ListenerInfo, broker: Broker) {
  return {
    open(socket: Socket<Connection>) {
      // Shed at once when full: accepting and resetting never leaves the
      // listener spinning on a descriptor limit (see fd-limit.ts).
      if (!broker.admit(info, socket.remoteAddress)) {
        socket.terminate();
        return;
      }
      // (Bun sets TCP_NODELAY on accepted sockets itself.)
      socket.data = new Connection(new TcpTransport(socket), broker, info);
    },
    data(socket: Socket<Connection>, chunk: Buffer) {
      socket.data.onData(chunk);
    },
    drain(socket: Socket<Connection>) {
      socket.data?.onDrain();
    },
    close(socket: Socket<Connection>) {
      socket.data?.onClose();
    },
    error(socket: Socket<Connection>, err: Error) {
      // Connection entry points catch their own failures; what reaches here is a socket error.
      if (log.debugEnabled) log.debug("socket error", { client: socket.data?.clientId, listener: info.url, err });
    },
  };
}

function tlsHandlers(info: ListenerInfo, broker: Broker, requireClientCert: boolean) {
  const h = tcpHandlers(info, broker);
  return {
    ...h,
    open(socket: Socket<Connection>) {
      if (!broker.admit(info, socket.remoteAddress)) {
        socket.terminate();
        return;
      }
      socket.data = new Connection(new TlsTransport(socket), broker, info);
    },
    handshake(socket: Socket<Connection>, ok: boolean, err: Error | null) {
      // Bun reports an untrusted client certificate as ok with an authorization
      // error (and then closes); a missing one as not ok. Either way this socket
      // ends here, before any MQTT byte is read.
      if (ok && !(requireClientCert && err !== null)) return;
      if (log.debugEnabled) log.debug("TLS handshake refused", { listener: info.url, remote: socket.data?.remote, err: err?.message });
      socket.terminate();
    },
  };
}
