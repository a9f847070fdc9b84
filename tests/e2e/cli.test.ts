/**
 * The real process: `bun broker.ts ...` spawned from the repository root.
 * Startup line with the real port, a publish/subscribe round trip through it
 * with MQTT.js, config errors (exit 2, the field path named, no stack trace),
 * bad flags, clean shutdown on SIGTERM / SIGINT (exit 0; v5 clients get
 * DISCONNECT 0x8B first, [MQTT-3.14.0-1] / v5 §3.14.2.1), --help / -h,
 * --version (also in the start-up line) and --check-config.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectClient } from "../helpers/clients.ts";
import { BrokerProcess as Proc } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";

const ROOT = join(import.meta.dir, "..", "..");
const LISTENING = /listening on mqtt:\/\/127\.0\.0\.1:(\d+)/;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunmq-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Start a broker on a free port with in-memory state (nothing written into the repository). */
async function startOk(extra: string[] = []): Promise<{ p: Proc; port: number }> {
  const p = Proc.start(["--port", "0", "--data", ":memory:", ...extra]);
  try {
    return { p, port: await p.port() };
  } catch (e) {
    p.kill();
    throw e;
  }
}

function configFile(name: string, content: string | object): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return path;
}

/** No JavaScript stack trace or source frame in the output. */
function expectNoStack(text: string): void {
  expect(text).not.toMatch(/^\s+at\s/m);
  expect(text).not.toMatch(/\.ts:\d+:\d+/);
  expect(text).not.toMatch(/^\s*\d+\s\|/m); // Bun's source code frame
}

describe("startup", () => {
  test("--port 0 prints the real port, and MQTT.js can publish/subscribe through it", async () => {
    const { p, port } = await startOk();
    try {
      expect(port).toBeGreaterThan(0);
      expect(port).toBeLessThan(65536);
      expect(p.stdout).toContain(`listening on mqtt://127.0.0.1:${port}`);
      const sub = await connectClient(port, { clientId: "cli-sub" });
      const pub = await connectClient(port, { clientId: "cli-pub", protocolVersion: 5 });
      await sub.client.subscribeAsync("cli/+/t", { qos: 1 });
      await pub.client.publishAsync("cli/x/t", "through the process", { qos: 1 });
      await pub.client.publishAsync("cli/y/t", "second", { qos: 0 });
      await sub.waitMessages(2, 5000);
      expect(sub.messages.map((m) => `${m.topic}=${m.payload.toString()}`)).toEqual(["cli/x/t=through the process", "cli/y/t=second"]);
      await Promise.all([sub.end(), pub.end()]);
    } finally {
      p.proc.kill("SIGTERM");
      await p.exitCode().catch(() => p.kill());
    }
  });

  test("--help prints usage and exits 0", async () => {
    const p = Proc.start(["--help"]);
    expect(await p.exitCode()).toBe(0);
    expect(p.stdout).toMatch(/usage: bunmq/);
    for (const flag of ["--config", "--host", "--port", "--data", "--log-level", "--log-format", "--log-file", "--check-config", "--version", "-h, --help", "passwd"]) expect(p.stdout).toContain(flag);
    expect(p.stdout).not.toMatch(LISTENING);
    const short = Proc.start(["-h"]);
    expect(await short.exitCode()).toBe(0);
    expect(short.stdout).toBe(p.stdout);
  });

  test("--version prints package.json's version; the start-up line carries it too", async () => {
    const { version } = JSON.parse(await Bun.file(join(ROOT, "package.json")).text());
    const v = Proc.start(["--version"]);
    expect(await v.exitCode()).toBe(0);
    expect(v.stdout).toBe(`bunmq ${version}\n`);
    const { p } = await startOk();
    try {
      expect(p.stdout.split("\n")[0]).toBe(`bunmq ${version} (bun ${Bun.version})`);
    } finally {
      p.proc.kill("SIGTERM");
      await p.exitCode().catch(() => p.kill());
    }
  });
});

