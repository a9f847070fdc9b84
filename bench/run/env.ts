/**
 * @module run/env
 * Where the runner finds things (broker.ts, the two load generators, the
 * Mosquitto binary), how it builds the C load generator from the copy in
 * bench/mqtt-loadgen/, and how it gives up: die() prints and exits, with
 * status 2 by default (usage errors, a C loadgen that cannot be found or
 * built) and 1 when a broker does not start.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const ROOT = resolve(dirname(Bun.fileURLToPath(import.meta.url)), "../..");
export const BROKER_TS = join(ROOT, "broker.ts");
export const BROKER_DENO_TS = join(ROOT, "broker.deno.ts");
/** Deno for --runtime deno: $DENO, else the one on PATH. */
export const DENO = process.env.DENO || Bun.which("deno") || "";
export const LOADGEN_TS = join(ROOT, "bench", "loadgen.ts");
/** The C mqtt-loadgen sources, vendored so that nothing outside the repository is needed. */
export const C_LOADGEN_DIR = join(ROOT, "bench", "mqtt-loadgen");
/** loadgen.c to build from: $LOADGEN_SRC first, then the vendored copy. */
export const C_SRC_CANDIDATES = [process.env.LOADGEN_SRC ?? "", join(C_LOADGEN_DIR, "loadgen.c")].filter(Boolean);
export const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p)) ?? "mosquitto";

export function die(msg: string, code = 2): never {
  console.error(`bench: ${msg}`);
  process.exit(code);
}

/**
 * The gcc command that builds `out` from `src` (a loadgen.c). The loadgen's
 * TLS and WebSocket transports live in transport.c beside it, which needs
 * OpenSSL (libssl-dev); a loadgen.c from before that split has no
 * transport.c and is built alone.
 */
export function cLoadgenBuildCommand(src: string, out: string): string[] {
  const transport = join(dirname(src), "transport.c");
  return existsSync(transport) ? ["gcc", "-O2", "-o", out, src, transport, "-lssl", "-lcrypto"] : ["gcc", "-O2", "-o", out, src];
}

/** The C loadgen to run: $LOADGEN or /tmp/mqtt-loadgen, built from C_SRC_CANDIDATES when missing. */
export function cLoadgen(): string {
  const p = process.env.LOADGEN || "/tmp/mqtt-loadgen";
  if (existsSync(p)) return p;
  const src = C_SRC_CANDIDATES.find((s) => existsSync(s));
  if (!src) die(`C loadgen not found at ${p} and no loadgen.c to build it from (tried ${C_SRC_CANDIDATES.join(", ")})`);
  const cmd = cLoadgenBuildCommand(src, p);
  console.error(`bench: building ${p}: ${cmd.join(" ")}`);
  const r = Bun.spawnSync(cmd, { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0 || !existsSync(p)) die(`could not build ${p} (needs gcc and the OpenSSL headers: apt-get install -y libssl-dev)`);
  return p;
}
