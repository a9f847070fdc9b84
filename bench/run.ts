#!/usr/bin/env bun
/**
 * bench/run.ts: `bun run bench`. Runs the scenario matrix against bunmq (and
 * optionally another broker) and prints markdown tables.
 *
 * By default it starts bunmq itself, a fresh process per scenario group
 * (`--data :memory:`; the persist rows use a SQLite file with durability
 * "ack" or "interval"), and drives it with bench/loadgen.ts (or the C
 * mqtt-loadgen with `--loadgen c`). See bench/README.md.
 */
import type { Subprocess } from "bun";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const HERE = dirname(Bun.fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..");
const BROKER_TS = join(ROOT, "broker.ts");
const LOADGEN_TS = join(HERE, "loadgen.ts");
const C_SRC_CANDIDATES = [process.env.LOADGEN_SRC ?? "", "/work/shared/bench/loadgen.c"].filter(Boolean);
const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p)) ?? "mosquitto";

const USAGE = `usage: bun run bench [options] [-- extra loadgen args]

  (default)            start bunmq (fresh process per scenario group, --data :memory:)
                       and run the matrix once
  --target HOST:PORT   measure an already running broker instead (no restarts)
  --pid PID            its PID (broker CPU% and RSS per connection)
  --vs HOST:PORT       also run every scenario against this broker, alternating
                       A B A B for --rounds rounds (default 3), and print medians
                       and ratios; "--vs mosquitto" starts ${MOSQUITTO} itself
                       (reference config, fresh process per group, persistence
                       with autosave 1 s for the persist rows)
  --vs-pid PID         PID of the --vs broker (CPU%, RSS)
  --names A,B          labels (default bunmq,mosquitto|other)
  --rounds N           rounds (default 1, or 3 with --vs)
  --duration S         measured seconds per message scenario (default 2)
  --warmup S           unmeasured seconds before that (default 0.5)
  --only a,b           scenarios or groups: fanin,fanin_q1,fanout,pairs,latency,conn,persist,...
                       (overload_q1 runs only when named here)
  --loadgen ts|c       load generator: bench/loadgen.ts (default) or the C mqtt-loadgen
                       ($LOADGEN, else /tmp/mqtt-loadgen; built from loadgen.c if missing).
                       The C tool has no persist scenario: those rows always use ts.
  --mqtt 4|5           protocol (default 4 = 3.1.1)
  --json               print one JSON document instead of markdown
  --out DIR            keep logs there (default: a new /tmp/bunmq-bench.* directory)
  --list               list the scenarios and exit`;

// ---------------------------------------------------------------- options
interface Options {
  target: string;
  pid: number;
  vs: string;
  vsPid: number;
  names: [string, string];
  rounds: number;
  duration: number;
  warmup: number;
  only: string[];
  loadgen: "ts" | "c";
  mqtt: number;
  json: boolean;
  out: string;
  extra: string[];
}

function die(msg: string, code = 2): never {
  console.error(`bench: ${msg}`);
  process.exit(code);
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    target: "", pid: 0, vs: "", vsPid: 0, names: ["bunmq", ""], rounds: 0, duration: 2, warmup: 0.5,
    only: [], loadgen: "ts", mqtt: 4, json: false, out: "", extra: [],
  };
  let namesSet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) die(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const num = (): number => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < 0) die(`${a}: bad number`);
      return v;
    };
    switch (a) {
      case "--target": o.target = val(); break;
      case "--pid": o.pid = num(); break;
      case "--vs": o.vs = val(); break;
      case "--vs-pid": o.vsPid = num(); break;
      case "--names": {
        const [x, y] = val().split(",");
        if (!x || !y) die("--names A,B");
        o.names = [x, y];
        namesSet = true;
        break;
      }
      case "--rounds": o.rounds = Math.max(1, Math.floor(num())); break;
      case "--duration": o.duration = num(); break;
      case "--warmup": o.warmup = num(); break;
      case "--only": o.only = val().split(",").map((s) => s.trim()).filter(Boolean); break;
      case "--loadgen": {
        const v = val();
        if (v !== "ts" && v !== "c") die("--loadgen ts|c");
        o.loadgen = v;
        break;
      }
      case "--mqtt": o.mqtt = num(); break;
      case "--json": o.json = true; break;
      case "--out": o.out = val(); break;
      case "--list":
        for (const s of SCENARIOS) console.log(`${s.name.padEnd(17)} ${s.group.padEnd(17)} ${s.what}`);
        process.exit(0);
      case "-h":
      case "--help": console.log(USAGE); process.exit(0);
      case "--": o.extra = argv.slice(i + 1); i = argv.length; break;
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.mqtt !== 4 && o.mqtt !== 5) die("--mqtt 4|5");
  if (o.target && !/^[^:]+:\d+$/.test(o.target)) die("--target HOST:PORT");
  if (o.vs && o.vs !== "mosquitto" && !/^[^:]+:\d+$/.test(o.vs)) die("--vs HOST:PORT or --vs mosquitto");
  if (!o.rounds) o.rounds = o.vs ? 3 : 1;
  if (!namesSet) o.names = [o.target ? "target" : "bunmq", o.vs === "mosquitto" ? "mosquitto" : "other"];
  return o;
}

