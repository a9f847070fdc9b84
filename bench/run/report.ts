/**
 * @module run/report
 * The runner's output on stdout: one JSON document (--json) or the markdown
 * report (the table, the scenario list, failed runs with their logs, broker
 * problems, total time). Progress goes to stderr elsewhere, so stdout stays
 * parseable.
 */
import { runFailed } from "./loadgen-run.ts";
import type { ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";
import type { MatrixResult } from "./rounds.ts";
import { markdownSingle, markdownVs, summarize } from "./tables.ts";

export function printReport(o: Options, list: ScenarioDef[], out: string, m: MatrixResult, secs: number): void {
  const { results, brokerProblems } = m;
  const rows = summarize(o, list, results, m.labelOf);
  const failedRuns = results.filter(runFailed);
  if (o.json) {
    console.log(
      JSON.stringify(
        {
          config: { ...o, scenarios: list.map((s) => s.name), logs: out },
          rows,
          runs: results.map((r) => ({ scenario: r.scenario, side: r.side, round: r.round, tool: r.tool, rc: r.rc, log: r.log, result: r.json })),
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
      `## bunmq benchmark (${o.rounds} round(s), ${o.duration} s + ${o.warmup} s warmup, 64 B payloads, MQTT ${o.mqtt === 5 ? "5" : "3.1.1"}, loadgen ${o.loadgen}${o.loadgen === "c" ? " (persist rows: ts)" : ""})`,
    );
    lines.push("");
    if (o.vs) {
      lines.push(`Medians; ratio = ${o.names[0]}/${o.names[1]} (msg/s, conn/s: higher is better; latency, B/conn: lower is better). Ratios within ~1.2x are a tie.`);
      lines.push("");
      lines.push(markdownVs(o, list, rows));
    } else {
      lines.push(markdownSingle(o, list, rows));
    }
    lines.push("");
    lines.push("Scenarios:");
    for (const s of list) lines.push(`- \`${s.name}\`: ${s.what}`);
    const pers = rows.filter((r) => r.side === "B" && r.scenario.startsWith("persist"));
    if (pers.length) lines.push(`- ${o.names[1]} persist rows all compare with one run per round of: ${pers[0]!.broker}`);
    if (failedRuns.length) {
      lines.push("");
      lines.push(`**${failedRuns.length} run(s) failed a check** (QoS>=1 loss, dup without DUP, out-of-order, protocol error, timeout, connect):`);
      for (const r of failedRuns) lines.push(`- ${r.scenario} ${r.side === "A" ? o.names[0] : o.names[1]} r${r.round} rc=${r.rc}: ${r.note || "see log"} (${r.log})`);
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
