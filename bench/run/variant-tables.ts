/**
 * @module run/variant-tables
 * The table of a run with more than two variants (several transports, or
 * Mosquitto with and without set_tcp_nodelay): per scenario and metric, one
 * column per variant, then the ratios that answer the questions asked of
 * such a run — each bunmq transport against bunmq over TCP, and bunmq
 * against each B variant on the same transport — and a CPU table.
 */
import type { ScenarioDef } from "./matrix.ts";
import { fmt, metricsFor, type Row } from "./tables.ts";
import type { Variant } from "./variants.ts";

interface Ratio {
  label: string;
  num: Variant;
  den: Variant;
}

/** The ratio columns: A on each transport / A on tcp; A / each B on its transport. */
function ratios(variants: Variant[]): Ratio[] {
  const out: Ratio[] = [];
  const aTcp = variants.find((v) => v.side === "A" && v.transport === "tcp");
  if (aTcp) for (const v of variants) if (v.side === "A" && v !== aTcp) out.push({ label: `${v.name} / ${aTcp.name}`, num: v, den: aTcp });
  for (const b of variants) {
    if (b.side !== "B") continue;
    const a = variants.find((v) => v.side === "A" && v.transport === b.transport);
    if (a) out.push({ label: `${a.name} / ${b.name}`, num: a, den: b });
  }
  return out;
}

export function markdownVariants(list: ScenarioDef[], rows: Row[], variants: Variant[]): string {
  const rs = ratios(variants);
  const cell = (s: ScenarioDef, v: Variant, key: string): number | null => {
    const r = rows.find((x) => x.scenario === s.name && x.variant === v.id);
    return r?.medians[key] ?? null;
  };
  const out: string[] = [];
  out.push(`| scenario | metric | ${variants.map((v) => v.name).join(" | ")} | ${rs.map((r) => r.label).join(" | ")} |`);
  out.push(`|---|---|${variants.map(() => "---:").join("|")}|${rs.map(() => "---:").join("|")}|`);
  for (const s of list) {
    metricsFor(s).forEach((m, i) => {
      const vals = variants.map((v) => m.f(cell(s, v, m.key)));
      const rat = rs.map((r) => {
        const a = cell(s, r.num, m.key);
        const b = cell(s, r.den, m.key);
        return a !== null && b !== null && a >= 0 && b > 0 ? (a / b).toFixed(2) : "-";
      });
      out.push(`| ${i === 0 ? s.name : ""} | ${m.label} | ${vals.join(" | ")} | ${rat.join(" | ")} |`);
    });
  }
  const failed = rows.filter((r) => r.failed > 0);
  if (failed.length) {
    out.push("");
    out.push(`Failed runs: ${failed.map((r) => `${r.scenario} on ${r.variant} ${r.failed}/${r.runs}`).join(", ")}`);
  }
  out.push("");
  out.push("Broker / loadgen CPU during the measured window (median; 100% = one core of 2)");
  out.push("");
  out.push(`| scenario | ${variants.map((v) => v.name).join(" | ")} |`);
  out.push(`|---|${variants.map(() => "---:").join("|")}|`);
  for (const s of list) {
    out.push(`| ${s.name} | ${variants.map((v) => `${fmt(cell(s, v, "broker_cpu_pct"), "%")} / ${fmt(cell(s, v, "loadgen_cpu_pct"), "%")}`).join(" | ")} |`);
  }
  return out.join("\n");
}