// -------------------------------------------------------------- scenarios
/** How a managed bunmq is started for a group. */
type BunmqMode = "memory" | "ack" | "interval";

interface ScenarioDef {
  name: string;
  /** A fresh broker process per group (managed brokers only). */
  group: string;
  what: string;
  args: string[];
  kind: "msg" | "latency" | "conn";
  /** Managed bunmq variant (persist rows). */
  mode: BunmqMode;
  /** Only with --only. */
  optIn?: boolean;
  /** The C tool cannot run it. */
  tsOnly?: boolean;
  /** Rows sharing a key share the B run (persist: one mosquitto run per round). */
  bKey?: string;
}

const W0 = ["--e2e-window", "1000"];
const W1 = ["--e2e-window", "256"];
const SCENARIOS: ScenarioDef[] = [
  { name: "fanin_q0", group: "fanin", kind: "msg", mode: "memory", what: "10 publishers -> 1 subscriber (wildcard), QoS 0", args: ["fanin", "--pubs", "10", "--qos", "0", ...W0] },
  { name: "fanin_q1", group: "fanin", kind: "msg", mode: "memory", what: "10 publishers -> 1 subscriber (wildcard), QoS 1, in-flight 64", args: ["fanin", "--pubs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "fanin_q2", group: "fanin", kind: "msg", mode: "memory", what: "10 publishers -> 1 subscriber (wildcard), QoS 2, in-flight 20", args: ["fanin", "--pubs", "10", "--qos", "2", "--inflight", "20", ...W1] },
  { name: "fanout_q0", group: "fanout", kind: "msg", mode: "memory", what: "1 publisher -> 10 subscribers, QoS 0 (deliveries/s)", args: ["fanout", "--subs", "10", "--qos", "0", ...W0] },
  { name: "fanout_q1", group: "fanout", kind: "msg", mode: "memory", what: "1 publisher -> 10 subscribers, QoS 1 (deliveries/s)", args: ["fanout", "--subs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "pairs_q1", group: "pairs", kind: "msg", mode: "memory", what: "20 publisher/subscriber pairs, QoS 1, max rate", args: ["pairs", "--pairs", "20", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "latency_q1", group: "pairs", kind: "latency", mode: "memory", what: "10 pairs x 500 msg/s, QoS 1 (read p50/p99 here)", args: ["pairs", "--pairs", "10", "--qos", "1", "--rate", "500"] },
  { name: "conn_1000", group: "conn", kind: "conn", mode: "memory", what: "1000 CONNECT/CONNACK, 64 in parallel; 1 s idle hold", args: ["conn", "--conns", "1000", "--hold", "1"] },
  // not in the default matrix (--only overload): publishers outrun the subscriber with no end-to-end
  // window; every PUBACKed message must still arrive (the check is QoS 1 loss)
  { name: "overload_q1", group: "overload", kind: "msg", mode: "memory", optIn: true, what: "10 publishers -> 1 subscriber, QoS 1, in-flight 256, no e2e window (opt-in)", args: ["fanin", "--pubs", "10", "--qos", "1", "--inflight", "256"] },
  { name: "persist_ack", group: "persist_ack", kind: "msg", mode: "ack", tsOnly: true, bKey: "persist", what: "10 pairs, QoS 1 to online persistent sessions; SQLite, durability ack", args: ["persist", "--pairs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "persist_interval", group: "persist_interval", kind: "msg", mode: "interval", tsOnly: true, bKey: "persist", what: "10 pairs, QoS 1 to online persistent sessions; SQLite, durability interval", args: ["persist", "--pairs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "persist_mem", group: "persist_mem", kind: "msg", mode: "memory", tsOnly: true, bKey: "persist", what: "10 pairs, QoS 1 to online persistent sessions; --data :memory:", args: ["persist", "--pairs", "10", "--qos", "1", "--inflight", "64", ...W1] },
];

function selectScenarios(o: Options): ScenarioDef[] {
  let list = SCENARIOS.filter((s) => !s.optIn);
  if (o.only.length) {
    list = SCENARIOS;
    const alias: Record<string, string> = { latency: "latency_q1", conn: "conn_1000" };
    list = list.filter((s) =>
      o.only.some((t) => {
        const tok = alias[t] ?? t;
        return s.name === tok || s.group === tok || s.name.startsWith(`${tok}_`);
      }),
    );
    if (!list.length) die(`--only ${o.only.join(",")}: no such scenario (see --list)`);
  }
  // against an already running bunmq the durability is whatever it runs with: one persist row
  if (o.target) {
    let seen = false;
    list = list
      .filter((s) => {
        if (s.bKey !== "persist") return true;
        if (seen) return false;
        seen = true;
        return true;
      })
      .map((s) => (s.bKey === "persist" ? { ...s, name: "persist", group: "persist", what: "10 pairs, QoS 1 to online persistent sessions" } : s));
  }
  return list;
}

// --------------------------------------------------------------- brokers
interface Endpoint {
  host: string;
  port: number;
  pid: number;
}

interface ManagedBroker {
  proc: Subprocess;
  ep: Endpoint;
  log: string;
  label: string;
}

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

async function waitPort(host: string, port: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const s = await Bun.connect({ hostname: host, port, socket: { data() {} } });
      s.end();
      return true;
    } catch {
      await Bun.sleep(50);
    }
  }
  return false;
}

let seq = 0;
async function startBunmq(mode: BunmqMode, out: string): Promise<ManagedBroker> {
  const n = ++seq;
  const log = join(out, `bunmq.${n}.${mode}.log`);
  const args = [process.execPath, BROKER_TS, "--port", "0", "--log-level", "warn"];
  if (mode === "memory") args.push("--data", ":memory:");
  else {
    const db = join(out, `bunmq-${mode}.db`);
    for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]) rmSync(f, { force: true });
    const cfg = join(out, `bunmq-${mode}.json`);
    writeFileSync(cfg, JSON.stringify({ persistence: { path: db, durability: mode } }, null, 2));
    args.push("--config", cfg, "--data", db);
  }
  const proc = Bun.spawn(args, { stdout: Bun.file(log), stderr: Bun.file(`${log}.err`), stdin: "ignore" });
  const end = Date.now() + 15000;
  while (Date.now() < end) {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    const m = /bunmq listening on mqtt:\/\/([^\s]+):(\d+)/.exec(text);
    if (m) {
      const host = m[1]!.replace(/^\[|\]$/g, "");
      return { proc, ep: { host, port: Number(m[2]), pid: proc.pid }, log, label: `bunmq (${mode})` };
    }
    if (proc.exitCode !== null) break;
    await Bun.sleep(20);
  }
  proc.kill("SIGKILL");
  const err = existsSync(`${log}.err`) ? readFileSync(`${log}.err`, "utf8") : "";
  die(`bunmq did not start (mode ${mode}); log ${log}\n${err.slice(-2000)}`, 1);
}

async function startMosquitto(persist: boolean, out: string): Promise<ManagedBroker> {
  const n = ++seq;
  const port = await freePort();
  const conf = join(out, `mosquitto.${n}.conf`);
  const lines = [
    `listener ${port} 127.0.0.1`,
    "allow_anonymous true",
    "max_queued_messages 1000000",
    "max_queued_bytes 0",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "connection_messages false",
  ];
  if (persist) {
    const dir = join(out, `mosquitto-db.${n}`);
    mkdirSync(dir, { recursive: true });
    // mosquitto started as root drops to user "mosquitto": let it write there
    chmodSync(out, 0o755);
    chmodSync(dir, 0o777);
    lines.push("persistence true", `persistence_location ${dir}/`, "autosave_interval 1");
  } else lines.push("persistence false");
  writeFileSync(conf, lines.join("\n") + "\n");
  const log = join(out, `mosquitto.${n}.log`);
  const proc = Bun.spawn([MOSQUITTO, "-c", conf], { stdout: Bun.file(log), stderr: Bun.file(`${log}.err`), stdin: "ignore" });
  if (!(await waitPort("127.0.0.1", port, 5000))) {
    proc.kill("SIGKILL");
    die(`mosquitto did not start; see ${log}.err`, 1);
  }
  return { proc, ep: { host: "127.0.0.1", port, pid: proc.pid }, log, label: persist ? "mosquitto (persistence, autosave 1 s)" : "mosquitto" };
}

async function stopBroker(b: ManagedBroker | null): Promise<void> {
  if (!b || b.proc.exitCode !== null) return;
  b.proc.kill("SIGTERM");
  const t = setTimeout(() => b.proc.kill("SIGKILL"), 3000);
  await b.proc.exited;
  clearTimeout(t);
}

function parseHostPort(s: string, pid: number): Endpoint {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)), pid };
}

