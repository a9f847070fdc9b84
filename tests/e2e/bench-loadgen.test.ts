/**
 * The benchmark tooling needs nothing outside this repository: the docs and
 * bench sources name no path outside it, the C load generator is vendored in
 * bench/mqtt-loadgen/, the README's build line builds it, bench/run/env.ts
 * builds it from there when $LOADGEN is missing, and the result runs a short
 * QoS 1 scenario against a real broker with no loss.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { startTestBroker } from "../helpers/broker.ts";

const ROOT = join(import.meta.dir, "..", "..");
const VENDORED = join(ROOT, "bench", "mqtt-loadgen");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunmq-loadgen-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** gcc and the OpenSSL headers, which transport.c needs (libssl-dev). */
const canBuild = Bun.which("gcc") !== null && existsSync("/usr/include/openssl/ssl.h");
if (!canBuild) console.warn("skipping the C load generator build tests: needs gcc and libssl-dev (OpenSSL headers)");

function filesUnder(d: string, ext: RegExp): string[] {
  return readdirSync(d, { recursive: true, encoding: "utf8" })
    .filter((f) => ext.test(f) && !f.includes("node_modules"))
    .map((f) => join(d, f));
}

async function run(cmd: string[], env: Record<string, string | undefined> = process.env) {
  const p = Bun.spawn(cmd, { cwd: ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

describe("no reference outside the repository", () => {
  test("README.md, the bench docs and the bench sources name no path outside it", () => {
    const files = [join(ROOT, "README.md"), ...filesUnder(join(ROOT, "bench"), /\.(md|ts)$/)];
    const outside: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/\/work\/[\w./-]*|\.\.\/shared\b[\w./-]*/g)) outside.push(`${relative(ROOT, f)}: ${m[0]}`);
    }
    expect(outside).toEqual([]);
  });

  test("the C load generator is vendored in bench/mqtt-loadgen/", () => {
    for (const f of ["loadgen.c", "transport.c", "transport.h", "Makefile", "README.md"]) expect(existsSync(join(VENDORED, f))).toBe(true);
  });
});

describe.skipIf(!canBuild)("building and running the C load generator", () => {
  test("the README's Reproduce build line builds a working mqtt-loadgen", async () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const line = readme.split("\n").find((l) => /^gcc .*mqtt-loadgen/.test(l));
    expect(line).toBeDefined();
    expect(line).toContain("/tmp/mqtt-loadgen");
    const out = join(dir, "from-readme");
    const build = await run(["sh", "-c", line!.replace("/tmp/mqtt-loadgen", out)]);
    expect({ code: build.code, stderr: build.stderr }).toEqual({ code: 0, stderr: "" });
    const help = await run([out, "--help"]);
    expect(help.stdout + help.stderr).toContain("usage: mqtt-loadgen");
  }, 60_000);

  test("bench/run/env.ts builds it from the vendored copy when $LOADGEN is missing; it then runs QoS 1 pairs against bunmq with no loss", async () => {
    const out = join(dir, "from-env");
    const script = `import { cLoadgen } from "./bench/run/env.ts"; console.log(cLoadgen());`;
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "LOADGEN_SRC"));
    const built = await run([process.execPath, "-e", script], { ...env, LOADGEN: out });
    expect(built.code).toBe(0);
    expect(built.stdout.trim()).toBe(out);
    expect(built.stderr).toContain(join("bench", "mqtt-loadgen", "loadgen.c"));
    expect(built.stderr).toContain(join("bench", "mqtt-loadgen", "transport.c"));

    const rb = await startTestBroker();
    try {
      const lg = await run([out, "pairs", "--port", String(rb.port), "--pairs", "2", "--qos", "1", "--count", "200", "-q"]);
      expect({ code: lg.code, stderr: lg.stderr }).toEqual({ code: 0, stderr: "" });
      const json = JSON.parse(lg.stdout.trim().split("\n").at(-1)!);
      expect(json.ok).toBe(1);
      expect(json.lost).toBe(0);
      expect(json.unique).toBe(400);
    } finally {
      await rb.stop();
    }
  }, 60_000);
});
