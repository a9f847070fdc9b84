/**
 * @module run/brokers
 * Broker processes: starting bunmq (port 0, the port read from its
 * "listening on" line; memory or a fresh SQLite file with the group's
 * durability; one listener of the run's transport) and Mosquitto (the
 * reference config, on a free port, with the matching listener and
 * optionally `set_tcp_nodelay true`), stopping them, whether this
 * Mosquitto build has websockets, and the endpoint of a broker the runner
 * does not manage. Logs and configs go to the output directory.
 */
import type { Subprocess } from "bun";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchCerts } from "./certs.ts";
import { BROKER_DENO_TS, BROKER_TS, DENO, die, MOSQUITTO } from "./env.ts";
import type { BunmqMode } from "./matrix.ts";
import { bunmqListener, bunmqProtocol, mosquittoListener, type Transport, WS_PATH } from "./transports.ts";

export interface Endpoint {
  host: string;
  port: number;
  pid: number;
  transport: Transport;
  /** CA the loadgen verifies the broker's certificate with; "" = no verification. */
  cafile: string;
  /** ws / wss: the HTTP path. */
  wsPath: string;
}

export interface ManagedBroker {
  proc: Subprocess;
  ep: Endpoint;
  log: string;
  label: string;
}

export async function freePort(): Promise<number> {
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
/**
 * A fresh bunmq. Over tcp it is configured by flags alone (as before
 * transports existed); any other transport gets a config file whose only
 * listener is of that protocol (TLS with the run's certificates).
 */
export async function startBunmq(
  mode: BunmqMode,
  out: string,
  transport: Transport = "tcp",
  certs: BenchCerts | null = null,
  runtime: "bun" | "deno" = "bun",
): Promise<ManagedBroker> {
  const n = ++seq;
  const tag = (transport === "tcp" ? mode : `${mode}.${transport}`) + (runtime === "deno" ? ".deno" : "");
  const log = join(out, `bunmq.${n}.${tag}.log`);
  const entry = runtime === "deno" ? [DENO, "run", "-A", BROKER_DENO_TS] : [process.execPath, BROKER_TS];
  const args = [...entry, "--port", "0", "--log-level", "warn"];
  const cfg: Record<string, unknown> = {};
  if (transport !== "tcp") cfg.listeners = [bunmqListener(transport, certs)];
  if (mode === "memory") args.push("--data", ":memory:");
  else {
    const db = join(out, `bunmq-${mode}.db`);
    for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]) rmSync(f, { force: true });
    cfg.persistence = { path: db, durability: mode };
    args.push("--data", db);
  }
  if (Object.keys(cfg).length) {
    const file = join(out, `bunmq-${tag.replaceAll(".", "-")}.json`);
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    args.push("--config", file);
  }
  for (const f of [log, `${log}.err`]) rmSync(f, { force: true }); // an earlier run's log (same --out) has another port
  const proc = Bun.spawn(args, { stdout: Bun.file(log), stderr: Bun.file(`${log}.err`), stdin: "ignore" });
  const end = Date.now() + 15000;
  const line = new RegExp(`bunmq listening on ${bunmqProtocol(transport)}://(\\[[^\\]]+\\]|[^\\s:/]+):(\\d+)(/[^\\s]*)?`);
  while (Date.now() < end) {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    const m = line.exec(text);
    if (m) {
      const host = m[1]!.replace(/^\[|\]$/g, "");
      const ep: Endpoint = { host, port: Number(m[2]), pid: proc.pid, transport, cafile: certs?.ca ?? "", wsPath: m[3] ?? WS_PATH };
      const what = [mode, transport === "tcp" ? "" : transport, runtime === "deno" ? "deno" : ""].filter(Boolean).join(", ");
      return { proc, ep, log, label: `bunmq (${what})` };
    }
    if (proc.exitCode !== null) break;
    await Bun.sleep(20);
  }
  proc.kill("SIGKILL");
  const err = existsSync(`${log}.err`) ? readFileSync(`${log}.err`, "utf8") : "";
  die(`bunmq did not start (mode ${mode}, transport ${transport}, ${runtime}); log ${log}\n${err.slice(-2000)}`, 1);
}

/**
 * A fresh bunmq from a whole config `cfg` (written to OUT/bunmq.N.TAG.json;
 * log level warn): its first MQTT listener (a plain mqtt one on port 0) is
 * the endpoint; `httpPort` is that of an `http` listener, if it has one
 * (0 otherwise). Used by the bridge scenario (an edge with `bridges[]`).
 */
