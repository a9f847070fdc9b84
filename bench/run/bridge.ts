/**
 * @module run/bridge
 * The bridge scenario (`--only bridge`): local fan-in at QoS 1 on an edge
 * broker, forwarded by the edge's bridge to an upstream broker, where one
 * QoS 1 subscriber receives it. Against the same flow on one broker (no
 * bridge), and against Mosquitto's bridge between two Mosquitto processes.
 *
 * Per round and system (bunmq, then each Mosquitto variant): start the
 * upstream, run the flow on it alone ("direct"), start the edge bridged to
 * it, wait until the bridge carries messages, run the flow through it
 * ("bridge"), stop both. The loadgen's publishers connect to the edge and
 * its subscriber to the upstream (`--sub-port`); its checks (loss,
 * duplicates, order) cover the whole path. Each run is preceded by a short
 * unrecorded probe run on the same path (bridge up, JIT warm). Brokers'
 * CPU is read from /proc over each measured loadgen run; bunmq's counters
 * from its /metrics (an http listener on each bunmq).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Endpoint, type ManagedBroker, startBunmqConfig, startMosquitto, stopBroker } from "./brokers.ts";
import { C_LOADGEN_DIR, cLoadgenBuildCommand, die, MOSQUITTO } from "./env.ts";
import { type RunResult, runFailed, runLoadgen } from "./loadgen-run.ts";
import type { ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";
import type { Variant } from "./variants.ts";

export const BRIDGE_NAME = "bridge";
export const BRIDGE_WHAT =
  "10 QoS 1 publishers (in-flight 64, e2e window 256) on an edge broker -> its bridge (bench/# out, QoS 1) -> upstream broker -> 1 QoS 1 subscriber; vs the same flow on one broker, and vs two Mosquitto processes with a Mosquitto bridge (opt-in, alone: --only bridge)";

/** The loadgen flow: the fanin_q1 row of the matrix. */
const FLOW = ["fanin", "--pubs", "10", "--qos", "1", "--inflight", "64", "--e2e-window", "256"];
/** The unrecorded run before each measured one. */
const PROBE_SECS = 0.5;

export type Flow = "direct" | "bridge";

export interface BridgeSystem {
  /** "bunmq", "mosquitto", "mosquitto-nodelay". */
  id: string;
  name: string;
  kind: "bunmq" | "mosquitto";
  nodelay: boolean;
}

export interface BridgeRun {
  system: string;
  flow: Flow;
  round: number;
  result: RunResult;
  /** CPU % (100 = one core) over the loadgen run; edge = the only broker for "direct". */
  cpuEdge: number;
  cpuUpstream: number;
  /** bunmq: /metrics counters over the measured run (deltas), gauges after it. */
  metrics: Record<string, number>;
}

export interface BridgeResult {
  systems: BridgeSystem[];
  runs: BridgeRun[];
  problems: string[];
}

export const isBridgeRun = (o: Options): boolean => o.only.includes(BRIDGE_NAME);

export function bridgeSystems(o: Options): BridgeSystem[] {
  const out: BridgeSystem[] = [{ id: "bunmq", name: "bunmq", kind: "bunmq", nodelay: false }];
  if (!existsSync(MOSQUITTO)) return out;
  const nd = o.mosquittoNodelay === "both" ? [false, true] : [o.mosquittoNodelay === "on"];
  for (const n of nd) out.push({ id: n ? "mosquitto-nodelay" : "mosquitto", name: n ? "mosquitto nodelay" : "mosquitto", kind: "mosquitto", nodelay: n });
  return out;
}

/**
 * The C loadgen must know --sub-port: an older build at $LOADGEN or
 * /tmp/mqtt-loadgen may not. Then build the vendored source into OUT.
 */
export function cLoadgenWithSubPort(cPath: string, out: string): string {
  const help = Bun.spawnSync([cPath, "--help"], { stdout: "pipe", stderr: "pipe" });
  if (`${help.stdout}${help.stderr}`.includes("--sub-port")) return cPath;
  const p = join(out, "mqtt-loadgen");
  const cmd = cLoadgenBuildCommand(join(C_LOADGEN_DIR, "loadgen.c"), p);
  console.error(`bench: ${cPath} has no --sub-port; building ${p}: ${cmd.join(" ")}`);
  const r = Bun.spawnSync(cmd, { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0 || !existsSync(p)) die(`could not build ${p}`);
  return p;
}

/** utime + stime of a process, seconds (clock ticks of 10 ms); -1 if unreadable. */
function cpuSecs(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return -1;
  }
}

async function metrics(httpPort: number): Promise<Record<string, number>> {
  const m: Record<string, number> = {};
  if (!httpPort) return m;
  try {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const i = line.lastIndexOf(" ");
      const name = line.slice(0, i);
      const v = Number(line.slice(i + 1));
      if (!Number.isFinite(v)) continue;
      // one number per metric name and direction: sum the other labels
      const base = name.replace(/\{.*\}$/, "");
      const dir = /direction="(\w+)"/.exec(name)?.[1];
      const key = base.startsWith("bunmq_bridge_") && dir ? `${base}.${dir}` : base;
      m[key] = (m[key] ?? 0) + v;
    }
  } catch {}
  return m;
}

