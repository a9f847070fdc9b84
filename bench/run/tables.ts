/**
 * @module run/tables
 * From runs to rows: the median of each metric per scenario and variant
 * (side, transport, nodelay) over the rounds, failed runs with their notes,
 * the metrics each kind of row shows, and the markdown tables for one
 * variant, or A vs B with ratios and a CPU table (more variants:
 * run/variant-tables.ts).
 */
import { type RunResult, runFailed } from "./loadgen-run.ts";
import { isConnKind, type ScenarioDef } from "./matrix.ts";
import type { Transport } from "./transports.ts";
import type { Variant } from "./variants.ts";

function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export function fmt(x: number | null | undefined, unit = ""): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  if (x < 0) return "-";
  let s: string;
  if (x >= 1e6) s = `${(x / 1e6).toFixed(2)}M`;
  else if (x >= 1e4) s = `${(x / 1e3).toFixed(0)}k`;
  else if (x >= 1000) s = `${(x / 1e3).toFixed(1)}k`;
  else if (x >= 100 || x === Math.floor(x)) s = x.toFixed(0);
  else s = x.toFixed(1);
  return s + unit;
}
export function us(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x) || x < 0) return "-";
  if (x >= 10000) return `${(x / 1000).toFixed(1)} ms`;
  if (x >= 1000) return `${(x / 1000).toFixed(2)} ms`;
  return `${x.toFixed(0)} µs`;
}

export interface Metric {
  key: string;
  label: string;
  higher: boolean;
  f: (x: number | null) => string;
}

export function metricsFor(s: ScenarioDef): Metric[] {
  const rate = { key: "rate", label: s.name.startsWith("fanout") ? "deliveries/s" : "msg/s", higher: true, f: (x: number | null) => fmt(x) };
  const p50 = { key: "p50_us", label: "p50", higher: false, f: us };
  const p99 = { key: "p99_us", label: "p99", higher: false, f: us };
  const cpuConn = { key: "broker_cpu_us_per_conn", label: "broker CPU/conn", higher: false, f: us };
  const rssConn = { key: "rss_per_conn_b", label: "RSS B/conn", higher: false, f: (x: number | null) => fmt(x) };
  if (s.kind === "conn")
    return [
      { key: "conn_rate", label: "conn/s", higher: true, f: (x) => fmt(x) },
      { key: "cp99_us", label: "connect p99", higher: false, f: us },
      rssConn,
      cpuConn,
    ];
  if (s.kind === "handshake")
    return [cpuConn, { key: "conn_rate", label: "conn/s", higher: true, f: (x) => fmt(x) }, { key: "cp99_us", label: "connect p99", higher: false, f: us }];
  if (s.kind === "idle")
    return [
      rssConn,
      { key: "rss_base_kb", label: "RSS before, kB", higher: false, f: (x) => fmt(x) },
      { key: "rss_held_kb", label: "RSS held, kB", higher: false, f: (x) => fmt(x) },
    ];
  if (s.kind === "latency") return [p50, p99, { key: "max_us", label: "max", higher: false, f: us }];
  if (s.optIn) return [rate, { key: "lost", label: "lost", higher: false, f: (x: number | null) => fmt(x) }, p99];
  return [rate, p50, p99];
}

function pick(rs: RunResult[], key: string): number | null {
  return median(
    rs
      .map((r) => Number(r.json[key]))
      .filter((x) => Number.isFinite(x) && !(x < 0 && /cpu|rss/.test(key))),
  );
}

export interface Row {
  scenario: string;
  what: string;
  side: "A" | "B";
  variant: string;
  transport: Transport;
  nodelay: boolean;
  broker: string;
  tool: string;
  runs: number;
  failed: number;
  medians: Record<string, number | null>;
  notes: string[];
}

export function summarize(
  variants: Variant[],
  list: ScenarioDef[],
  results: RunResult[],
  labelOf: (s: ScenarioDef, v: Variant) => string,
): Row[] {
  const rows: Row[] = [];
  const keys = ["rate", "send_rate", "p50_us", "p99_us", "p999_us", "max_us", "lost", "dup", "ooo", "conn_rate", "cp50_us", "cp99_us", "rss_per_conn_b", "rss_base_kb", "rss_held_kb", "broker_cpu_us_per_conn", "broker_cpu_s", "broker_cpu_pct", "loadgen_cpu_pct"];
  for (const s of list) {
    for (const v of variants) {
      const side = v.side;
      // A Mosquitto B side ran the persist rows once under their shared key; a bunmq one ran each.
      const of = (key: string) => results.filter((r) => r.variant === v.id && r.scenario === key);
      let rs = of(s.name);
      if (!rs.length && side === "B" && s.bKey) rs = of(s.bKey);
      if (!rs.length) continue;
      const medians: Record<string, number | null> = {};
      for (const k of keys) medians[k] = pick(rs, k);
      const failedRuns = rs.filter(runFailed);
      const notes = [...new Set(failedRuns.map((r) => `rc=${r.rc}${r.note ? `: ${r.note}` : ""} (${r.log})`))];
      rows.push({
        scenario: s.name, what: s.what, side, variant: v.id, transport: v.transport, nodelay: v.nodelay, broker: labelOf(s, v), tool: rs[0]!.tool, runs: rs.length,
        failed: failedRuns.length, medians, notes,
      });
    }
  }
  return rows;
}

