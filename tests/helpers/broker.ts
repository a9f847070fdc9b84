/**
 * Start a real broker in-process on 127.0.0.1, port 0, for one test file or
 * one test. Config overrides are validated by the real schema; `listeners`
 * replaces the single TCP listener (give them port 0).
 */
import { afterAll, beforeAll } from "bun:test";
import { type ConfigInput, parseConfig } from "../../lib/config.ts";
import { setLogLevel } from "../../lib/log.ts";
import { type RunningBroker, startBroker } from "../../lib/server.ts";

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export async function startTestBroker(overrides: DeepPartial<ConfigInput> = {}): Promise<RunningBroker> {
  const config = parseConfig({
    ...overrides,
    persistence: { path: ":memory:", ...(overrides.persistence ?? {}) },
    listeners: overrides.listeners ?? [{ host: "127.0.0.1", port: 0 }],
    logLevel: (overrides.logLevel as string | undefined) ?? (process.env.BUNMQ_TEST_LOG ?? "error"),
  });
  setLogLevel(config.logLevel);
  return startBroker(config);
}

/**
 * A test broker started before the tests of the file (or describe block)
 * that calls this and stopped after them. The handle reads through to the
 * running broker, so tests and hooks use it as the RunningBroker itself.
 */
export function useTestBroker(overrides: DeepPartial<ConfigInput> = {}): RunningBroker {
  let rb: RunningBroker | undefined;
  beforeAll(async () => {
    rb = await startTestBroker(overrides);
  });
  afterAll(() => rb?.stop());
  const live = (): RunningBroker => {
    if (!rb) throw new Error("the test broker is not running (use it inside a test or hook)");
    return rb;
  };
  return {
    get broker() {
      return live().broker;
    },
    get addresses() {
      return live().addresses;
    },
    get port() {
      return live().port;
    },
    get listeners() {
      return live().listeners;
    },
    get bridges() {
      return live().bridges;
    },
    reloadTls: () => live().reloadTls(),
    reload: (next) => live().reload(next),
    stop: () => live().stop(),
  };
}

/** The URL (mqtt://, mqtts://, ws://…/mqtt, wss://…/mqtt) of the first listener with `protocol`. */
export function urlOf(rb: RunningBroker, protocol: string): string {
  const a = rb.addresses.find((x) => x.protocol === protocol);
  if (!a) throw new Error(`no ${protocol} listener`);
  return a.url;
}

/** The port of the first listener with `protocol`. */
export function portOf(rb: RunningBroker, protocol: string): number {
  const a = rb.addresses.find((x) => x.protocol === protocol);
  if (!a) throw new Error(`no ${protocol} listener`);
  return a.port;
}

/** Wait until `cond()` holds, polling; throws after `ms`. */
export async function waitFor(cond: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}
