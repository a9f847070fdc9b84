/**
 * @module run/report
 * The runner's output on stdout: one JSON document (--json) or the markdown
 * report (the header with rounds, transports and Mosquitto's nodelay
 * setting, the table, rows not run, the scenario list and the run's TLS
 * certificate, failed runs with their logs, broker problems, total time). Progress goes to stderr elsewhere, so stdout stays
 * parseable.
 */
import { join } from "node:path";
import { runFailed } from "./loadgen-run.ts";
import { isConnKind, type ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";
import type { MatrixResult } from "./rounds.ts";
import { markdownSingle, markdownVs, summarize } from "./tables.ts";
import { isTls } from "./transports.ts";
import { markdownVariants } from "./variant-tables.ts";

/** The transports and Mosquitto's nodelay setting, when the run is not plain TCP with Mosquitto defaults. */
function transportNote(o: Options): string {
  const parts: string[] = [];
  if (o.transports.length > 1 || o.transports[0] !== "tcp") parts.push(`transport ${o.transports.join(", ")}`);
  if (o.vs === "mosquitto" && o.mosquittoNodelay !== "off") parts.push(`mosquitto set_tcp_nodelay ${o.mosquittoNodelay === "both" ? "false and true" : "true"}`);
  return parts.length ? `, ${parts.join(", ")}` : "";
}

export function printReport(o: Options, list: ScenarioDef[], out: string, m: MatrixResult, secs: number): void {
  const { results, brokerProblems } = m;
  const rows = summarize(m.variants, list, results, m.labelOf);
  const vs = m.variants;
  const failedRuns = results.filter(runFailed);
  if (o.json) {
    console.log(
      JSON.stringify(
        {
          config: { ...o, scenarios: list.map((s) => s.name), logs: out },
          rows,
          variants: vs,
          runs: results.map((r) => ({ scenario: r.scenario, side: r.side, variant: r.variant, transport: r.transport, nodelay: r.nodelay, round: r.round, tool: r.tool, rc: r.rc, log: r.log, result: r.json })),
          skipped: m.skipped,
          broker_problems: brokerProblems,
          failed_runs: failedRuns.length,
          elapsed_s: secs,
        },
        null,
        2,
      ),
    );
  } else {
    const lines: string[] = [];
    lines.push(
      `## bunmq benchmark (${o.rounds} round(s), ${list.every(isConnKind) ? "connection rows only" : `${o.duration} s + ${o.warmup} s warmup, 64 B payloads`}, MQTT ${o.mqtt === 5 ? "5" : "3.1.1"}, loadgen ${o.loadgen}${o.loadgen === "c" && list.some((s) => s.tsOnly) ? " (persist rows: ts)" : ""}${transportNote(o)})`,
    );
    lines.push("");
    if (vs.length > 2 || (vs.length === 2 && vs[0]!.transport !== vs[1]!.transport)) {
      lines.push("Medians; ratio = left/right (msg/s, conn/s: higher is better; latency, CPU/conn, B/conn: lower is better). Ratios within ~1.2x are a tie.");
      lines.push("");
      lines.push(markdownVariants(list, rows, vs));
    } else if (vs.length === 2) {
      lines.push(`Medians; ratio = ${vs[0]!.name}/${vs[1]!.name} (msg/s, conn/s: higher is better; latency, CPU/conn, B/conn: lower is better). Ratios within ~1.2x are a tie.`);
      lines.push("");
      lines.push(markdownVs(list, rows, [vs[0]!.name, vs[1]!.name]));
    } else {
      lines.push(markdownSingle(list, rows));
    }
    if (m.skipped.length) {
      lines.push("");
      lines.push("Not run:");
      for (const s of m.skipped) lines.push(`- ${s}`);
    }
    lines.push("");
    lines.push("Scenarios:");
    for (const s of list) lines.push(`- \`${s.name}\`: ${s.what}`);
    const pers = rows.filter((r) => r.side === "B" && r.scenario.startsWith("persist"));
    if (pers.length && o.vs !== "bun") lines.push(`- ${o.names[1]} persist rows all compare with one run per round of: ${pers[0]!.broker}`);
    if (o.transports.some(isTls) && (!o.target || o.vs === "mosquitto"))
      lines.push(`- TLS (tls, wss): the C loadgen (OpenSSL) makes a full handshake per connection (no resumption); an ECDSA P-256 server certificate made for this run (${join(out, "certs")}), verified by the loadgen (--cafile)`);
    if (failedRuns.length) {
      lines.push("");
      lines.push(`**${failedRuns.length} run(s) failed a check** (QoS>=1 loss, dup without DUP, out-of-order, protocol error, timeout, connect):`);
      for (const r of failedRuns) lines.push(`- ${r.scenario} ${r.variant} r${r.round} rc=${r.rc}: ${r.note || "see log"} (${r.log})`);
    }
    if (brokerProblems.length) {
      lines.push("");
      lines.push("Broker problems:");
      for (const p of brokerProblems) lines.push(`- ${p}`);
    }
    lines.push("");
    lines.push(`total ${secs.toFixed(0)} s; logs in ${out}`);
    console.log(lines.join("\n"));
  }
}
