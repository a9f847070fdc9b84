/**
 * lib/runtime/deno-http.ts under a real Deno: runs the self-test script
 * tests/deno/http.deno.ts twice, with deno.json (whose "unstable": ["net"]
 * lets a second server share the port, as a certificate reload does) and
 * without it (where reusePort must be refused, not end the process), and
 * requires every check to pass.
 */
import { describe, expect, test } from "bun:test";
import { DENO, runDeno, warnDenoSkip } from "../helpers/deno.ts";

warnDenoSkip("tests/deno/http.test.ts");

describe.skipIf(DENO === null)("deno-http under Deno", () => {
  test("with deno.json (--unstable-net): HTTP, WebSocket backpressure, pause/hold limit, maxPayloadLength, TLS, stop and retire beside a new server on the port", async () => {
    const r = await runDeno(["run", "-A", "tests/deno/http.deno.ts"], 30_000);
    expect(r.timedOut).toBe(false);
    expect(r.notOk).toEqual([]);
    expect(r.stdout).toContain("\nPASS");
    expect(r.code).toBe(0);
    expect([...r.ok].some((n) => n.includes("retire"))).toBe(true);
    expect(r.ok.size).toBeGreaterThan(40);
  }, 35_000);

  test("without --unstable-net: reusePort is refused with a message naming the flag; every other check passes", async () => {
    const r = await runDeno(["run", "-A", "--no-config", "tests/deno/http.deno.ts"], 30_000);
    expect(r.timedOut).toBe(false);
    expect(r.notOk).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.ok.has("without --unstable-net, reusePort throws (instead of Deno ending the process)")).toBe(true);
  }, 35_000);
});
