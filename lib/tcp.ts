/**
 * @module tcp
 * The plain TCP transport: `Bun.listen` with one shared handler object, and
 * `TcpTransport`, the `Transport` over a Bun socket. Each handler forwards to
 * the `Connection` kept in `socket.data`; the connection's entry points end
 * the batch. Nothing MQTT-specific here.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { PeerCertificate } from "node:tls";
import type { Broker } from "./broker.ts";
import { Connection } from "./connection.ts";
import { listenError } from "./listen-error.ts";
import { log } from "./log.ts";
import type { Transport } from "./transport.ts";

export interface TcpListenerOptions {
  host: string;
  port: number;
}

/** A Bun socket seen through the `Transport` interface. */
export class TcpTransport implements Transport {
  constructor(private readonly socket: Socket<Connection>) {}

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

/** Listen on opts.host:opts.port; a failure is a ListenError with a one-line message (port in use, ...). */
export function startTcpListener(opts: TcpListenerOptions, broker: Broker): TCPSocketListener<Connection> {
  try {
    return listen(opts, broker);
  } catch (err) {
    throw listenError(err, opts.host, opts.port);
  }
}

function listen(opts: TcpListenerOptions, broker: Broker): TCPSocketListener<Connection> {
  return Bun.listen<Connection>({
    hostname: opts.host,
    port: opts.port,
    socket: {
      open(socket: Socket<Connection>) {
        // Shed at once when full: accepting and resetting never leaves the
        // listener spinning on a descriptor limit (see fd-limit.ts).
        if (!broker.admit()) {
          socket.terminate();
          return;
        }
        // (Bun sets TCP_NODELAY on accepted sockets itself.)
        socket.data = new Connection(new TcpTransport(socket), broker);
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
        if (log.debugEnabled) log.debug("socket error", { client: socket.data?.clientId, err });
      },
    },
  });
}