const WANT = [
  "bunmq_bridge_messages_total.out", "bunmq_bridge_dropped_total", "bunmq_bridge_queued_messages", "bunmq_bridge_connects_total",
  "bunmq_bridge_failures_total", "bunmq_bridge_connected", "bunmq_dropped_messages_total", "bunmq_messages_received_total", "bunmq_messages_sent_total",
];
const GAUGES = new Set(["bunmq_bridge_queued_messages", "bunmq_bridge_connected"]);

function metricDelta(before: Record<string, number>, after: Record<string, number>, prefix: string): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of WANT) {
    if (after[k] === undefined) continue;
    d[`${prefix}${k}`] = GAUGES.has(k) ? after[k]! : after[k]! - (before[k] ?? 0);
  }
  return d;
}

function stderrOf(b: ManagedBroker): string {
  return existsSync(`${b.log}.err`) ? readFileSync(`${b.log}.err`, "utf8").trim() : "";
}

export async function runBridge(o: Options, out: string, cPath: string): Promise<BridgeResult> {
  const progress = (s: string) => process.stderr.write(s + "\n");
  const systems = bridgeSystems(o);
  const runs: BridgeRun[] = [];
  const problems: string[] = [];
  if (!existsSync(MOSQUITTO)) problems.push(`${MOSQUITTO} not found: no Mosquitto rows`);
  const proto = o.bridgeMqtt;
  progress(
    `bench: bridge scenario; ${systems.map((s) => s.name).join(", ")}; bridge MQTT ${proto === 5 ? "5" : "3.1.1"}, clients MQTT ${o.mqtt === 5 ? "5" : "3.1.1"}; ` +
      `${o.rounds} round(s); ${o.duration}+${o.warmup} s; loadgen ${o.loadgen}; logs ${out}`,
  );
  let interrupted = false;
  const onSig = () => {
    interrupted = true;
  };
  process.on("SIGINT", onSig);
  process.on("SIGTERM", onSig);
  const live = new Set<ManagedBroker>();
  const stop = async (b: ManagedBroker) => {
    await stopBroker(b);
    live.delete(b);
    const err = stderrOf(b);
    if (err) problems.push(`${b.label} stderr: ${err.slice(0, 500)} (${b.log}.err)`);
    if (b.proc.exitCode !== null && b.proc.exitCode !== 0 && b.proc.signalCode === null) problems.push(`${b.label} exited with code ${b.proc.exitCode}; see ${b.log}.err`);
  };

  const def = (name: string): ScenarioDef => ({ name, group: BRIDGE_NAME, kind: "msg", mode: "memory", what: BRIDGE_WHAT, args: [...FLOW] });
  const variant = (sys: BridgeSystem, flow: Flow): Variant => ({ id: `${sys.id}.${flow}`, side: sys.kind === "bunmq" ? "A" : "B", transport: "tcp", nodelay: sys.nodelay, name: `${sys.name} ${flow}` });
  /** The loadgen on pubs -> subs; subscribers on `sub` when it differs. */
  const flowRun = (s: ScenarioDef, pub: Endpoint, sub: Endpoint, v: Variant, round: number, oo: Options = o) => {
    const d = { ...s, args: [...s.args, ...(sub.port !== pub.port ? ["--sub-host", sub.host, "--sub-port", String(sub.port)] : [])] };
    return runLoadgen(oo, d, pub, v, round, out, cPath);
  };
  /** Unrecorded probe runs until one delivers everything (the bridge is up and carries messages). */
  const probe = async (pub: Endpoint, sub: Endpoint, v: Variant, round: number): Promise<boolean> => {
    for (let i = 1; i <= 3; i++) {
      const r = await flowRun(def(`bridge.probe${i}`), pub, sub, v, round, { ...o, duration: PROBE_SECS, warmup: 0 });
      if (!runFailed(r) && Number(r.json.unique) > 0) return true;
      progress(`  r${round} ${v.name}: probe ${i} failed rc=${r.rc} ${r.note} (${r.log})`);
    }
    return false;
  };
  const measure = async (sys: BridgeSystem, flow: Flow, edge: ManagedBroker & { httpPort?: number }, up: ManagedBroker & { httpPort?: number }, round: number) => {
    const v = variant(sys, flow);
    if (!(await probe(edge.ep, up.ep, v, round))) {
      problems.push(`${v.name} r${round}: no probe run got through (edge ${edge.log}, upstream ${up.log}); not measured`);
      return;
    }
    const mb = { e: await metrics(edge.httpPort ?? 0), u: flow === "bridge" ? await metrics(up.httpPort ?? 0) : {} };
    const c0 = { e: cpuSecs(edge.proc.pid), u: cpuSecs(up.proc.pid), t: performance.now() };
    const r = await flowRun(def(BRIDGE_NAME), edge.ep, up.ep, v, round);
    const secs = (performance.now() - c0.t) / 1000;
    const c1 = { e: cpuSecs(edge.proc.pid), u: cpuSecs(up.proc.pid) };
    const pct = (a: number, b: number) => (a < 0 || b < 0 ? -1 : Math.round(((b - a) / secs) * 1000) / 10);
    const m = { ...metricDelta(mb.e, await metrics(edge.httpPort ?? 0), flow === "bridge" ? "edge." : "") };
    if (flow === "bridge") Object.assign(m, metricDelta(mb.u, await metrics(up.httpPort ?? 0), "upstream."));
    const run: BridgeRun = { system: sys.id, flow, round, result: r, cpuEdge: pct(c0.e, c1.e), cpuUpstream: flow === "bridge" ? pct(c0.u, c1.u) : -1, metrics: m };
    runs.push(run);
    const j = r.json;
    const mm = flow === "bridge" && sys.kind === "bunmq" ? ` edge: out=${m["edge.bunmq_bridge_messages_total.out"]} dropped=${m["edge.bunmq_bridge_dropped_total"]} queued=${m["edge.bunmq_bridge_queued_messages"]} reconnects=${m["edge.bunmq_bridge_connects_total"]}` : "";
    progress(
      `  r${round} ${v.name.padEnd(24)} ${r.tool} rc=${r.rc} rate=${j.rate} sent=${j.sent} recv=${j.unique} lost=${j.lost} dup=${j.dup} ooo=${j.ooo} p50=${j.p50_us}us p99=${j.p99_us}us ` +
        `cpu ${flow === "bridge" ? `edge=${run.cpuEdge}% upstream=${run.cpuUpstream}%` : `broker=${run.cpuEdge}%`} lg=${j.loadgen_cpu_pct}%${mm}` + (runFailed(r) ? `  FAILED (${r.log})` : ""),
    );
  };

  try {
    for (let round = 1; round <= o.rounds && !interrupted; round++) {
      for (const sys of systems) {
        if (interrupted) break;
        const tag = (role: string) => `${sys.id}-${role}`;
        let up: ManagedBroker & { httpPort?: number };
        if (sys.kind === "bunmq") up = await startBunmqConfig(bunmqConfig(null), out, tag("upstream"), "bunmq upstream");
        else up = await startMosquitto(false, out, { transport: "tcp", certs: null, nodelay: sys.nodelay, label: `${sys.name} upstream` });
        live.add(up);
        await measure(sys, "direct", up, up, round);
        if (interrupted) {
          await stop(up);
          break;
        }
        let edge: ManagedBroker & { httpPort?: number };
        if (sys.kind === "bunmq") {
          edge = await startBunmqConfig(bunmqConfig({ port: up.ep.port, proto, extra: o.bridgeConfig }), out, tag("edge"), "bunmq edge");
          live.add(edge);
          // the bridge connects on its own: wait for it (the probe run then checks it carries messages)
          const end = Date.now() + 15000;
          while (Date.now() < end && (await metrics(edge.httpPort!)).bunmq_bridge_connected !== 1) await Bun.sleep(50);
        } else {
          edge = await startMosquitto(false, out, { transport: "tcp", certs: null, nodelay: sys.nodelay, label: `${sys.name} edge`, extra: mosquittoBridge(up.ep.port, proto) });
          live.add(edge);
        }
        await measure(sys, "bridge", edge, up, round);
        await stop(edge);
        await stop(up);
      }
    }
  } finally {
    for (const b of [...live]) await stop(b);
  }
  return { systems, runs, problems };
}

/** A bunmq config: TCP and http listeners on port 0, memory; with `bridge`, a bridge "up" of bench/# out at QoS 1 to 127.0.0.1:port. */
export function bunmqConfig(bridge: { port: number; proto: number; extra: Record<string, unknown> } | null): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    listeners: [
      { host: "127.0.0.1", port: 0 },
      { protocol: "http", host: "127.0.0.1", port: 0 },
    ],
    persistence: { path: ":memory:" },
  };
  if (bridge)
    cfg.bridges = [
      {
        name: "up",
        address: `mqtt://127.0.0.1:${bridge.port}`,
        protocolVersion: bridge.proto,
        topics: [{ pattern: "bench/#", direction: "out", qos: 1 }],
        ...bridge.extra,
      },
    ];
  return cfg;
}

/** The Mosquitto edge's bridge section (the rest is the reference config). */
export function mosquittoBridge(port: number, proto: number): string[] {
  return ["connection up", `address 127.0.0.1:${port}`, "topic bench/# out 1", `bridge_protocol_version ${proto === 5 ? "mqttv50" : "mqttv311"}`];
}
