/**
 * @module embed
 * The broker as a library: `startBroker(options)` for test suites and
 * programs that want a broker of their own. Options are the config file's
 * keys, every one optional and validated the same way (lib/config.ts), plus
 * `port` / `host` for the first listener; state is in memory unless
 * `persistence.path` names a file, so nothing is written to ./data.
 */
import type { Broker, BrokerStats } from "./broker.ts";
import { type ConfigInput, parseConfig } from "./config.ts";
import { configureLog } from "./log.ts";
import { startBroker as startRunning } from "./server.ts";

export type { BrokerStats } from "./broker.ts";
export { ConfigError } from "./config.ts";

/**
 * What the config file takes, typed as zod's input side: every key with a
 * default is optional at every depth, and what the file requires (a user's
 * password, a TLS cert) is required here too. Plus the first listener's port
 * and host.
 */
export type EmbedOptions = ConfigInput & {
  /** Port of the first listener (default 1883; 0 picks a free one, read it back from `port`). */
  port?: number;
  /** Address of the first listener (default 127.0.0.1). */
  host?: string;
};

export interface EmbeddedBroker {
  /** The first listener's bound port (port 0 resolved). */
  readonly port: number;
  /** The first MQTT listener's URL, e.g. `mqtt://127.0.0.1:40123` (for `mqtt.connect(url)`). */
  readonly url: string;
  /** Every listener, in config order. */
  readonly addresses: readonly { host: string; port: number; protocol: string; url: string }[];
  /** The broker itself, for what the options do not cover (its API may change between versions). */
  readonly broker: Broker;
  /** Counters: connections, clients, sessions, subscriptions, retained, messages in and out, drops. */
  stats(): BrokerStats;
  /** Close every client (v5: DISCONNECT 0x8B; wills per shutdown.publishWills), commit, release the ports. */
  stop(): Promise<void>;
}

/**
 * Start a broker. Throws ConfigError naming the field for an invalid
 * option, and the listen error (port in use...) when a listener cannot bind.
 */
export async function startBroker(options: EmbedOptions = {}): Promise<EmbeddedBroker> {
  const { port, host, ...rest } = options;
  const input: Record<string, unknown> = { ...rest, persistence: { path: ":memory:", ...(rest.persistence ?? {}) } };
  // Copies: the caller's objects are not modified. An empty list stays empty
  // unless port/host ask for a listener, so that parseConfig reports it.
  const listeners: Record<string, unknown>[] = rest.listeners?.map((l) => ({ ...l })) ?? [{}];
  if (listeners.length === 0 && (port !== undefined || host !== undefined)) listeners.push({});
  if (port !== undefined) listeners[0]!.port = port;
  if (host !== undefined) listeners[0]!.host = host;
  input.listeners = listeners;
  const config = parseConfig(input, "startBroker options");
  configureLog({ level: config.logLevel, format: config.logFormat, file: config.logFile ?? null });
  const rb = await startRunning(config);
  // mqtt:// first (what a test suite's client connects to), then any other MQTT transport, then whatever listener there is.
  const a = rb.addresses;
  const mqtt = a.find((x) => x.protocol === "mqtt") ?? a.find((x) => x.protocol !== "http") ?? a[0]!;
  let stopped: Promise<void> | null = null;
  return {
    port: rb.port,
    url: mqtt.url,
    addresses: rb.addresses,
    broker: rb.broker,
    stats: () => rb.broker.stats(),
    stop: () => (stopped ??= rb.stop()),
  };
}
