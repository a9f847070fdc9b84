/**
 * Listeners from the command line (`bun broker.ts --config FILE`, a real
 * process): every listener printed as a URL and serving its transport, TLS
 * paths relative to the config file, one-line start failures for unusable
 * certificate files (exit 1) and invalid listener settings (exit 2, naming
 * the field), a TLS port already in use (the SO_REUSEPORT listener still
 * refuses to share), and SIGHUP reloading certificates without dropping
 * connections.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import mqtt from "mqtt";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { BrokerProcess } from "../helpers/process.ts";

const certs = testCerts();
warnSkip("tests/e2e/cli-listeners.test.ts");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunmq-cli-listeners-"));
  if (certs) {
    copyFileSync(certs.serverCert, join(dir, "server.crt"));
    copyFileSync(certs.serverKey, join(dir, "server.key"));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A config file in the temp dir (TLS paths in it are relative to it). */
function config(listeners: object[]): string {
  const p = join(dir, `c${n++}.json`);
  writeFileSync(p, JSON.stringify({ persistence: { path: ":memory:" }, listeners }));
  return p;
}

const TLS = { cert: "server.crt", key: "server.key" };
const ALL = [{ port: 0 }, { port: 0, protocol: "mqtts", tls: TLS }, { port: 0, protocol: "ws" }, { port: 0, protocol: "wss", tls: TLS }];

function cn(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: readFileSync(certs!.ca) }, () => {
      resolve(s.getPeerCertificate().subject.CN as string);
      s.destroy();
    });
    s.once("error", reject);
  });
}

async function roundTrip(url: string): Promise<string> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, ca: readFileSync(certs!.ca) });
  await c.subscribeAsync("cli/t", { qos: 1 });
  const got = new Promise<string>((r) => c.once("message", (_t, p) => r(p.toString())));
  await c.publishAsync("cli/t", url, { qos: 1 });
  const v = await got;
  await c.endAsync();
  return v;
}

/** Wait until the process's output (the log is on stderr) matches `re`. */
async function waitOutput(b: BrokerProcess, re: RegExp, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(b.stdout + b.stderr)) {
    if (Date.now() > end) throw new Error(`no ${re} in the output\nstdout: ${b.stdout}\nstderr: ${b.stderr}`);
    await Bun.sleep(20);
  }
}

/** Run the broker expecting it to fail; returns exit code and stderr. */
async function failing(cfg: string): Promise<{ code: number; stderr: string }> {
  const b = BrokerProcess.start(["--config", cfg]);
  const code = await b.exitCode();
  return { code, stderr: b.stderr };
}