// -------------------------------------------------------------- loadgen
function cLoadgen(): string {
  const p = process.env.LOADGEN || "/tmp/mqtt-loadgen";
  if (existsSync(p)) return p;
  const src = C_SRC_CANDIDATES.find((s) => existsSync(s));
  if (!src) die(`C loadgen not found at ${p} and no loadgen.c to build it from`);
  console.error(`bench: building ${p} from ${src}`);
  const r = Bun.spawnSync(["gcc", "-O2", "-o", p, src], { stderr: "inherit" });
  if (r.exitCode !== 0 || !existsSync(p)) die(`could not build ${p}`);
  return p;
}

type Json = Record<string, number | string>;

interface RunResult {
  scenario: string;
  side: "A" | "B";
  round: number;
  tool: "ts" | "c";
  rc: number;
  json: Json;
  log: string;
  note: string;
}

async function runLoadgen(
  o: Options,
  s: ScenarioDef,
  ep: Endpoint,
  side: "A" | "B",
  round: number,
  out: string,
  cPath: string,
): Promise<RunResult> {
  const tool: "ts" | "c" = o.loadgen === "c" && !s.tsOnly ? "c" : "ts";
  const args = [...s.args];
  if (s.kind !== "conn") args.push("--duration", String(o.duration), "--warmup", String(o.warmup));
  args.push("--host", ep.host, "--port", String(ep.port), "--mqtt", String(o.mqtt));
  if (ep.pid) args.push("--broker-pid", String(ep.pid));
  args.push(...o.extra, "-q");
  const cmd = tool === "c" ? [cPath, ...args] : [process.execPath, LOADGEN_TS, ...args];
  const log = join(out, `${s.name}.${side}.r${round}.log`);
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
  const facts = ["lost", "dup", "dup_noflag", "ooo", "proto_err", "unexpected_close", "pub_rejected", "conn_fail", "timed_out", "drain_timeout"]
    .filter((k) => Number(json[k]) > 0)
    .map((k) => `${k}=${json[k]}`);
  const note = [...facts, ...stderr.trim().split("\n").filter(Boolean).slice(0, 3)].join(" | ");
  return { scenario: s.name, side, round, tool, rc, json, log, note };
}

