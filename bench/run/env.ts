/**
 * @module run/env
 * Where the runner finds things (broker.ts, the two load generators, the
 * Mosquitto binary) and how it gives up: die() prints and exits, with
 * status 2 by default (usage errors, a C loadgen that cannot be found or
 * built) and 1 when a broker does not start.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const ROOT = resolve(dirname(Bun.fileURLToPath(import.meta.url)), "../..");
export const BROKER_TS = join(ROOT, "broker.ts");
export const LOADGEN_TS = join(ROOT, "bench", "loadgen.ts");
export const C_SRC_CANDIDATES = [process.env.LOADGEN_SRC ?? "", "/work/shared/bench/loadgen.c"].filter(Boolean);
export const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p)) ?? "mosquitto";

export function die(msg: string, code = 2): never {
  console.error(`bench: ${msg}`);
  process.exit(code);
}
