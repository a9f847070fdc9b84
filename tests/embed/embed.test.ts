/**
 * The package as another project uses it: `import { startBroker } from
 * "bunmq"` resolved through package.json `exports`, from a fixture project
 * (tests/embed/fixture) whose node_modules links this repository, its own
 * `bun test` run as a subprocess. And startBroker's options in-process:
 * partial nested options keep the other defaults, a bad option throws
 * ConfigError naming the field, port/host shorthand, which listener `url`
 * names, "silent" writes nothing, an explicit SQLite path persists across
 * stop and start.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, startBroker } from "../../index.ts";
import { setLogLevel } from "../../lib/log.ts";
import { connectClient } from "../helpers/clients.ts";

const ROOT = join(import.meta.dir, "..", "..");
const FIXTURE = join(import.meta.dir, "fixture");

function link(target: string, at: string): void {
  rmSync(at, { force: true, recursive: false });
  symlinkSync(target, at);
}

afterEach(() => setLogLevel((process.env.BUNMQ_TEST_LOG as "error") ?? "error"));

describe("imported by name from another project", () => {
  test("the fixture project's own bun test passes: connect, publish, subscribe, stats(), no ./data, stop() frees the port", async () => {
    const nm = join(FIXTURE, "node_modules");
    mkdirSync(nm, { recursive: true });
    link(ROOT, join(nm, "bunmq")); // what `bun install` makes of "bunmq": "file:../../.."
    link(join(ROOT, "node_modules", "mqtt"), join(nm, "mqtt"));
    rmSync(join(FIXTURE, "data"), { recursive: true, force: true });
    const p = Bun.spawn([process.execPath, "test", "./uses-bunmq.ts"], { cwd: FIXTURE, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const text = out + err;
    expect({ code, text }).toMatchObject({ code: 0 });
    expect(text).toMatch(/\b4 pass\b/);
    expect(text).toMatch(/\b0 fail\b/);
    expect(existsSync(join(FIXTURE, "data"))).toBe(false);
  }, 30_000);
});

describe("startBroker options", () => {
  test("partial nested options: the given limit applies, the other limits keep their defaults", async () => {
    const b = await startBroker({ port: 0, logLevel: "silent", limits: { maxInflight: 5 } });
    try {
      expect(b.broker.limits.maxInflight).toBe(5);
      expect(b.broker.limits.maxPacketSize).toBe(1048576);
      expect(b.broker.config.persistence.path).toBe(":memory:");
    } finally {
      await b.stop();
    }
  });

  test("a bad option throws ConfigError naming the field", async () => {
    const err = await startBroker({ port: 0, limits: { maxPacketSize: -1 } }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain("limits.maxPacketSize");
    const unknown = await startBroker({ port: 0, limitz: {} } as never).catch((e) => e);
    expect(unknown).toBeInstanceOf(ConfigError);
    expect(unknown.message).toContain("limitz");
  });

  test("port and host set the first listener; explicit listeners keep the rest", async () => {
    const b = await startBroker({ host: "::1", port: 0, logLevel: "silent", listeners: [{ port: 1 }, { protocol: "ws", host: "127.0.0.1", port: 0 }] });
    try {
      expect(b.addresses[0]).toMatchObject({ host: "::1", protocol: "mqtt" });
      expect(b.url).toBe(`mqtt://[::1]:${b.port}`);
      expect(b.addresses[1]).toMatchObject({ host: "127.0.0.1", protocol: "ws" });
    } finally {
      await b.stop();
    }
  });

  test("url is the first mqtt:// listener even when another transport comes first; an empty listener list is refused as in the file", async () => {
    const b = await startBroker({ logLevel: "silent", listeners: [{ protocol: "ws", port: 0 }, { port: 0 }] });
    try {
      expect(b.port).toBe(b.addresses[0]!.port);
      expect(b.url).toBe(`mqtt://127.0.0.1:${b.addresses[1]!.port}`);
    } finally {
      await b.stop();
    }
    const err = await startBroker({ listeners: [] }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain("listeners");
  });

  test('logLevel "silent": nothing on stderr, even for a refused client', async () => {
    const lines: string[] = [];
    const real = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string | Uint8Array) => (lines.push(String(c)), true)) as typeof process.stderr.write;
    try {
      const b = await startBroker({ port: 0, logLevel: "silent", auth: { allowAnonymous: false, users: [{ username: "u", password: "p" }] } });
      await connectClient(b.port, { clientId: "silent-refused", username: "u", password: "wrong" }).catch(() => {});
      await b.stop();
    } finally {
      process.stderr.write = real;
    }
    expect(lines).toEqual([]);
  });

  test("persistence.path: a retained message survives stop and start; stop() twice is harmless", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunmq-embed-"));
    try {
      const path = join(dir, "state.db");
      const a = await startBroker({ port: 0, logLevel: "silent", persistence: { path } });
      const pub = await connectClient(a.port, { clientId: "embed-pub" });
      await pub.client.publishAsync("embed/kept", "still here", { qos: 1, retain: true });
      await pub.end();
      await a.stop();
      await a.stop();
      const b = await startBroker({ port: 0, logLevel: "silent", persistence: { path } });
      try {
        expect(b.stats().retained).toBeGreaterThanOrEqual(1);
        const sub = await connectClient(b.port, { clientId: "embed-sub" });
        await sub.client.subscribeAsync("embed/kept", { qos: 1 });
        await sub.waitMessages(1, 3000);
        expect(sub.messages[0]!.payload.toString()).toBe("still here");
        await sub.end();
      } finally {
        await b.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
