/**
 * @module run/bridge-report
 * The bridge scenario's output: per system (bunmq, each Mosquitto variant)
 * the median msg/s without and with the bridge, bridge/direct, the losses
 * (summed over the rounds: any loss is a failure) and failed runs, the
 * bridge run's latency and CPU (edge, upstream, loadgen); then bunmq
 * against each Mosquitto (bridge: the goal is at least 20x, with zero
 * loss), and for bunmq the edge's bridge counters. Or one JSON document.
 */
import { runFailed } from "./loadgen-run.ts";
import type { Options } from "./options.ts";
import { type BridgeResult, type BridgeRun, type Flow, BRIDGE_WHAT } from "./bridge.ts";
import { fmt, us } from "./tables.ts";

/** bunmq's bridge against Mosquitto's. */
export const BRIDGE_GOAL = 20;

function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x) && x >= 0).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export interface BridgeRow {
  system: string;
  name: string;
  flow: Flow;
  runs: number;
  failed: number;
  rate: number | null;
  sent: number;
  received: number;
  lost: number;
  dup: number;
  ooo: number;
  p50_us: number | null;
  p99_us: number | null;
  cpu_edge_pct: number | null;
  cpu_upstream_pct: number | null;
  loadgen_cpu_pct: number | null;
  metrics: Record<string, number | null>;
  notes: string[];
}