export async function startBunmqConfig(cfg: Record<string, unknown>, out: string, tag: string, label: string): Promise<ManagedBroker & { httpPort: number }> {
  const n = ++seq;
  const log = join(out, `bunmq.${n}.${tag}.log`);
  const file = join(out, `bunmq.${n}.${tag}.json`);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  const wantHttp = Array.isArray(cfg.listeners) && cfg.listeners.some((l) => (l as { protocol?: string }).protocol === "http");
  // a log left by an earlier run in the same --out directory would show its old port
  for (const f of [log, `${log}.err`]) rmSync(f, { force: true });
  const proc = Bun.spawn([process.execPath, BROKER_TS, "--config", file, "--log-level", "warn"], { stdout: Bun.file(log), stderr: Bun.file(`${log}.err`), stdin: "ignore" });
  const end = Date.now() + 15000;
  while (Date.now() < end) {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    const m = /bunmq listening on mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(text);
    const h = /bunmq listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
    if (m && (h || !wantHttp)) {
      const ep: Endpoint = { host: "127.0.0.1", port: Number(m[1]), pid: proc.pid, transport: "tcp", cafile: "", wsPath: WS_PATH };
      return { proc, ep, log, label, httpPort: h ? Number(h[1]) : 0 };
    }
    if (proc.exitCode !== null) break;
    await Bun.sleep(20);
  }
  proc.kill("SIGKILL");
  const err = existsSync(`${log}.err`) ? readFileSync(`${log}.err`, "utf8") : "";
  die(`bunmq did not start (${label}); config ${file}, log ${log}\n${err.slice(-2000)}`, 1);
}

export interface MosquittoOptions {
  transport: Transport;
  certs: BenchCerts | null;
  /** `set_tcp_nodelay true` (Mosquitto's default is false: Nagle on). */
  nodelay: boolean;
  /** More config lines at the end (the bridge scenario's `connection` section). */
  extra?: string[];
  /** Label (default: "mosquitto" and what differs from the reference config). */
  label?: string;
}

export async function startMosquitto(persist: boolean, out: string, mo: MosquittoOptions = { transport: "tcp", certs: null, nodelay: false }): Promise<ManagedBroker> {
  const n = ++seq;
  const port = await freePort();
  const conf = join(out, `mosquitto.${n}.conf`);
  const lines = [
    ...mosquittoListener(mo.transport, port, mo.transport === "ws" || mo.transport === "wss" ? await freePort() : 0, mo.certs),
    "allow_anonymous true",
    "max_queued_messages 1000000",
    "max_queued_bytes 0",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "connection_messages false",
  ];
  if (mo.nodelay) lines.push("set_tcp_nodelay true");
  if (persist) {
    const dir = join(out, `mosquitto-db.${n}`);
    mkdirSync(dir, { recursive: true });
    // mosquitto started as root drops to user "mosquitto": let it write there
    chmodSync(out, 0o755);
    chmodSync(dir, 0o777);
    lines.push("persistence true", `persistence_location ${dir}/`, "autosave_interval 1");
  } else lines.push("persistence false");
  if (mo.extra) lines.push(...mo.extra);
  writeFileSync(conf, lines.join("\n") + "\n");
  const log = join(out, `mosquitto.${n}.log`);
  const proc = Bun.spawn([MOSQUITTO, "-c", conf], { stdout: Bun.file(log), stderr: Bun.file(`${log}.err`), stdin: "ignore" });
  if (!(await waitPort("127.0.0.1", port, 5000))) {
    proc.kill("SIGKILL");
    die(`mosquitto did not start; see ${log}.err and ${conf}`, 1);
  }
  const ep: Endpoint = { host: "127.0.0.1", port, pid: proc.pid, transport: mo.transport, cafile: mo.certs?.ca ?? "", wsPath: WS_PATH };
  const what = [mo.transport === "tcp" ? "" : mo.transport, persist ? "persistence, autosave 1 s" : "", mo.nodelay ? "set_tcp_nodelay true" : ""].filter(Boolean);
  return { proc, ep, log, label: mo.label ?? (what.length ? `mosquitto (${what.join(", ")})` : "mosquitto") };
}

let wsProbe: Promise<string> | null = null;
/**
 * Whether this Mosquitto can serve MQTT over WebSocket: "" when a
 * `protocol websockets` listener accepts connections under
 * `mosquitto -c conf -v`, else the reason (its last log lines). Checked
 * once per run.
 */
export function mosquittoWebsockets(out: string): Promise<string> {
  wsProbe ??= (async () => {
    const port = await freePort();
    const conf = join(out, "mosquitto.ws-probe.conf");
    writeFileSync(conf, [...mosquittoListener("ws", port, await freePort(), null), "allow_anonymous true", "persistence false", "log_dest stderr"].join("\n") + "\n");
    const log = join(out, "mosquitto.ws-probe.log");
    const proc = Bun.spawn([MOSQUITTO, "-c", conf, "-v"], { stdout: Bun.file(log), stderr: Bun.file(log), stdin: "ignore" });
    const up = await waitPort("127.0.0.1", port, 3000);
    proc.kill("SIGKILL");
    await proc.exited;
    if (up) return "";
    const text = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").slice(-3).join(" / ") : "";
    return `${MOSQUITTO} did not serve a websockets listener (${text || "no output"}; ${log})`;
  })();
  return wsProbe;
}

export async function stopBroker(b: ManagedBroker | null): Promise<void> {
  if (!b || b.proc.exitCode !== null) return;
  b.proc.kill("SIGTERM");
  const t = setTimeout(() => b.proc.kill("SIGKILL"), 3000);
  await b.proc.exited;
  clearTimeout(t);
}

/** A broker the runner does not manage: its TLS certificate is not verified (pass `-- --cafile FILE` for that). */
export function parseHostPort(s: string, pid: number, transport: Transport = "tcp"): Endpoint {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)), pid, transport, cafile: "", wsPath: WS_PATH };
}
