/**
 * @module listener
 * Wraps `Bun.listen` with one shared handler object. Each handler only
 * forwards to the `Connection` kept in `socket.data` and then ends the batch
 * (one flush of every connection with output). Nothing MQTT-specific here.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { Broker } from "./broker.ts";
import { Connection } from "./connection.ts";
import { log } from "./log.ts";

export interface ListenerOptions {
  host: string;
  port: number;
}

export function startListener(opts: ListenerOptions, broker: Broker): TCPSocketListener<Connection> {
  return Bun.listen<Connection>({
    hostname: opts.host,
    port: opts.port,
    socket: {
      open(socket: Socket<Connection>) {
        const conn = new Connection(socket, broker, broker.now());
        socket.data = conn;
        // (Bun sets TCP_NODELAY on accepted sockets itself.)
        if (!broker.adopt(conn)) socket.terminate();
      },
      data(socket: Socket<Connection>, chunk: Buffer) {
        const conn = socket.data;
        conn.onData(chunk, broker.now());
        broker.endBatch();
      },
      drain(socket: Socket<Connection>) {
        socket.data.onDrain(broker.now());
      },
      close(socket: Socket<Connection>) {
        const conn = socket.data;
        if (!conn) return;
        conn.onSocketClose();
        broker.endBatch();
      },
      error(socket: Socket<Connection>, err: Error) {
        log.debug("socket error", { client: socket.data?.clientId, err });
      },
    },
  });
}
