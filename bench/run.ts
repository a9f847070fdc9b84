#!/usr/bin/env bun
/**
 * bench/run.ts: `bun run bench`. Runs the scenario matrix against bunmq (and
 * optionally another broker) and prints markdown tables.
 *
 * By default it starts bunmq itself, a fresh process per scenario group
 * (`--data :memory:`; the persist rows use a SQLite file with durability
 * "ack" or "interval"), and drives it with bench/loadgen.ts (or the C
 * mqtt-loadgen with `--loadgen c`). This file is the entry point; the parts
 * live in bench/run/. See bench/README.md.
 *
 * Exit: 0 ok; 1 when any run failed a check or a broker it started exited
 * (or did not start); 2 on a usage error or a missing C loadgen.
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBridgeRun, cLoadgenWithSubPort, runBridge } from "./run/bridge.ts";
import { printBridgeReport } from "./run/bridge-report.ts";
import { cLoadgen, runFailed } from "./run/loadgen-run.ts";
import { selectScenarios } from "./run/matrix.ts";
import { parseOptions } from "./run/options.ts";
import { printReport } from "./run/report.ts";
import { runMatrix } from "./run/rounds.ts";

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const out = o.out || mkdtempSync(join(tmpdir(), "bunmq-bench."));
  mkdirSync(out, { recursive: true });
  const t0 = Date.now();
  if (isBridgeRun(o)) {
    // the bridge scenario has its own brokers and report (run/bridge.ts)
    const cPath = o.loadgen === "c" ? cLoadgenWithSubPort(cLoadgen(), out) : "";
    const res = await runBridge(o, out, cPath);
    printBridgeReport(o, out, res, (Date.now() - t0) / 1000);
    const failed = res.runs.some((r) => runFailed(r.result) || Number(r.result.json.lost) > 0);
    process.exit(failed || res.problems.length ? 1 : 0);
  }
  const list = selectScenarios(o);
  const cPath = o.loadgen === "c" ? cLoadgen() : "";
  const m = await runMatrix(o, list, out, cPath);
  printReport(o, list, out, m, (Date.now() - t0) / 1000);
  const failed = m.results.some(runFailed);
  process.exit(failed || m.brokerProblems.some((p) => p.includes("exited")) ? 1 : 0);
}

await main();
