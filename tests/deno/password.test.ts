/**
 * lib/runtime/deno-password.ts under a real Deno: runs password.deno.ts as
 * a subprocess (`deno run -A`), reads its `ok - …` lines, and verifies the
 * argon2id hash it made with Bun.password. Skipped, with the reason printed,
 * where `deno` is not on PATH.
 */
import { describe, expect, test } from "bun:test";
import { DENO, type DenoRun, runDeno, warnDenoSkip } from "../helpers/deno.ts";

warnDenoSkip("tests/deno/password.test.ts");

const TIMEOUT_MS = 60_000;

type Run = DenoRun & { hash: string | null };
let running: Promise<Run> | null = null;

/** One Deno run shared by the tests below (each argon2 there costs a few hundred ms). */
function denoRun(): Promise<Run> {
  running ??= runDeno(["run", "-A", "tests/deno/password.deno.ts"], TIMEOUT_MS).then((r) => ({
    ...r,
    hash: r.stdout.split("\n").find((l) => l.startsWith("HASH "))?.slice(5) ?? null,
  }));
  return running;
}

/** The named checks passed (a check that did not run is missing from `ok`). */
async function expectChecks(...names: string[]): Promise<void> {
  const r = await denoRun();
  for (const name of names) {
    if (!r.ok.has(name)) throw new Error(`deno check "${name}" did not pass:\n${r.output}`);
  }
}

describe.skipIf(DENO === null)("deno-password under Deno", () => {
  test("the script passes every check and exits on its own (the idle worker does not hold the process)", async () => {
    const r = await denoRun();
    expect(r.timedOut).toBe(false);
    expect(r.notOk).toEqual([]);
    expect(r.code).toBe(0);
  }, TIMEOUT_MS + 5_000);

  test("argon2id/i/d from Bun: the right password true, a wrong one false", async () => {
    await expectChecks(
      "argon2id from Bun: right password",
      "argon2id from Bun: wrong password",
      "argon2i from Bun: right password",
      "argon2d from Bun: right password",
      "argon2d from Bun: wrong password",
      "argon2id from Bun: non-ASCII password",
      "argon2id from Bun: empty password",
    );
  }, TIMEOUT_MS + 5_000);

  test("bcrypt from Bun ($2b$, read as $2a$ and $2y$ too; over 72 bytes as Bun pre-hashes it): true / false", async () => {
    await expectChecks(
      "bcrypt from Bun: right password",
      "bcrypt from Bun: wrong password",
      "bcrypt $2a$ of the same hash",
      "bcrypt $2y$ of the same hash",
      "bcrypt from Bun, password over 72 bytes",
      "bcrypt from Bun, its first 72 bytes only",
    );
  }, TIMEOUT_MS + 5_000);

  test("garbage and unknown hashes verify false, never reject", async () => {
    const r = await denoRun();
    expect([...r.ok].filter((n) => n.startsWith("garbage hash: ")).length).toBe(10);
  }, TIMEOUT_MS + 5_000);

  test("concurrent verifications are matched by id; the event loop ticks during one", async () => {
    const r = await denoRun();
    await expectChecks("concurrent verifications keep their own results");
    expect([...r.ok].some((n) => /^the event loop ticks during a verification \(\d+ ticks\)$/.test(n))).toBe(true);
  }, TIMEOUT_MS + 5_000);

  test("denoHashPassword: argon2id with Bun's parameters, verified by Bun.password.verify", async () => {
    await expectChecks(
      "denoHashPassword: argon2id with Bun's parameters",
      "denoHashPassword's hash verifies",
      "denoHashPassword refuses an empty password (as Bun.password.hash)",
    );
    const { hash } = await denoRun();
    expect(hash).toStartWith("$argon2id$v=19$m=65536,t=2,p=1$");
    expect(await Bun.password.verify("secret", hash!)).toBe(true);
    expect(await Bun.password.verify("secreT", hash!)).toBe(false);
  }, TIMEOUT_MS + 5_000);
});