/** The table of a run with one variant. */
export function markdownSingle(list: ScenarioDef[], rows: Row[]): string {
  const out: string[] = [];
  out.push("| scenario | broker | loadgen | msg/s (conn/s) | p50 | p99 | lost | broker CPU | loadgen CPU | ok |");
  out.push("|---|---|---|---:|---:|---:|---:|---:|---:|---|");
  for (const s of list) {
    const r = rows.find((x) => x.scenario === s.name);
    if (!r) continue;
    const m = r.medians;
    const conn = isConnKind(s);
    const rate = conn ? `${fmt(m.conn_rate)} conn/s` : s.kind === "latency" ? `${fmt(m.rate)} (rate-limited)` : fmt(m.rate);
    const p50 = conn ? us(m.cp50_us) : us(m.p50_us);
    const p99 = conn ? us(m.cp99_us) : us(m.p99_us);
    const rss = m.rss_per_conn_b !== null && m.rss_per_conn_b >= 0 ? `RSS ${fmt(m.rss_per_conn_b)} B/conn` : "-";
    const lost = s.kind === "handshake" ? `broker ${us(m.broker_cpu_us_per_conn)}/conn` : conn ? rss : fmt(m.lost);
    const okc = r.failed ? `**FAILED ${r.failed}/${r.runs}**` : "ok";
    out.push(
      `| ${s.name} | ${r.broker} | ${r.tool} | ${rate} | ${p50} | ${p99} | ${lost} | ${fmt(m.broker_cpu_pct, "%")} | ${fmt(m.loadgen_cpu_pct, "%")} | ${okc} |`,
    );
  }
  return out.join("\n");
}

/** The tables of a run with two variants, A and B (same transport). */
export function markdownVs(list: ScenarioDef[], rows: Row[], names: [string, string]): string {
  const [A, B] = names;
  const out: string[] = [];
  out.push(`| scenario | metric | ${A} | ${B} | ${A}/${B} | failed runs ${A} \\| ${B} |`);
  out.push("|---|---|---:|---:|---:|---|");
  for (const s of list) {
    const ra = rows.find((x) => x.scenario === s.name && x.side === "A");
    const rb = rows.find((x) => x.scenario === s.name && x.side === "B");
    const ms = metricsFor(s);
    ms.forEach((m, i) => {
      const a = ra?.medians[m.key] ?? null;
      const b = rb?.medians[m.key] ?? null;
      const ratio = a !== null && b !== null && a >= 0 && b > 0 ? `${(a / b).toFixed(2)}` : "-";
      const failed = i === 0 ? `${ra?.failed ?? "-"}/${ra?.runs ?? 0} \\| ${rb?.failed ?? "-"}/${rb?.runs ?? 0}` : "";
      out.push(`| ${i === 0 ? s.name : ""} | ${m.label} | ${m.f(a)} | ${m.f(b)} | ${ratio} | ${failed} |`);
    });
  }
  out.push("");
  out.push(`CPU during the measured window (median; 100% = one core of 2)`);
  out.push("");
  out.push(`| scenario | ${A} broker | ${A} loadgen | ${B} broker | ${B} loadgen | B broker |`);
  out.push("|---|---:|---:|---:|---:|---|");
  for (const s of list) {
    const ra = rows.find((x) => x.scenario === s.name && x.side === "A");
    const rb = rows.find((x) => x.scenario === s.name && x.side === "B");
    out.push(
      `| ${s.name} | ${fmt(ra?.medians.broker_cpu_pct, "%")} | ${fmt(ra?.medians.loadgen_cpu_pct, "%")} | ${fmt(rb?.medians.broker_cpu_pct, "%")} | ${fmt(rb?.medians.loadgen_cpu_pct, "%")} | ${rb?.broker ?? "-"} |`,
    );
  }
  return out.join("\n");
}