// ---------------------------------------------------------------- tables
function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function fmt(x: number | null | undefined, unit = ""): string {
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
function us(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x) || x < 0) return "-";
  if (x >= 10000) return `${(x / 1000).toFixed(1)} ms`;
  if (x >= 1000) return `${(x / 1000).toFixed(2)} ms`;
  return `${x.toFixed(0)} µs`;
}

function metricsFor(s: ScenarioDef): { key: string; label: string; higher: boolean; f: (x: number | null) => string }[] {
  const rate = { key: "rate", label: s.name.startsWith("fanout") ? "deliveries/s" : "msg/s", higher: true, f: (x: number | null) => fmt(x) };
  const p50 = { key: "p50_us", label: "p50", higher: false, f: us };
  const p99 = { key: "p99_us", label: "p99", higher: false, f: us };
  if (s.kind === "conn")
    return [
      { key: "conn_rate", label: "conn/s", higher: true, f: (x) => fmt(x) },
      { key: "cp99_us", label: "connect p99", higher: false, f: us },
      { key: "rss_per_conn_b", label: "RSS B/conn", higher: false, f: (x) => fmt(x) },
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

interface Row {
  scenario: string;
  what: string;
  side: "A" | "B";
  broker: string;
  tool: string;
  runs: number;
  failed: number;
  medians: Record<string, number | null>;
  notes: string[];
}

function summarize(
  o: Options,
  list: ScenarioDef[],
  results: RunResult[],
  labelOf: (s: ScenarioDef, side: "A" | "B") => string,
): Row[] {
  const rows: Row[] = [];
  const keys = ["rate", "send_rate", "p50_us", "p99_us", "p999_us", "max_us", "lost", "dup", "ooo", "conn_rate", "cp50_us", "cp99_us", "rss_per_conn_b", "rss_base_kb", "rss_held_kb", "broker_cpu_pct", "loadgen_cpu_pct"];
  for (const s of list) {
    for (const side of ["A", "B"] as const) {
      if (side === "B" && !o.vs) continue;
      const key = side === "B" && s.bKey ? s.bKey : s.name;
      const rs = results.filter((r) => r.side === side && r.scenario === key);
      if (!rs.length) continue;
      const medians: Record<string, number | null> = {};
      for (const k of keys) medians[k] = pick(rs, k);
      const failedRuns = rs.filter((r) => r.rc !== 0 || Number(r.json.ok) !== 1);
      const notes = [...new Set(failedRuns.map((r) => `rc=${r.rc}${r.note ? `: ${r.note}` : ""} (${r.log})`))];
      rows.push({
        scenario: s.name, what: s.what, side, broker: labelOf(s, side), tool: rs[0]!.tool, runs: rs.length,
        failed: failedRuns.length, medians, notes,
      });
    }
  }
  return rows;
}

function markdownSingle(o: Options, list: ScenarioDef[], rows: Row[]): string {
  const out: string[] = [];
  out.push("| scenario | broker | loadgen | msg/s (conn/s) | p50 | p99 | lost | broker CPU | loadgen CPU | ok |");
  out.push("|---|---|---|---:|---:|---:|---:|---:|---:|---|");
  for (const s of list) {
    const r = rows.find((x) => x.scenario === s.name && x.side === "A");
    if (!r) continue;
    const m = r.medians;
    const conn = s.kind === "conn";
    const rate = conn ? `${fmt(m.conn_rate)} conn/s` : s.kind === "latency" ? `${fmt(m.rate)} (rate-limited)` : fmt(m.rate);
    const p50 = conn ? us(m.cp50_us) : us(m.p50_us);
    const p99 = conn ? us(m.cp99_us) : us(m.p99_us);
    const lost = conn ? (m.rss_per_conn_b !== null && m.rss_per_conn_b >= 0 ? `RSS ${fmt(m.rss_per_conn_b)} B/conn` : "-") : fmt(m.lost);
    const okc = r.failed ? `**FAILED ${r.failed}/${r.runs}**` : "ok";
    out.push(
      `| ${s.name} | ${r.broker} | ${r.tool} | ${rate} | ${p50} | ${p99} | ${lost} | ${fmt(m.broker_cpu_pct, "%")} | ${fmt(m.loadgen_cpu_pct, "%")} | ${okc} |`,
    );
  }
  return out.join("\n");
}

function markdownVs(o: Options, list: ScenarioDef[], rows: Row[]): string {
  const [A, B] = o.names;
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

// ------------------------------------------------------------------ main
async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const list = selectScenarios(o);
  const out = o.out || mkdtempSync(join(tmpdir(), "bunmq-bench."));
  mkdirSync(out, { recursive: true });
  const cPath = o.loadgen === "c" ? cLoadgen() : "";
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
  const t0 = Date.now();
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

  const rows = summarize(o, list, results, labelOf);
  const failedRuns = results.filter((r) => r.rc !== 0 || Number(r.json.ok) !== 1);
  const secs = (Date.now() - t0) / 1000;

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
  process.exit(failedRuns.length || brokerProblems.some((p) => p.includes("exited")) ? 1 : 0);
}

await main();
