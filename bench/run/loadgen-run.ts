/**
 * @module run/loadgen-run
 * One loadgen run as a child process: the command line for a scenario and
 * endpoint (ts, or the C mqtt-loadgen, built from loadgen.c when missing;
 * the endpoint's transport adds --tls / --cafile / --ws), its log file, and
 * the result parsed from its JSON line, with the check counters that failed
 * gathered into a one-line note and, for conn runs, the broker's CPU per
 * connection (broker_cpu_us_per_conn) derived from it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Endpoint } from "./brokers.ts";
import { LOADGEN_TS } from "./env.ts";
import { isConnKind, type ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";
import { loadgenTransportArgs, type Transport } from "./transports.ts";
import type { Variant } from "./variants.ts";

export { cLoadgen } from "./env.ts";

export type Json = Record<string, number | string>;

export interface RunResult {
  scenario: string;
  side: "A" | "B";
  /** Variant id (run/variants.ts): side, transport, nodelay. */
  variant: string;
  transport: Transport;
  nodelay: boolean;
  round: number;
  tool: "ts" | "c";
  rc: number;
  json: Json;
  log: string;
  note: string;
}

export async function runLoadgen(
  o: Options,
  s: ScenarioDef,
  ep: Endpoint,
  v: Variant,
  round: number,
  out: string,
  cPath: string,
): Promise<RunResult> {
  const tool: "ts" | "c" = o.loadgen === "c" && !s.tsOnly ? "c" : "ts";
  const args = [...s.args];
  if (!isConnKind(s)) args.push("--duration", String(o.duration), "--warmup", String(o.warmup));
  args.push("--host", ep.host, "--port", String(ep.port), "--mqtt", String(o.mqtt));
  args.push(...loadgenTransportArgs(ep.transport, ep.cafile, ep.wsPath));
  if (ep.pid) args.push("--broker-pid", String(ep.pid));
  args.push(...o.extra, "-q");
  const cmd = tool === "c" ? [cPath, ...args] : [process.execPath, LOADGEN_TS, ...args];
  const log = join(out, `${s.name}.${v.id}.r${round}.log`);
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, rc] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  writeFileSync(log, `$ ${cmd.join(" ")}\n${stdout}${stderr ? `--- stderr\n${stderr}` : ""}`);
  const line = stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  let json: Json = { ok: 0 };
  if (line) {
    try {
      json = JSON.parse(line) as Json;
    } catch {}
  }
  const cpu = Number(json.broker_cpu_s);
  const conns = Number(json.connected);
  // /proc counts CPU in clock ticks (10 ms): use enough connections that this is small
  if (ep.pid && json.scenario === "conn" && cpu >= 0 && conns > 0) json.broker_cpu_us_per_conn = Math.round((cpu / conns) * 1e7) / 10;
  const facts = ["lost", "dup", "dup_noflag", "ooo", "proto_err", "unexpected_close", "pub_rejected", "conn_fail", "timed_out", "drain_timeout"]
    .filter((k) => Number(json[k]) > 0)
    .map((k) => `${k}=${json[k]}`);
  const note = [...facts, ...stderr.trim().split("\n").filter(Boolean).slice(0, 3)].join(" | ");
  return { scenario: s.name, side: v.side, variant: v.id, transport: v.transport, nodelay: v.nodelay, round, tool, rc, json, log, note };
}

/** A run failed when the tool exited non-zero or its JSON line is missing or says ok=0. */
export function runFailed(r: RunResult): boolean {
  return r.rc !== 0 || Number(r.json.ok) !== 1;
}
