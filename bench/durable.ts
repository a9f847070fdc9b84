#!/usr/bin/env bun
/**
 * What durable state costs: QoS 1 to online persistent subscribers with
 * SQLite in "ack" durability (nothing acknowledged before it is committed)
 * against the same broker on `:memory:`, alternating A B A B with a fresh
 * broker process per run, driven by the C load generator:
 *
 *   mqtt-loadgen pairs --pairs 10 --qos 1 --persistent --e2e-window 256
 *
 * Prints each run and the median ratio ack / memory.
 *
 *   bun bench/durable.ts [--rounds 3] [--duration 5] [--mode ack|interval] [-- extra loadgen args]
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ManagedBroker, startBunmq, stopBroker } from "./run/brokers.ts";
import { cLoadgen } from "./run/loadgen-run.ts";

const { values, positionals } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    duration: { type: "string", default: "5" },
    mode: { type: "string", default: "ack" },
    pairs: { type: "string", default: "10" },
  },
  allowPositionals: true,
});
const rounds = Number(values.rounds);
const mode = values.mode === "interval" ? "interval" : "ack";
const out = mkdtempSync(join(tmpdir(), "bunmq-durable-"));
const loadgen = cLoadgen();

async function run(m: "ack" | "interval" | "memory"): Promise<{ rate: number; p99: number; lost: number }> {
  const b: ManagedBroker = await startBunmq(m, out);
  try {
    const args = ["pairs", "--pairs", values.pairs!, "--qos", "1", "--persistent", "--e2e-window", "256", "--duration", values.duration!, "--warmup", "1"];
    args.push("--host", b.ep.host, "--port", String(b.ep.port), "--broker-pid", String(b.ep.pid), ...positionals, "-q");
    const p = Bun.spawn([loadgen, ...args], { stdout: "pipe", stderr: "pipe" });
    const [text, err, rc] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const line = text.trim().split("\n").pop() ?? "{}";
    const j = JSON.parse(line) as Record<string, number>;
    if (rc !== 0) console.error(`loadgen exited ${rc}: ${err.slice(-500)}`);
    return { rate: j.rate ?? 0, p99: j.p99_us ?? 0, lost: j.lost ?? 0 };
  } finally {
    await stopBroker(b);
  }
}

const ratios: number[] = [];
for (let r = 1; r <= rounds; r++) {
  const a = await run(mode);
  const m = await run("memory");
  const ratio = a.rate / m.rate;
  ratios.push(ratio);
  console.log(
    `round ${r}: ${mode} ${(a.rate / 1000).toFixed(0)}k msg/s p99 ${(a.p99 / 1000).toFixed(1)} ms lost ${a.lost} | memory ${(m.rate / 1000).toFixed(0)}k msg/s p99 ${(m.p99 / 1000).toFixed(1)} ms lost ${m.lost} | ratio ${(ratio * 100).toFixed(0)}%`,
  );
}
ratios.sort((x, y) => x - y);
console.log(`median ${mode}/memory: ${(ratios[Math.floor(ratios.length / 2)]! * 100).toFixed(0)}%  (logs: ${out})`);
