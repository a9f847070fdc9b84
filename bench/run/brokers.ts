/**
 * @module run/brokers
 * Broker processes: starting bunmq (port 0, the port read from its
 * "listening on" line; memory or a fresh SQLite file with the group's
 * durability) and Mosquitto (the reference config, on a free port), stopping
 * them, and the endpoint of a broker the runner does not manage. Logs and
 * configs go to the output directory.
 */
import type { Subprocess } from "bun";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BROKER_TS, die, MOSQUITTO } from "./env.ts";
import type { BunmqMode } from "./matrix.ts";

export interface Endpoint {
  host: string;
  port: number;
  pid: number;
}

export interface ManagedBroker {
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
export async function startBunmq(mode: BunmqMode, out: string): Promise<ManagedBroker> {
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

export async function startMosquitto(persist: boolean, out: string): Promise<ManagedBroker> {
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

export async function stopBroker(b: ManagedBroker | null): Promise<void> {
  if (!b || b.proc.exitCode !== null) return;
  b.proc.kill("SIGTERM");
  const t = setTimeout(() => b.proc.kill("SIGKILL"), 3000);
  await b.proc.exited;
  clearTimeout(t);
}

export function parseHostPort(s: string, pid: number): Endpoint {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)), pid };
}
