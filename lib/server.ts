/**
 * @module server
 * Assembles a running broker from a config: the `Broker`, one TCP listener
 * per configured address and the housekeeping timer. `stop()` closes
 * listeners and clients (v5: DISCONNECT 0x8B). Used by broker.ts and by the
 * tests, which start brokers in-process on port 0.
 */
import type { TCPSocketListener } from "bun";
import { Broker } from "./broker.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";
import { startTcpListener } from "./tcp.ts";
import { connectionLimit, raiseFdLimit } from "./fd-limit.ts";
import { guarded, log, setLogLevel } from "./log.ts";
import { MemoryStore, type Store } from "./store.ts";
import { SqliteStore } from "./store-sqlite.ts";

/** Housekeeping period: timeouts resolve to within this much. */
const TICK_MS = 250;

export interface RunningBroker {
  broker: Broker;
  /** host:port actually bound, one per listener (port 0 resolved). */
  addresses: { host: string; port: number }[];
  /** The first listener's port. */
  port: number;
  stop(): Promise<void>;
}

/** The store for a config: SQLite on a file, or memory for ":memory:". Throws StoreError. */
export function openStore(p: Config["persistence"]): Store {
  return p.path === ":memory:" ? new MemoryStore() : new SqliteStore(p.path, { synchronous: p.synchronous });
}

/** Start a broker. `store` defaults to the one the config names. */
export async function startBroker(config: Config, store: Store = openStore(config.persistence)): Promise<RunningBroker> {
  setLogLevel(config.logLevel); // embedded use too, not only broker.ts
  const broker = new Broker(config, store, Date.now, connectionLimit(config.limits.maxConnections, raiseFdLimit()));
  try {
    broker.restore();
  } catch (err) {
    store.close();
    throw err;
  }
  const listeners: TCPSocketListener<Connection>[] = [];
  try {
    for (const l of config.listeners) listeners.push(startTcpListener(l, broker));
  } catch (err) {
    for (const l of listeners) l.stop(true);
    store.close();
    throw err;
  }
  // Timer callbacks are guarded: a throw is logged and the timer keeps running.
  const timer = setInterval(() => guarded("housekeeping", () => broker.tick()), TICK_MS);
  // "interval" durability: commit on a timer, mosquitto-like; a crash loses at most this window.
  const flusher =
    config.persistence.durability === "interval"
      ? setInterval(() => guarded("periodic commit", () => broker.journal.commit()), config.persistence.flushIntervalMs)
      : null;
  let stopped = false;
  return {
    broker,
    addresses: listeners.map((l, i) => ({ host: config.listeners[i]!.host, port: l.port })),
    port: listeners[0]!.port,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (flusher) clearInterval(flusher);
      for (const l of listeners) l.stop(false);
      broker.closeAll();
      // Let the final DISCONNECTs leave before the sockets are torn down.
      await Bun.sleep(20);
      for (const l of listeners) l.stop(true);
      try {
        broker.journal.close(); // apply what is recorded, commit, WAL checkpoint
        log.debug("journal", { written: broker.journal.written, cancelled: broker.journal.cancelled });
      } catch (err) {
        log.error("closing the store failed", { err });
      }
    },
  };
}
