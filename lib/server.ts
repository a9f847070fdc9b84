/**
 * @module server
 * Assembles a running broker from a config: the `Broker`, its listeners on
 * every transport (listeners.ts), the info log of client lifecycles
 * (event-log.ts) and the housekeeping timer. `stop()` publishes the wills of
 * connected clients (unless shutdown.publishWills is false), then closes
 * listeners and clients (v5: DISCONNECT 0x8B); `reload()` applies a new
 * config (users, ACLs, certificates) to the running broker. Used by broker.ts and by the tests, which
 * start brokers in-process on port 0.
 */
import { Broker } from "./broker.ts";
import type { Config, Protocol } from "./config.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { attachEventLog } from "./event-log.ts";
import { Listeners, type TlsReload } from "./listeners.ts";
import { connectionLimit, raiseFdLimit } from "./fd-limit.ts";
import { guarded, log, setLogLevel } from "./log.ts";
import { applyConfig, type ReloadResult } from "./reload.ts";
import { MemoryStore, type Store } from "./store.ts";
import { SqliteStore } from "./store-sqlite.ts";
import { SysPublisher } from "./sys.ts";
import { Bridges } from "./bridge/manager.ts";

/** Housekeeping period: timeouts resolve to within this much. */
const TICK_MS = 250;

export interface RunningBroker {
  broker: Broker;
  /** Where each listener is bound, in config order (port 0 resolved). */
  addresses: { host: string; port: number; protocol: Protocol; url: string }[];
  /** The listeners, with their policy and counters, in config order. */
  listeners: readonly ListenerInfo[];
  /** The first listener's port. */
  port: number;
  /** Re-read the TLS files; changed certificates apply to new connections, live ones stay. */
  reloadTls(): TlsReload[];
  /**
   * Apply a new config without dropping connections: users, ACLs, Client ID
   * rules, log level, TLS certificates (reload.ts). Refused as a whole, the
   * old config staying, when a part of it fails (`applied: false`).
   */
  reload(next: Config): ReloadResult;
  /** The configured bridges (bridge/manager.ts). */
  bridges: Bridges;
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
  attachEventLog(broker.events); // client lifecycles at info (connect, disconnect, refusal, limits)
  let listeners: Listeners;
  try {
    listeners = new Listeners(config, broker);
  } catch (err) {
    store.close();
    throw err;
  }
  broker.listenerInfos = listeners.infos;
  const sys = new SysPublisher(broker, config.sys.interval);
  broker.sys = sys;
  // Bridges after the listeners and $SYS (they add their topics to it), before clients arrive.
  const bridges = new Bridges(broker);
  bridges.start(config.bridges);
  guarded("$SYS update", () => sys.start());
  broker.metrics.startLagProbe();
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
    addresses: listeners.infos.map((l) => ({ host: l.host, port: l.port, protocol: l.protocol, url: l.url })),
    listeners: listeners.infos,
    port: listeners.infos[0]!.port,
    reloadTls: () => listeners.reloadTls(),
    bridges,
    reload: (next: Config) => applyConfig({ broker, reloadTls: () => listeners.reloadTls(), bridges }, next),
    async stop() {
      if (stopped) return;
      stopped = true;
      broker.shuttingDown = true;
      sys.stop();
      broker.metrics.stopLagProbe();
      clearInterval(timer);
      if (flusher) clearInterval(flusher);
      listeners.stop(false, true);
      bridges.stop(); // normal DISCONNECT upstream, before the clients' wills and closes
      broker.closeAll(config.shutdown.publishWills);
      // Let the final DISCONNECTs leave before the sockets are torn down.
      await new Promise((r) => setTimeout(r, 20));
      listeners.stop(true);
      try {
        broker.journal.close(); // apply what is recorded, commit, WAL checkpoint
        log.debug("journal", { written: broker.journal.written, cancelled: broker.journal.cancelled });
      } catch (err) {
        log.error("closing the store failed", { err });
      }
    },
  };
}
