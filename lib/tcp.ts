/**
 * @module tcp
 * MQTT over TCP and over TLS (`mqtt`, `mqtts`): a listener of the runtime
 * (runtime/bun-net.ts, runtime/deno-net.ts) whose every accepted socket,
 * once admitted, becomes a `Connection` over the socket's `Transport`.
 * Nothing MQTT-specific here, and nothing runtime-specific.
 */
import type { Broker } from "./broker.ts";
import { Connection } from "./connection.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { listenError } from "./listen-error.ts";
import { log } from "./log.ts";
import { runtime, type TcpServer, type TlsOptions } from "./runtime/index.ts";

export interface TcpListenOptions {
  /** TLS options (mqtts), or null for plain TCP. */
  tls: TlsOptions | null;
  /** Bind with SO_REUSEPORT, so that a second listener can take over the port (certificate reload, listeners.ts). */
  reusePort?: boolean;
}

/** Listen for `info` (host, port); a failure is a ListenError with a one-line message (port in use, ...). */
export function startTcpListener(info: ListenerInfo, broker: Broker, opts: TcpListenOptions): TcpServer {
  try {
    return runtime().listenTcp({
      host: info.host,
      port: info.port,
      tls: opts.tls,
      reusePort: opts.reusePort === true,
      // Shed at once when full: accepting and resetting never leaves the
      // listener spinning on a descriptor limit (see fd-limit.ts).
      accept: (transport) => (broker.admit(info, transport.remoteAddress) ? new Connection(transport, broker, info) : null),
      onError(sink, err) {
        // Connection entry points catch their own failures; what reaches here is a socket error.
        if (log.debugEnabled) log.debug("socket error", { client: (sink as Connection | null)?.clientId, listener: info.url, err: err.message });
      },
    });
  } catch (err) {
    throw listenError(err, info.host, info.port);
  }
}
