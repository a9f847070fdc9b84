/**
 * @module run/rounds
 * Runs the matrix: for each round and each group, start the managed
 * broker(s) fresh, run every scenario of the group on side A then side B
 * (alternating, so that drift on the machine hits both alike), log a progress
 * line per run, and note brokers that exited or wrote to stderr. SIGINT /
 * SIGTERM end the matrix after the current run; managed brokers are always
 * stopped.
 */
import { existsSync, readFileSync } from "node:fs";
import { type ManagedBroker, parseHostPort, startBunmq, startMosquitto, stopBroker } from "./brokers.ts";
import { type RunResult, runLoadgen } from "./loadgen-run.ts";
import type { ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";

export interface MatrixResult {
  results: RunResult[];
  /** Exits and stderr output of managed brokers. */
  brokerProblems: string[];
  /** The label of the broker that ran a row (e.g. "bunmq (ack)"). */
  labelOf: (s: ScenarioDef, side: "A" | "B") => string;
}

export async function runMatrix(o: Options, list: ScenarioDef[], out: string, cPath: string): Promise<MatrixResult> {
  const progress = (s: string) => process.stderr.write(s + "\n");
  const managedA = !o.target;
  const managedB = o.vs === "mosquitto";
  const fixedA = o.target ? parseHostPort(o.target, o.pid) : null;
  const fixedB = o.vs && !managedB ? parseHostPort(o.vs, o.vsPid) : null;

  // groups in matrix order
  const groups: { name: string; scen: ScenarioDef[] }[] = [];
  for (const s of list) {
    let g = groups.find((x) => x.name === s.group);
    if (!g) groups.push((g = { name: s.group, scen: [] }));
    g.scen.push(s);
  }

  const labels = new Map<string, string>();
  const labelOf = (s: ScenarioDef, side: "A" | "B") => labels.get(`${side}:${side === "B" && s.bKey ? s.bKey : s.name}`) ?? o.names[side === "A" ? 0 : 1];

  progress(
    `bench: ${managedA ? "bunmq (started per group)" : `${o.names[0]}=${o.target}`}` +
      (o.vs ? ` vs ${o.names[1]}=${managedB ? "mosquitto (started per group)" : o.vs}` : "") +
      `; ${list.length} scenarios x ${o.rounds} round(s); ${o.duration}+${o.warmup} s; loadgen ${o.loadgen}; mqtt ${o.mqtt}; logs ${out}`,
  );
  const results: RunResult[] = [];
  const brokerProblems: string[] = [];
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
        if (interrupted) break;
        const mode = g.scen[0]!.mode;
        const isPersist = g.scen.some((s) => s.bKey === "persist");
        let a: ManagedBroker | null = null;
        let b: ManagedBroker | null = null;
        const needB = !!o.vs && g.scen.some((s) => !(s.bKey && bDone.has(s.bKey)));
        if (managedA) a = await startBunmq(mode, out);
        if (managedB && needB) b = await startMosquitto(isPersist, out);
        live = [a, b].filter((x): x is ManagedBroker => x !== null);
        for (const s of g.scen) {
          if (interrupted) break;
          for (const side of ["A", "B"] as const) {
            if (side === "B" && !o.vs) continue;
            const key = side === "B" && s.bKey ? s.bKey : s.name;
            if (side === "B" && s.bKey) {
              if (bDone.has(s.bKey)) continue;
              bDone.add(s.bKey);
            }
            const m = side === "A" ? a : b;
            const ep = side === "A" ? (a ? a.ep : fixedA!) : b ? b.ep : fixedB!;
            if (m) labels.set(`${side}:${key}`, m.label);
            if (m && m.proc.exitCode !== null) {
              brokerProblems.push(`${m.label} had exited (code ${m.proc.exitCode}) before ${key}; see ${m.log}.err`);
              continue;
            }
            const r = await runLoadgen(o, s, ep, side, round, out, cPath);
            r.scenario = key;
            results.push(r);
            const j = r.json;
            const brief =
              s.kind === "conn"
                ? `conn/s=${j.conn_rate} cp99=${j.cp99_us}us rss/conn=${j.rss_per_conn_b}B`
                : `rate=${j.rate} p50=${j.p50_us}us p99=${j.p99_us}us lost=${j.lost} dup=${j.dup} ooo=${j.ooo}`;
            progress(
              `  r${round} ${key.padEnd(16)} ${(side === "A" ? o.names[0] : o.names[1]).padEnd(10)} ${r.tool} rc=${r.rc} ${brief} broker=${j.broker_cpu_pct}% lg=${j.loadgen_cpu_pct}%` +
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
        await stopBroker(a);
        await stopBroker(b);
        live = [];
      }
    }
  } finally {
    for (const m of live) await stopBroker(m);
  }

  return { results, brokerProblems, labelOf };
}
