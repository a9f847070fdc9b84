/**
 * @module run/rounds
 * Runs the matrix: for each round, each group and each transport, start the
 * managed broker(s) fresh with that transport's listener, run every
 * scenario of the group on each variant in turn (A, then B; so transports
 * and brokers alternate A B A B over the rounds, and drift on the machine
 * hits all alike), log a progress line per run, and note brokers that
 * exited or wrote to stderr and rows a variant cannot run. SIGINT / SIGTERM
 * end the matrix after the current run; managed brokers are always stopped.
 */
import { existsSync, readFileSync } from "node:fs";
import { type Endpoint, type ManagedBroker, mosquittoWebsockets, parseHostPort, startBunmq, startMosquitto, stopBroker } from "./brokers.ts";
import { benchCerts } from "./certs.ts";
import { type RunResult, runLoadgen } from "./loadgen-run.ts";
import { isConnKind, type ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";
import { isTls, isWs } from "./transports.ts";
import { skipReason, type Variant, variantsOf } from "./variants.ts";

export interface MatrixResult {
  results: RunResult[];
  /** Exits and stderr output of managed brokers. */
  brokerProblems: string[];
  /** Rows a variant did not run, with the reason (one line each). */
  skipped: string[];
  /** What every scenario ran against, in run order. */
  variants: Variant[];
  /** The label of the broker that ran a row (e.g. "bunmq (ack)", "mosquitto (tls)"). */
  labelOf: (s: ScenarioDef, v: Variant) => string;
}

function brief(s: ScenarioDef, r: RunResult): string {
  const j = r.json;
  if (s.kind === "handshake") return `broker=${j.broker_cpu_us_per_conn}us/conn conn/s=${j.conn_rate} cp99=${j.cp99_us}us`;
  if (isConnKind(s)) return `conn/s=${j.conn_rate} cp99=${j.cp99_us}us rss/conn=${j.rss_per_conn_b}B`;
  return `rate=${j.rate} p50=${j.p50_us}us p99=${j.p99_us}us lost=${j.lost} dup=${j.dup} ooo=${j.ooo}`;
}

export async function runMatrix(o: Options, list: ScenarioDef[], out: string, cPath: string): Promise<MatrixResult> {
  const progress = (s: string) => process.stderr.write(s + "\n");
  const managedA = !o.target;
  const managedB = o.vs === "mosquitto" || o.vs === "bun";
  const bunB = o.vs === "bun";
  const variants = variantsOf(o);
  const fixed = (v: Variant): Endpoint | null => {
    if (v.side === "A" && !managedA) return parseHostPort(o.target, o.pid, v.transport);
    if (v.side === "B" && !managedB) return parseHostPort(o.vs, o.vsPid, v.transport);
    return null;
  };
  const certs = (managedA || managedB) && o.transports.some(isTls) ? benchCerts(out) : null;
  const mosquittoWs = managedB && o.transports.some(isWs) ? await mosquittoWebsockets(out) : "";
  if (mosquittoWs) progress(`bench: no Mosquitto ws/wss rows: ${mosquittoWs}`);

  // groups in matrix order
  const groups: { name: string; scen: ScenarioDef[] }[] = [];
  for (const s of list) {
    let g = groups.find((x) => x.name === s.group);
    if (!g) groups.push((g = { name: s.group, scen: [] }));
    g.scen.push(s);
  }

  const labels = new Map<string, string>();
  // A bunmq B side runs every persist row (its durability modes are A's); Mosquitto has one persist mode.
  const keyOf = (s: ScenarioDef, v: Variant) => (v.side === "B" && s.bKey && !bunB ? s.bKey : s.name);
  const labelOf = (s: ScenarioDef, v: Variant) => labels.get(`${v.id}:${keyOf(s, v)}`) ?? v.name;

  progress(
    `bench: ${managedA ? `bunmq under ${o.runtime} (started per group)` : `${o.names[0]}=${o.target}`}` +
      (o.vs ? ` vs ${o.names[1]}=${bunB ? "bunmq under bun (started per group)" : managedB ? "mosquitto (started per group)" : o.vs}` : "") +
      `; transport ${o.transports.join(",")}` +
      (managedB && o.mosquittoNodelay !== "off" ? `; mosquitto set_tcp_nodelay ${o.mosquittoNodelay === "both" ? "false and true" : "true"}` : "") +
      `; ${list.length} scenarios x ${variants.length} variant(s) x ${o.rounds} round(s); ${o.duration}+${o.warmup} s; loadgen ${o.loadgen}; mqtt ${o.mqtt}; logs ${out}`,
  );
  const results: RunResult[] = [];
  const brokerProblems: string[] = [];
  const skipped = new Set<string>();
  let interrupted = false;
  let live: ManagedBroker[] = [];
  const onSig = () => {
    interrupted = true;
  };
  process.on("SIGINT", onSig);
  process.on("SIGTERM", onSig);

  try {
    for (let round = 1; round <= o.rounds && !interrupted; round++) {
      const bDone = new Set<string>();
      for (const g of groups) {
        for (const t of o.transports) {
          if (interrupted) break;
          const mode = g.scen[0]!.mode;
          const isPersist = g.scen.some((s) => s.bKey === "persist");
          const tv = variants.filter((v) => v.transport === t);
          const runs = (s: ScenarioDef, v: Variant) => !skipReason(o, s, v, mosquittoWs) && !(v.side === "B" && s.bKey && !bunB && bDone.has(`${v.id}:${s.bKey}`));
          const brokers = new Map<string, ManagedBroker>();
          for (const v of tv) {
            if (!g.scen.some((s) => runs(s, v))) continue;
            if (v.side === "A" && managedA) brokers.set(v.id, await startBunmq(mode, out, t, certs, o.runtime));
            if (v.side === "B" && bunB) brokers.set(v.id, await startBunmq(mode, out, t, certs, "bun"));
            else if (v.side === "B" && managedB) brokers.set(v.id, await startMosquitto(isPersist, out, { transport: t, certs, nodelay: v.nodelay }));
          }
          live = [...brokers.values()];
          for (const s of g.scen) {
            if (interrupted) break;
            for (const v of tv) {
              const why = skipReason(o, s, v, mosquittoWs);
              if (why) {
                skipped.add(`${s.name} on ${v.name}: ${why}`);
                continue;
              }
              const key = keyOf(s, v);
              if (v.side === "B" && s.bKey && !bunB) {
                if (bDone.has(`${v.id}:${s.bKey}`)) continue;
                bDone.add(`${v.id}:${s.bKey}`);
              }
              const m = brokers.get(v.id) ?? null;
              const ep = m ? m.ep : fixed(v)!;
              if (m) labels.set(`${v.id}:${key}`, m.label);
              if (m && m.proc.exitCode !== null) {
                brokerProblems.push(`${m.label} had exited (code ${m.proc.exitCode}) before ${key}; see ${m.log}.err`);
                continue;
              }
              if (s.prime) {
                const p = await runLoadgen(o, { ...s, name: `${s.name}.prime`, args: s.prime }, ep, v, round, out, cPath);
                if (p.rc !== 0) progress(`  r${round} ${key} ${v.name}: priming run failed rc=${p.rc} (${p.log})`);
              }
              const r = await runLoadgen(o, s, ep, v, round, out, cPath);
              r.scenario = key;
              results.push(r);
              const j = r.json;
              progress(
                `  r${round} ${key.padEnd(16)} ${v.name.padEnd(10)} ${r.tool} rc=${r.rc} ${brief(s, r)} broker=${j.broker_cpu_pct}% lg=${j.loadgen_cpu_pct}%` +
                  (r.rc !== 0 ? `  FAILED (${r.log})` : ""),
              );
              if (m && m.proc.exitCode !== null) {
                const err = existsSync(`${m.log}.err`) ? readFileSync(`${m.log}.err`, "utf8").trim().slice(-500) : "";
                brokerProblems.push(`${m.label} exited (code ${m.proc.exitCode}) during ${key} r${round}: ${err}`);
              }
            }
          }
          for (const m of live) {
            const err = existsSync(`${m.log}.err`) ? readFileSync(`${m.log}.err`, "utf8").trim() : "";
            if (err && m.label.startsWith("bunmq")) brokerProblems.push(`${m.label} stderr during ${g.name} r${round}: ${err.slice(0, 500)}`);
          }
          for (const m of live) await stopBroker(m);
          live = [];
        }
      }
    }
  } finally {
    for (const m of live) await stopBroker(m);
  }

  return { results, brokerProblems, skipped: [...skipped], variants, labelOf };
}
