#!/usr/bin/env bun
/**
 * @module fuzz/main
 * `bun run fuzz [--count N] [--seed S] [--connections C]`: start a broker
 * process (in-memory state, log level warn, so every ERROR line is seen),
 * run two fuzz campaigns of N/2 packets each against it (campaign.ts), and
 * check, besides each campaign's own criteria, that the second campaign
 * does not raise the broker's peak RSS: what the first one left behind
 * (sessions, buffers, retained messages of fuzz topics) must be bounded.
 * Exits 1 on any failure, printing the seed to reproduce it.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type CampaignResult, runCampaign } from "./campaign.ts";

export interface FuzzResult {
  campaigns: CampaignResult[];
  failures: string[];
  stderrTail: string;
}

/**
 * RSS may go up a little in the second campaign without a leak: the
 * allocator and the GC keep freed pages for a while, and their timing
 * differs between runs. A leak grows with the packets sent; 10% (at least
 * 8 MiB) of slack tells the two apart at the campaign sizes used.
 */
const RSS_SLACK = (kb: number) => Math.max(kb * 0.1, 8 * 1024);

export async function runFuzz(opts: { count: number; seed: number; connections?: number; log?: (line: string) => void }): Promise<FuzzResult> {
  const proc = Bun.spawn([process.execPath, resolve(import.meta.dir, "../broker.ts"), "--port", "0", "--data", ":memory:", "--log-level", "warn"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let stdout = "";
  let stderr = "";
  const dec = new TextDecoder();
  (async () => {
    for await (const c of proc.stdout) stdout += dec.decode(c, { stream: true });
  })();
  (async () => {
    for await (const c of proc.stderr) stderr += dec.decode(c, { stream: true });
  })();
  const failures: string[] = [];
  const campaigns: CampaignResult[] = [];
  try {
    const end = Date.now() + 15_000;
    let m: RegExpMatchArray | null = null;
    while (!(m = stdout.match(/listening on mqtt:\/\/\S+:(\d+)/)) && Date.now() < end && proc.exitCode === null) await Bun.sleep(10);
    if (!m) throw new Error(`broker did not start\n${stderr}`);
    const port = Number(m[1]);
    const rss = () => {
      try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))?.[1] ?? 0);
      } catch {
        return 0;
      }
    };
    const errors = () => (stderr.match(/^\S+ ERROR /gm) ?? []).length;
    for (let c = 0; c < 2; c++) {
      const r = await runCampaign({ port, count: Math.ceil(opts.count / 2), seed: opts.seed + c, connections: opts.connections, rss, errors, tag: `s${opts.seed}-${c}` });
      campaigns.push(r);
      opts.log?.(summary(c + 1, r));
      for (const f of r.failures) failures.push(`campaign ${c + 1}: ${f}`);
      if (proc.exitCode !== null) {
        failures.push(`the broker exited (${proc.exitCode}) during campaign ${c + 1}`);
        break;
      }
    }
    if (campaigns.length === 2 && campaigns[1]!.peakRssKb > campaigns[0]!.peakRssKb + RSS_SLACK(campaigns[0]!.peakRssKb)) {
      failures.push(`peak RSS grew from ${campaigns[0]!.peakRssKb} KiB to ${campaigns[1]!.peakRssKb} KiB in the second campaign`);
    }
  } finally {
    proc.kill(9);
    await proc.exited;
  }
  return { campaigns, failures, stderrTail: stderr.split("\n").slice(-20).join("\n") };
}

function summary(n: number, r: CampaignResult): string {
  const rate = Math.round(r.packets / (r.durationMs / 1000));
  return (
    `campaign ${n}: ${r.packets} packets (${(r.bytes / 1e6).toFixed(1)} MB) in ${(r.durationMs / 1000).toFixed(1)} s = ${rate} packets/s; ` +
    `${r.connections} connections, ${r.closedByBroker} closed by the broker; control ${r.controlReceived}/${r.controlSent} received, ${r.controlLost} lost; ` +
    `${r.probes} probes, max CONNACK ${r.probeMaxMs} ms; peak RSS ${(r.peakRssKb / 1024).toFixed(1)} MiB; ${r.errors} ERROR lines`
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { count: { type: "string", default: "100000" }, seed: { type: "string", default: "1" }, connections: { type: "string", default: "32" } },
    strict: true,
  });
  const count = Number(values.count);
  const seed = Number(values.seed);
  const res = await runFuzz({ count, seed, connections: Number(values.connections), log: (l) => console.log(l) });
  if (res.failures.length > 0) {
    console.log(`FAIL (reproduce: bun run fuzz --count ${count} --seed ${seed})\n  ${res.failures.join("\n  ")}\nbroker stderr (tail):\n${res.stderrTail}`);
    process.exit(1);
  }
  console.log(`PASS: ${res.campaigns.reduce((a, c) => a + c.packets, 0)} packets, seed ${seed}`);
}
