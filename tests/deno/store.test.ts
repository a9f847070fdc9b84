/**
 * The Store contract on node:sqlite under a real Deno: runs
 * `deno test tests/deno/store.deno.ts` (the shared contract file, with
 * `bun:test` mapped to bun-test-shim.ts by deno.json) and requires every
 * contract test to pass there. The same contract runs under Bun on
 * bun:sqlite, node:sqlite and MemoryStore (tests/persistence/).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DENO, ROOT, runDeno, warnDenoSkip } from "../helpers/deno.ts";

warnDenoSkip("tests/deno/store.test.ts");

/** How many tests the contract declares (so a run that registered fewer cannot pass). */
const declared = (readFileSync(join(ROOT, "tests/persistence/store.contract.ts"), "utf8").match(/^\s+test\(/gm) ?? []).length;

describe.skipIf(DENO === null)("Store contract under Deno (node:sqlite)", () => {
  test("deno test runs every contract test on SqliteStore over node:sqlite, and all pass", async () => {
    const r = await runDeno(["test", "-A", "--no-check", "tests/deno/store.deno.ts"], 50_000);
    expect(r.timedOut).toBe(false);
    const summary = r.output.match(/(\d+) passed \| (\d+) failed/);
    if (summary === null || r.code !== 0) throw new Error(`deno test failed (exit ${r.code}):\n${r.output}`);
    expect(declared).toBeGreaterThan(10);
    expect(Number(summary[1])).toBe(declared);
    expect(Number(summary[2])).toBe(0);
  }, 60_000);
});
