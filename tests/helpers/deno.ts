/**
 * Deno for the Deno slice (tests/deno/): where it is, why a test skips
 * without it, and one-shot runs of a Deno script or `deno test` file with
 * their `ok - …` / `not ok - …` lines (the self-test scripts' format) read.
 */
import { resolve } from "node:path";

export const DENO = Bun.which("deno");
export const DENO_MISSING = "deno is not on PATH (npm install -g deno@2)";
export const ROOT = resolve(import.meta.dir, "../..");

/** Print once per file why its Deno tests are skipped. */
export function warnDenoSkip(file: string): void {
  if (DENO === null) console.warn(`${file}: SKIPPED: ${DENO_MISSING}`);
}

export interface DenoRun {
  code: number | null;
  timedOut: boolean;
  /** The names of the `ok - NAME` lines. */
  ok: Set<string>;
  notOk: string[];
  stdout: string;
  output: string;
}

/** `deno ARGS` in the repository root, killed after `ms`. */
export async function runDeno(args: string[], ms: number): Promise<DenoRun> {
  const p = Bun.spawn([DENO!, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill(9);
  }, ms);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(timer);
  const lines = out.split("\n");
  return {
    code,
    timedOut,
    ok: new Set(lines.filter((l) => l.startsWith("ok - ")).map((l) => l.slice(5))),
    notOk: lines.filter((l) => l.startsWith("not ok - ")),
    stdout: out,
    output: `${out}${err}`,
  };
}