describe("--check-config FILE", () => {
  test("a valid file: exit 0, the effective config with every default as JSON, secrets redacted, nothing started", async () => {
    const path = configFile("check-ok.json", {
      listeners: [{ port: 1884 }, { protocol: "http", port: 0 }],
      auth: { users: [{ username: "u", password: "very secret" }] },
      http: { token: "0123456789abcdef0123" },
    });
    const p = Proc.start(["--check-config", path, "--log-level", "debug"]);
    expect(await p.exitCode()).toBe(0);
    const eff = JSON.parse(p.stdout);
    expect(eff.logLevel).toBe("debug"); // flags apply, as at a start
    expect(eff.listeners[0]).toMatchObject({ host: "127.0.0.1", port: 1884, protocol: "mqtt" });
    expect(eff.listeners[1]).toMatchObject({ protocol: "http", port: 0 });
    expect(eff.limits.maxPacketSize).toBeGreaterThan(0); // a default, not in the file
    expect(eff.sys.interval).toBe(10);
    expect(eff.shutdown.publishWills).toBe(true);
    expect(eff.auth.users[0]).toEqual({ username: "u", password: "<redacted>" });
    expect(eff.http.token).toBe("<redacted>");
    expect(p.stdout).not.toContain("very secret");
    expect(p.stdout).not.toContain("0123456789abcdef0123");
    expect(p.stderr).toBe("");
  });

  test("an invalid file: exit 2, one line naming the field, no stack", async () => {
    const path = configFile("check-bad.json", { sys: { interval: -1 } });
    const p = Proc.start(["--check-config", path]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("sys.interval");
    expectNoStack(p.stderr);
    expect(p.stdout).toBe("");
  });

  test("files the config names are read as a start would: a missing password file exits 2 naming it", async () => {
    const missing = join(dir, "no-such-passwords");
    const path = configFile("check-pwfile.json", { auth: { passwordFile: missing } });
    const p = Proc.start(["--check-config", path]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("no-such-passwords");
    expectNoStack(p.stderr);
  });

  test("a missing config file: exit 2", async () => {
    const p = Proc.start(["--check-config", join(dir, "nope.json")]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("nope.json");
  });
});

describe("bad configuration exits 2 with a clear message", () => {
  test("unknown key: stderr names the field path, no stack trace", async () => {
    const path = configFile("unknown-key.json", { limits: { maxPakcetSize: 1000 } });
    const p = Proc.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("maxPakcetSize");
    expect(p.stderr).toContain("limits.maxPakcetSize");
    expectNoStack(p.stderr);
    expect(p.stdout).not.toMatch(LISTENING);
  });

  test("wrong type: stderr names the field path, no stack trace", async () => {
    const path = configFile("wrong-type.json", { limits: { maxInflight: "lots" } });
    const p = Proc.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("limits.maxInflight");
    expectNoStack(p.stderr);
    expect(p.stdout).not.toMatch(LISTENING);
  });

  test("wrong type in a listener: listeners.0.port", async () => {
    const path = configFile("wrong-listener.json", { listeners: [{ host: "127.0.0.1", port: "1883" }] });
    const p = Proc.start(["--config", path, "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("listeners.0.port");
    expectNoStack(p.stderr);
  });

  test("missing config file: exit 2 naming the file", async () => {
    const path = join(dir, "no-such-file.json");
    const p = Proc.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain(path);
    expect(p.stderr).toMatch(/cannot read|no such file|ENOENT/i);
    expectNoStack(p.stderr);
  });

  test("config path that is a directory (unreadable): exit 2 naming it", async () => {
    const path = join(dir, "a-directory.json");
    mkdirSync(path, { recursive: true });
    const p = Proc.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain(path);
    expectNoStack(p.stderr);
  });

  test("invalid JSON: exit 2 saying so", async () => {
    const path = configFile("broken.json", '{ "limits": { "maxInflight": 5, }');
    const p = Proc.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain(path);
    expect(p.stderr).toMatch(/JSON/);
    expectNoStack(p.stderr);
  });

  test("a JSON array is not a config: exit 2", async () => {
    const path = configFile("array.json", "[1, 2]");
    const p = Proc.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toMatch(/object/i);
    expectNoStack(p.stderr);
  });
});

describe("a flag does not let an invalid file through (the file is validated on its own first)", () => {
  const cases: [string, object, string[], string[]][] = [
    ["listener port of the wrong type, --port given", { listeners: [{ port: "x" }] }, ["--port", "1"], ["listeners.0.port"]],
    ["listener port out of range, --port given", { listeners: [{ host: "127.0.0.1", port: 99999 }] }, ["--port", "0"], ["listeners.0.port"]],
    ["listeners not a list, --port given", { listeners: "x" }, ["--port", "0"], ["listeners:"]],
    ["listener host empty, --host given", { listeners: [{ host: "", port: 0 }] }, ["--host", "127.0.0.1"], ["listeners.0.host"]],
    ["bad logLevel, --log-level given", { logLevel: "loud" }, ["--log-level", "info"], ["logLevel"]],
    ["bad persistence.path, --data given", { persistence: { path: 5 } }, ["--data", ":memory:"], ["persistence.path"]],
    ["unknown key beside an overridden field", { listeners: [{ port: "x", bogus: true }] }, ["--port", "1"], ["listeners.0.port", "listeners.0.bogus"]],
    ["unknown listener list key, --port given", { listeners: { first: { port: 1 } } }, ["--port", "0"], ["listeners"]],
  ];
  for (const [name, content, flags, paths] of cases) {
    test(`${name}: exit 2 naming ${paths.join(", ")} and the file`, async () => {
      const path = configFile(`flag-over-bad-${name.replace(/\W+/g, "-")}.json`, content);
      const args = ["--config", path, ...flags];
      if (!flags.includes("--data")) args.push("--data", ":memory:");
      if (!flags.includes("--port")) args.push("--port", "0");
      const p = Proc.start(args);
      expect(await p.exitCode()).toBe(2);
      expect(p.stderr).toContain(path);
      for (const field of paths) expect(p.stderr).toContain(field);
      expect(p.stdout).not.toMatch(LISTENING);
      expectNoStack(p.stderr);
    }, 15_000); // beyond exitCode's own 10 s, which kills a broker that wrongly started
  }
});

describe("bad flags exit 2", () => {
  for (const args of [
    ["--port", "abc"],
    ["--port", "70000"],
    ["--port", "-1"],
    ["--port", "1.5"],
    ["--log-level", "loud"],
  ]) {
    test(args.join(" "), async () => {
      const p = Proc.start([...args, "--data", ":memory:"]);
      expect(await p.exitCode()).toBe(2);
      expect(p.stderr.length).toBeGreaterThan(0);
      expect(p.stdout).not.toMatch(LISTENING);
      expectNoStack(p.stderr);
    });
  }

  test("--port abc names the port", async () => {
    const p = Proc.start(["--port", "abc", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toMatch(/port/);
  });

  // The message names the flag the user typed, not the config field it fills in (listeners.0.port).
  const named: [string[], string][] = [
    [["--port", "abc"], "--port: expected an integer 0-65535"],
    [["--port", "70000"], "--port: expected an integer 0-65535"],
    [["--port=-1"], "--port: expected an integer 0-65535"],
    [["--port", "1.5"], "--port: expected an integer 0-65535"],
    [["--port", ""], "--port: expected an integer 0-65535"],
    [["--log-level", "loud"], "--log-level: expected one of silent, error, warn, info, debug"],
    [["--data", ""], "--data: expected a file path, or :memory:"],
    [["--host", ""], "--host: expected a host name or IP address"],
  ];
  for (const [args, message] of named) {
    test(`${JSON.stringify(args.join(" "))}: one line naming the flag`, async () => {
      const p = Proc.start(args[0] === "--data" ? args : [...args, "--data", ":memory:"]);
      expect(await p.exitCode()).toBe(2);
      expect(p.stderr).toBe(`bunmq: ${message}\n`);
      expect(p.stdout).not.toMatch(LISTENING);
    });
  }

  test("a valid file does not excuse an invalid flag: --port 70000 still names --port", async () => {
    const path = configFile("valid-for-flag.json", { listeners: [{ host: "127.0.0.1", port: 0 }] });
    const p = Proc.start(["--config", path, "--port", "70000", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toBe("bunmq: --port: expected an integer 0-65535\n");
  });

  test("an unknown flag prints usage", async () => {
    const p = Proc.start(["--bogus"]);
    expect(await p.exitCode()).toBe(2);
    expect(p.stderr).toContain("bogus");
    expect(p.stderr).toMatch(/usage: bunmq/);
  });
});

describe("the listening address cannot be used: one line, exit 1", () => {
  /** A listener held by this test process, so that the broker's bind fails. */
  function occupy(hostname: string) {
    return Bun.listen({ hostname, port: 0, socket: { data() {} } });
  }

  test("port already in use (127.0.0.1): names host:port and EADDRINUSE", async () => {
    const busy = occupy("127.0.0.1");
    try {
      const p = Proc.start(["--port", String(busy.port), "--data", ":memory:"]);
      expect(await p.exitCode()).toBe(1);
      expect(p.stderr).toBe(`bunmq: 127.0.0.1:${busy.port} is already in use (EADDRINUSE); another broker? use --port\n`);
      expect(p.stdout).not.toMatch(LISTENING);
    } finally {
      busy.stop(true);
    }
  });

  test("port already in use (::1): the IPv6 address is bracketed", async () => {
    let busy;
    try {
      busy = occupy("::1");
    } catch {
      console.warn("skipped: no IPv6 loopback here");
      return;
    }
    try {
      const p = Proc.start(["--host", "::1", "--port", String(busy.port), "--data", ":memory:"]);
      expect(await p.exitCode()).toBe(1);
      expect(p.stderr).toBe(`bunmq: [::1]:${busy.port} is already in use (EADDRINUSE); another broker? use --port\n`);
    } finally {
      busy.stop(true);
    }
  });

  test("an address this machine does not have (192.0.2.1, TEST-NET-1): EADDRNOTAVAIL, names --host", async () => {
    const p = Proc.start(["--host", "192.0.2.1", "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(1);
    expect(p.stderr).toMatch(/^bunmq: cannot listen on 192\.0\.2\.1:0: not an address of this machine \(EADDRNOTAVAIL\); .*--host.*\n$/);
    expect(p.stderr.split("\n").length).toBe(2);
  });

  test("a host name that does not resolve: names it, no stack", async () => {
    const p = Proc.start(["--host", "no-such-host.invalid", "--port", "0", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(1);
    expect(p.stderr).toMatch(/^bunmq: cannot listen on no-such-host\.invalid:0: .*--host.*\n$/);
    expectNoStack(p.stderr);
  });

  test("a privileged port as an unprivileged user: EACCES, says why", async () => {
    // As root every port is allowed, so a root test run drops to nobody with setpriv(1).
    const from = await Bun.file("/proc/sys/net/ipv4/ip_unprivileged_port_start").text().catch(() => "1024");
    if (Number(from.trim()) <= 1) return void console.warn("skipped: every port is unprivileged here");
    const asUser = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
    const run = (args: string[]) =>
      new Proc(Bun.spawn([...asUser, process.execPath, "broker.ts", ...args], { cwd: ROOT, env: { ...process.env, HOME: tmpdir() }, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
    // Only meaningful if that user can run the broker at all (setpriv present, the checkout readable).
    const help = run(["--help"]);
    if ((await help.exitCode()) !== 0) return void console.warn(`skipped: cannot run the broker unprivileged: ${help.stderr}`);
    const p = run(["--port", "1", "--data", ":memory:"]);
    expect(await p.exitCode()).toBe(1);
    expect(p.stderr).toMatch(/^bunmq: cannot listen on 127\.0\.0\.1:1: permission denied \(EACCES\); .*1024.*--port.*\n$/);
  });
});

describe("shutdown", () => {
  test("SIGTERM: a v5 client gets DISCONNECT 0x8B first, then the process exits 0", async () => {
    const { p, port } = await startOk();
    try {
      const c5 = await RawClient.connected(port, 5, { clientId: "term-v5" });
      const c4 = await RawClient.connected(port, 4, { clientId: "term-v4" });
      const mq = await connectClient(port, { clientId: "term-mqttjs", protocolVersion: 5 });
      const mqReason = new Promise<number | undefined>((r) => mq.client.on("disconnect", (pk) => r(pk.reasonCode)));
      p.proc.kill("SIGTERM");
      const first = await c5.next(5000);
      expect(first.cmd).toBe("disconnect");
      expect(first.reasonCode).toBe(0x8b);
      expect(await c5.waitClose(5000)).toBe(true);
      // 3.1.1 has no server DISCONNECT: the socket just closes, with nothing sent.
      expect(await c4.waitClose(5000)).toBe(true);
      expect(c4.pending()).toEqual([]);
      expect(await Promise.race([mqReason, Bun.sleep(5000).then(() => "none")])).toBe(0x8b);
      expect(await p.exitCode()).toBe(0);
      expectNoStack(p.stderr);
      mq.client.end(true);
    } finally {
      p.kill();
    }
  });

  test("SIGINT: exits 0 and closes clients", async () => {
    const { p, port } = await startOk();
    try {
      const c5 = await RawClient.connected(port, 5, { clientId: "int-v5" });
      p.proc.kill("SIGINT");
      const first = await c5.next(5000);
      expect(first.cmd).toBe("disconnect");
      expect(first.reasonCode).toBe(0x8b);
      expect(await c5.waitClose(5000)).toBe(true);
      expect(await p.exitCode()).toBe(0);
      expectNoStack(p.stderr);
    } finally {
      p.kill();
    }
  });

  test("SIGTERM with no clients: exit 0 promptly, port released", async () => {
    const { p, port } = await startOk();
    try {
      p.proc.kill("SIGTERM");
      expect(await p.exitCode(5000)).toBe(0);
      // The port is free again: another broker can bind it.
      const again = Proc.start(["--port", String(port), "--data", ":memory:"]);
      try {
        expect(await again.port()).toBe(port);
      } finally {
        again.proc.kill("SIGTERM");
        await again.exitCode().catch(() => again.kill());
      }
    } finally {
      p.kill();
    }
  });
});