export function bridgeRows(res: BridgeResult): BridgeRow[] {
  const rows: BridgeRow[] = [];
  for (const s of res.systems) {
    for (const flow of ["direct", "bridge"] as Flow[]) {
      const rs: BridgeRun[] = res.runs.filter((r) => r.system === s.id && r.flow === flow);
      if (!rs.length) continue;
      const num = (k: string) => rs.map((r) => Number(r.result.json[k]));
      const sum = (k: string) => num(k).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
      const mkeys = [...new Set(rs.flatMap((r) => Object.keys(r.metrics)))];
      const metrics: Record<string, number | null> = {};
      for (const k of mkeys) metrics[k] = median(rs.map((r) => r.metrics[k] ?? NaN));
      const failed = rs.filter((r) => runFailed(r.result));
      rows.push({
        system: s.id, name: s.name, flow, runs: rs.length, failed: failed.length,
        rate: median(num("rate")), sent: sum("sent"), received: sum("unique"), lost: sum("lost"), dup: sum("dup"), ooo: sum("ooo"),
        p50_us: median(num("p50_us")), p99_us: median(num("p99_us")),
        cpu_edge_pct: median(rs.map((r) => r.cpuEdge)), cpu_upstream_pct: median(rs.map((r) => r.cpuUpstream)), loadgen_cpu_pct: median(num("loadgen_cpu_pct")),
        metrics, notes: failed.map((r) => `r${r.round} rc=${r.result.rc}${r.result.note ? `: ${r.result.note}` : ""} (${r.result.log})`),
      });
    }
  }
  return rows;
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a && b ? a / b : null);
const x = (r: number | null): string => (r === null ? "-" : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`);

export function printBridgeReport(o: Options, out: string, res: BridgeResult, secs: number): void {
  const rows = bridgeRows(res);
  const row = (sys: string, flow: Flow) => rows.find((r) => r.system === sys && r.flow === flow);
  const bunmqBridge = row("bunmq", "bridge");
  const vsMosquitto = res.systems
    .filter((s) => s.kind === "mosquitto")
    .map((s) => ({ name: s.name, direct: ratio(row("bunmq", "direct")?.rate, row(s.id, "direct")?.rate), bridge: ratio(bunmqBridge?.rate, row(s.id, "bridge")?.rate) }));
  const failedRuns = rows.reduce((a, r) => a + r.failed, 0);
  if (o.json) {
    console.log(JSON.stringify({ config: { ...o, scenario: "bridge", logs: out }, goal: BRIDGE_GOAL, rows, vs_mosquitto: vsMosquitto, runs: res.runs.map((r) => ({ ...r, result: { ...r.result } })), problems: res.problems, failed_runs: failedRuns, elapsed_s: secs }, null, 2));
    return;
  }
  const L: string[] = [];
  L.push(`## bunmq bridge benchmark (${o.rounds} round(s), ${o.duration} s + ${o.warmup} s warmup, 64 B payloads, clients MQTT ${o.mqtt === 5 ? "5" : "3.1.1"}, bridges MQTT ${o.bridgeMqtt === 5 ? "5" : "3.1.1"}, loadgen ${o.loadgen})`);
  L.push("");
  L.push("Medians of msg/s received by the subscriber; lost, dup and ooo are summed over the rounds. CPU: % of one core over the measured loadgen run (edge / upstream; no bridge: the one broker).");
  L.push("");
  L.push("| broker | no bridge msg/s | bridge msg/s | bridge / no bridge | lost no bridge | lost bridge | bridge p50 | bridge p99 | CPU no bridge | CPU bridge edge / upstream | loadgen CPU (bridge) | failed runs |");
  L.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const s of res.systems) {
    const d = row(s.id, "direct");
    const b = row(s.id, "bridge");
    const lost = (r: typeof d) => (r ? `${r.lost}${r.dup || r.ooo ? ` (dup ${r.dup}, ooo ${r.ooo})` : ""} of ${r.sent}` : "-");
    const f = (d?.failed ?? 0) + (b?.failed ?? 0);
    L.push(
      `| ${s.name} | ${fmt(d?.rate)} | ${fmt(b?.rate)} | ${x(ratio(b?.rate, d?.rate))} | ${lost(d)} | ${lost(b)} | ${us(b?.p50_us)} | ${us(b?.p99_us)} | ${fmt(d?.cpu_edge_pct, "%")} | ${fmt(b?.cpu_edge_pct, "%")} / ${fmt(b?.cpu_upstream_pct, "%")} | ${fmt(b?.loadgen_cpu_pct, "%")} | ${f ? `**${f} of ${(d?.runs ?? 0) + (b?.runs ?? 0)}**` : "0"} |`,
    );
  }
  for (const v of vsMosquitto) {
    const zero = (bunmqBridge?.lost ?? 1) === 0 && (bunmqBridge?.failed ?? 1) === 0;
    const goal = v.bridge === null ? "-" : `${v.bridge >= BRIDGE_GOAL && zero ? "met" : "**not met**"} (goal ≥ ${BRIDGE_GOAL}x with zero loss)`;
    L.push(`| bunmq / ${v.name} | ${x(v.direct)} | ${x(v.bridge)} | ${goal} | | | | | | | | |`);
  }
  if (bunmqBridge) {
    const m = bunmqBridge.metrics;
    L.push("");
    L.push(
      `bunmq edge over the measured bridge run (medians): bridge out ${fmt(m["edge.bunmq_bridge_messages_total.out"])} msgs, dropped ${fmt(m["edge.bunmq_bridge_dropped_total"])}, ` +
        `queued after ${fmt(m["edge.bunmq_bridge_queued_messages"])}, new connections ${fmt(m["edge.bunmq_bridge_connects_total"])}, failures ${fmt(m["edge.bunmq_bridge_failures_total"])}; ` +
        `broker drops: edge ${fmt(m["edge.bunmq_dropped_messages_total"])}, upstream ${fmt(m["upstream.bunmq_dropped_messages_total"])}.`,
    );
  }
  L.push("");
  L.push(`Scenario: ${BRIDGE_WHAT}.`);
  L.push(`- bunmq: two \`bun broker.ts\` processes (\`:memory:\`), the edge with \`bridges: [{ name: "up", address: "mqtt://127.0.0.1:UPSTREAM", protocolVersion: ${o.bridgeMqtt}, topics: [{ pattern: "bench/#", direction: "out", qos: 1 }]${Object.keys(o.bridgeConfig).length ? `, ...${JSON.stringify(o.bridgeConfig)}` : ""} }]\` (other bridge options at their defaults)`);
  L.push(`- Mosquitto: two processes with the reference config, the edge with \`connection up\`, \`address 127.0.0.1:UPSTREAM\`, \`topic bench/# out 1\`, \`bridge_protocol_version ${o.bridgeMqtt === 5 ? "mqttv50" : "mqttv311"}\``);
  L.push("- no bridge: the same loadgen run with publishers and subscriber on the upstream broker alone");
  const failed = rows.filter((r) => r.failed);
  if (failed.length) {
    L.push("");
    L.push(`**${failedRuns} run(s) failed a check** (QoS 1 loss, dup without DUP, out-of-order, protocol error, timeout, connect):`);
    for (const r of failed) for (const n of r.notes) L.push(`- ${r.name} ${r.flow} ${n}`);
  }
  if (res.problems.length) {
    L.push("");
    L.push("Broker problems:");
    for (const p of res.problems) L.push(`- ${p}`);
  }
  L.push("");
  L.push(`total ${secs.toFixed(0)} s; logs in ${out}`);
  console.log(L.join("\n"));
}
