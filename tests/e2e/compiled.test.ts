/**
 * The single-file executable: `bun build --compile --minify broker.ts`, the
 * same command as package.json's `build` script but into a temporary
 * directory (the repository's dist/ is neither needed nor touched). The
 * binary then runs like the source: listening line with the real port, an
 * MQTT.js publish/subscribe round trip, exit 0 on SIGTERM; and its TLS and
 * WebSocket listeners serve MQTT.js (certificates made with openssl); its
 * http listener serves /healthz, /metrics and the dashboard page, script
 * and stylesheet from inside the file, run from a directory with nothing
 * else in it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { connectClient } from "../helpers/clients.ts";
import { BrokerProcess } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";

const ROOT = join(import.meta.dir, "..", "..");

let dir: string;
let exe: string;
let buildLog = "";
let buildCode = -1;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bunmq-compiled-"));
  exe = join(dir, "bunmq");
  const build = Bun.spawn([process.execPath, "build", "--compile", "--minify", "broker.ts", "--outfile", exe], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(build.stdout).text(), new Response(build.stderr).text()]);
  buildCode = await build.exited;
  buildLog = out + err;
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("compiled executable", () => {
  test("package.json's build script compiles broker.ts the same way", async () => {
    const pkg = await Bun.file(join(ROOT, "package.json")).json();
    expect(pkg.scripts.build).toMatch(/bun build --compile/);
    expect(pkg.scripts.build).toContain("broker.ts");
    expect(pkg.scripts.build).toContain("--minify");
  });

  test("bun build --compile succeeds and produces an executable", () => {
    if (buildCode !== 0) throw new Error(`build failed (exit ${buildCode}):\n${buildLog}`);
    expect(existsSync(exe)).toBe(true);
    expect(statSync(exe).mode & 0o111).not.toBe(0);
  });

  test(
    "runs: listening line, MQTT.js round trip, SIGTERM → DISCONNECT 0x8B and exit 0",
    async () => {
      if (buildCode !== 0) throw new Error(`build failed (exit ${buildCode}):\n${buildLog}`);
      // Run from the temp dir so nothing can resolve against the repository's sources.
      const proc = Bun.spawn([exe, "--port", "0", "--data", ":memory:"], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      let stdout = "";
      let stderr = "";
      const dec = new TextDecoder();
      const readers = Promise.all([
        (async () => {
          for await (const c of proc.stdout) stdout += dec.decode(c, { stream: true });
        })(),
        (async () => {
          for await (const c of proc.stderr) stderr += dec.decode(c, { stream: true });
        })(),
      ]);
      try {
        const end = Date.now() + 15_000;
        let m: RegExpMatchArray | null = null;
        while (!(m = stdout.match(/listening on mqtt:\/\/127\.0\.0\.1:(\d+)/))) {
          if (proc.exitCode !== null || Date.now() > end) throw new Error(`no listening line (exit ${proc.exitCode})\nstdout: ${stdout}\nstderr: ${stderr}`);
          await Bun.sleep(10);
        }
        const port = Number(m[1]);
        expect(port).toBeGreaterThan(0);

        const sub = await connectClient(port, { clientId: "bin-sub", protocolVersion: 5 });
        const pub = await connectClient(port, { clientId: "bin-pub" });
        await sub.client.subscribeAsync("bin/#", { qos: 2 });
        await pub.client.publishAsync("bin/a", "from the binary", { qos: 2 });
        await pub.client.publishAsync("bin/b/c", Buffer.alloc(100_000, 7), { qos: 1 });
        await sub.waitMessages(2, 5000);
        expect(sub.messages[0]!.topic).toBe("bin/a");
        expect(sub.messages[0]!.payload.toString()).toBe("from the binary");
        expect(sub.messages[1]!.topic).toBe("bin/b/c");
        expect(sub.messages[1]!.payload.equals(Buffer.alloc(100_000, 7))).toBe(true);
        await Promise.all([sub.end(), pub.end()]);

        const raw = await RawClient.connected(port, 5, { clientId: "bin-raw" });
        proc.kill("SIGTERM");
        const d = await raw.next(5000);
        expect(d.cmd).toBe("disconnect");
        expect(d.reasonCode).toBe(0x8b);
        const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "timeout")]);
        expect(code).toBe(0);
        await readers;
        expect(stderr).not.toMatch(/^\s+at\s/m);
      } finally {
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
    },
    60_000,
  );

  const certs = testCerts();
  warnSkip("tests/e2e/compiled.test.ts");
  test.skipIf(certs === null)(
    "its mqtts, ws and wss listeners serve MQTT.js (TLS and Bun.serve inside the single file)",
    async () => {
      if (buildCode !== 0) throw new Error(`build failed (exit ${buildCode}):\n${buildLog}`);
      const c = certs!;
      const cfg = join(dir, "transports.json");
      writeFileSync(
        cfg,
        JSON.stringify({
          persistence: { path: ":memory:" },
          listeners: [
            { port: 0, protocol: "mqtts", tls: { cert: c.serverCert, key: c.serverKey } },
            { port: 0, protocol: "ws" },
            { port: 0, protocol: "wss", tls: { cert: c.serverCert, key: c.serverKey } },
          ],
        }),
      );
      const b = BrokerProcess.spawn([exe, "--config", cfg]);
      try {
        await b.waitStdout(/listening on wss:\/\/\S+/);
        const urls = [...b.stdout.matchAll(/listening on (\S+)/g)].map((m) => m[1]!);
        expect(urls.map((u) => u.replace(/:\d+/, ":P"))).toEqual(["mqtts://127.0.0.1:P", "ws://127.0.0.1:P/mqtt", "wss://127.0.0.1:P/mqtt"]);
        for (const url of urls) {
          const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ca: readFileSync(c.ca), protocolVersion: 5 });
          await client.subscribeAsync("bin/t", { qos: 1 });
          const got = new Promise<string>((r) => client.once("message", (_t, p) => r(p.toString())));
          await client.publishAsync("bin/t", url, { qos: 1 });
          expect(await got).toBe(url);
          await client.endAsync();
        }
      } finally {
        await b.kill();
      }
    },
    30_000,
  );

  test(
    "its http listener serves /healthz, /metrics and the dashboard (page, script, stylesheet) from inside the file",
    async () => {
      if (buildCode !== 0) throw new Error(`build failed (exit ${buildCode}):\n${buildLog}`);
      const empty = mkdtempSync(join(tmpdir(), "bunmq-compiled-cwd-"));
      const cfg = join(dir, "http.json");
      writeFileSync(cfg, JSON.stringify({ persistence: { path: ":memory:" }, listeners: [{ port: 0 }, { port: 0, protocol: "http" }], sys: { interval: 1 } }));
      const b = new BrokerProcess(Bun.spawn([exe, "--config", cfg], { cwd: empty, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
      try {
        const base = (await b.waitStdout(/listening on (http:\/\/\S+)\//))[1]!;
        expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: "ok" });
        expect(await (await fetch(`${base}/metrics`)).text()).toContain("bunmq_info{version=");
        const page = await fetch(`${base}/`);
        expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
        expect(await page.text()).toContain('<script src="/dashboard.js"');
        const js = await (await fetch(`${base}/dashboard.js`)).text();
        expect(js).toContain("new EventSource(\"/api/v1/events\")");
        expect(js).not.toMatch(/:\s*(HTMLElement|string)\b\s*[,)=]/); // transpiled: no type annotations left
        expect(await (await fetch(`${base}/dashboard.css`)).text()).toContain(":root");
      } finally {
        await b.kill();
        rmSync(empty, { recursive: true, force: true });
      }
    },
    30_000,
  );
});