describe.skipIf(certs === null)("listeners from the command line", () => {
  test("all four transports: one URL per listener on stdout, each serves MQTT.js; TLS paths relative to the config file", async () => {
    const b = BrokerProcess.start(["--config", config(ALL)]); // cwd: the repository root, not the config's directory
    try {
      await b.waitStdout(/listening on wss:\/\/\S+/);
      const urls = [...b.stdout.matchAll(/^bunmq listening on (\S+)$/gm)].map((m) => m[1]!);
      expect(urls.map((u) => u.replace(/:\d+/, ":P"))).toEqual(["mqtt://127.0.0.1:P", "mqtts://127.0.0.1:P", "ws://127.0.0.1:P/mqtt", "wss://127.0.0.1:P/mqtt"]);
      for (const u of urls) expect(await roundTrip(u)).toBe(u);
    } finally {
      await b.kill();
    }
  }, 30_000);

  const fileFailures: [string, () => object, RegExp][] = [
    ["a missing certificate file", () => ({ cert: "missing.crt", key: "server.key" }), /cannot read the certificate \S*missing\.crt \(ENOENT\)/],
    ["a key file that holds no key", () => (writeFileSync(join(dir, "garbage.key"), "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"), { cert: "server.crt", key: "garbage.key" }), /cannot load the key \S*garbage\.key/],
    ["a key that is not the certificate's", () => (copyFileSync(certs!.aliceKey, join(dir, "other.key")), { cert: "server.crt", key: "other.key" }), /the key \S*other\.key does not belong to the certificate \S*server\.crt/],
  ];
  for (const [name, tlsCfg, line] of fileFailures) {
    test(`${name}: exit 1, one line naming the listener and the file, nothing listens`, async () => {
      const { code, stderr } = await failing(config([{ port: 0 }, { port: 0, protocol: "mqtts", tls: tlsCfg() }]));
      expect(code).toBe(1);
      const lines = stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^bunmq: listeners\.1 \(mqtts:\/\/127\.0\.0\.1:0\): /);
      expect(lines[0]).toMatch(line);
    });
  }

  const invalid: [string, object[], string][] = [
    ["mqtts without tls", [{ protocol: "mqtts" }], "listeners.0.tls: required for protocol mqtts"],
    ["tls on a plain listener", [{ tls: TLS }], "listeners.0.tls: only for protocol mqtts, wss or http"],
    ["path on mqtt", [{ path: "/mqtt" }], "listeners.0.path: only for protocol ws or wss"],
    ["requireClientCert without ca", [{ protocol: "mqtts", tls: { ...TLS, requireClientCert: true } }], "listeners.0.tls.ca: required with requireClientCert"],
    ["useIdentityAsUsername on wss", [{ protocol: "wss", tls: { ...TLS, ca: "ca.crt", requireClientCert: true, useIdentityAsUsername: true } }], "listeners.0.tls.useIdentityAsUsername: supported on mqtts listeners only"],
    ["two listeners on one port", [{ port: 18990 }, { port: 18990, protocol: "ws" }], "listeners.1.port: 127.0.0.1:18990 is already used by listeners.0"],
    ["an unknown protocol", [{ protocol: "quic" }], "listeners.0.protocol"],
  ];
  for (const [name, listeners, message] of invalid) {
    test(`${name}: exit 2 naming the field`, async () => {
      const { code, stderr } = await failing(config(listeners));
      expect(code).toBe(2);
      expect(stderr).toContain(message);
      expect(stderr).not.toMatch(/^\s+at\s/m);
    });
  }

  test("a second broker on a TLS port in use exits 1 with EADDRINUSE (the SO_REUSEPORT listener does not share)", async () => {
    const a = BrokerProcess.start(["--config", config([{ port: 0, protocol: "mqtts", tls: TLS }])]);
    try {
      const port = Number((await a.waitStdout(/listening on mqtts:\/\/127\.0\.0\.1:(\d+)/))[1]);
      for (const protocol of ["mqtts", "wss"]) {
        const { code, stderr } = await failing(config([{ port, protocol, tls: TLS }]));
        expect({ protocol, code }).toEqual({ protocol, code: 1 });
        expect(stderr).toContain(`127.0.0.1:${port} is already in use (EADDRINUSE)`);
      }
      expect(await cn(port)).toBe("localhost"); // the first still serves
    } finally {
      await a.kill();
    }
  }, 30_000);

  test("SIGHUP: a renewed certificate serves new connections, a connection opened before keeps working; a broken key keeps the old one", async () => {
    const sub = join(dir, "hup");
    rmSync(sub, { recursive: true, force: true });
    mkdirSync(sub);
    copyFileSync(certs!.serverCert, join(sub, "server.crt"));
    copyFileSync(certs!.serverKey, join(sub, "server.key"));
    const cfg = join(sub, "c.json");
    writeFileSync(cfg, JSON.stringify({ persistence: { path: ":memory:" }, listeners: [{ port: 0, protocol: "mqtts", tls: TLS }] }));
    const b = BrokerProcess.start(["--config", cfg]);
    try {
      const port = Number((await b.waitStdout(/listening on mqtts:\/\/127\.0\.0\.1:(\d+)/))[1]);
      const before = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { reconnectPeriod: 0, ca: readFileSync(certs!.ca) });
      expect(await cn(port)).toBe("localhost");

      copyFileSync(certs!.renewedCert, join(sub, "server.crt"));
      copyFileSync(certs!.renewedKey, join(sub, "server.key"));
      b.proc.kill("SIGHUP");
      await waitOutput(b, /certificate reloaded; new connections use it/);
      expect(await cn(port)).toBe("renewed");
      await before.subscribeAsync("hup/t", { qos: 1 });
      const got = new Promise<string>((r) => before.once("message", (_t, p) => r(p.toString())));
      await before.publishAsync("hup/t", "after SIGHUP", { qos: 1 });
      expect(await got).toBe("after SIGHUP");

      writeFileSync(join(sub, "server.key"), "garbage\n");
      b.proc.kill("SIGHUP");
      await waitOutput(b, /certificate reload failed; the old certificate stays in force/);
      expect(await cn(port)).toBe("renewed");
      expect(b.running).toBe(true);
      await before.endAsync();
    } finally {
      await b.kill();
    }
  }, 30_000);
});
