/**
 * The info log of client lifecycles (lib/event-log.ts), read from a real
 * broker process: a connect line (client, user, remote, listener, version,
 * clean, new or resumed session), a disconnect line for clients that had
 * connected (the reason, and the v5 reason code sent), refusals with the
 * reason code, a recognisable line naming the limit for clients closed by
 * one (keep alive, maximum packet size), one line only for a takeover,
 * nothing for a socket that never sent CONNECT; text on stderr, JSON lines
 * with --log-format json, and a log file instead of stderr.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BrokerProcess } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunmq-logs-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = {
  auth: { users: [{ username: "alice", password: "secret" }] },
  limits: { maxPacketSize: 1024 },
  sys: { interval: 0 },
};

async function start(extra: string[] = [], config: object = CONFIG): Promise<{ p: BrokerProcess; port: number }> {
  const path = join(dir, `config-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(config));
  const p = BrokerProcess.start(["--config", path, "--port", "0", "--data", ":memory:", ...extra]);
  try {
    return { p, port: await p.port() };
  } catch (e) {
    await p.kill();
    throw e;
  }
}

async function stop(p: BrokerProcess): Promise<void> {
  p.proc.kill("SIGTERM");
  await p.exitCode().catch(() => p.kill());
}

/** Wait until `read()` has a line matching `re`; returns it. */
async function line(read: () => string, re: RegExp, what: string, ms = 10_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = read().split("\n").find((l) => re.test(l));
    if (hit !== undefined) return hit;
    if (Date.now() > end) throw new Error(`no log line ${re} (${what})\n${read()}`);
    await Bun.sleep(10);
  }
}

const lines = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l));

describe("text lines on stderr", () => {
  let p: BrokerProcess;
  let port: number;
  beforeAll(async () => ({ p, port } = await start()));
  afterAll(() => stop(p));
  const err = () => p.stderr;

  test("connect: client, user, remote, listener, version, clean and a new session; a resumed one says so", async () => {
    const c = await RawClient.connected(port, 5, { clientId: "log-alice", username: "alice", password: Buffer.from("secret"), clean: false, properties: { sessionExpiryInterval: 60 } });
    const l = await line(err, /INFO client connected client=log-alice /, "first connect");
    expect(l).toContain(" user=alice ");
    expect(l).toMatch(/ remote=127\.0\.0\.1:\d+ /);
    expect(l).toContain(` listener=mqtt://127.0.0.1:${port} `);
    expect(l).toContain(" version=5 ");
    expect(l).toContain(" clean=false ");
    expect(l).toMatch(/ session=new$/);
    c.send({ cmd: "disconnect", reasonCode: 0 });
    await c.waitClose();
    await line(err, /INFO client disconnected client=log-alice reason="client sent DISCONNECT" remote=/, "normal disconnect, no code sent");

    const again = await RawClient.connected(port, 4, { clientId: "log-alice", username: "alice", password: Buffer.from("secret"), clean: false });
    const resumed = await line(err, /INFO client connected client=log-alice .* version=4 .*session=resumed$/, "reconnect");
    expect(resumed).toContain(" clean=false ");
    again.destroy();
    // A 3.1.1 client whose socket just ends: the reason is the transport's, with no code.
    const gone = await line(err, /INFO client disconnected client=log-alice reason=(?!"client sent DISCONNECT")/, "socket closed by the client");
    expect(gone).not.toContain(" code=");
  });

  test("refusal: client, reason code name, why; no connect or disconnect line for it", async () => {
    const c = await RawClient.connect(port, 5);
    const ack = await c.handshake({ clientId: "log-wrong-pw", username: "alice", password: Buffer.from("nope") });
    expect(ack.reasonCode).toBe(0x86);
    const l = await line(err, /INFO connection refused client=log-wrong-pw /, "bad password");
    expect(l).toContain(' code="bad user name or password"');
    expect(l).toContain(" user=alice ");
    expect(l).toContain(` listener=mqtt://127.0.0.1:${port}`);
    await c.waitClose();
    c.destroy();
    // Let a later line show up if there were one: the marker client connects after it.
    const marker = await RawClient.connected(port, 4, { clientId: "log-marker-1" });
    await line(err, /client connected client=log-marker-1 /, "marker");
    marker.destroy();
    // Its disconnect line too, so that it does not land in the next test's window.
    const gone = await line(err, /client disconnected client=log-marker-1 /, "marker gone");
    expect(gone).toMatch(/ remote=127\.0\.0\.1:\d+$/); // the port is still known after the close
    expect(lines(err(), /client=log-wrong-pw/)).toHaveLength(1);
  });

  test("a socket that never sends CONNECT logs nothing", async () => {
    const before = err();
    const c = await RawClient.connect(port, 4);
    c.destroy();
    const marker = await RawClient.connected(port, 4, { clientId: "log-marker-2" });
    await line(err, /client connected client=log-marker-2 /, "marker");
    marker.destroy();
    const added = err().slice(before.length);
    expect(lines(added, /INFO /).filter((l) => !/log-marker-2/.test(l))).toEqual([]);
  });

  test("a packet over limits.maxPacketSize: 'client closed by a limit' naming it, with the v5 code sent", async () => {
    const c = await RawClient.connected(port, 5, { clientId: "log-too-big" });
    c.send({ cmd: "publish", topic: "t", payload: Buffer.alloc(2000), qos: 0 });
    const d = await c.nextOf("disconnect", 5000);
    expect(d.reasonCode).toBe(0x95);
    const l = await line(err, /INFO client closed by a limit client=log-too-big /, "packet too large");
    expect(l).toContain(" limit=limits.maxPacketSize ");
    expect(l).toContain(' code="packet too large"');
    expect(lines(err(), /client disconnected client=log-too-big/)).toEqual([]);
    c.destroy();
  });

  test("keep alive: 'client closed by a limit' with limit=keepalive", async () => {
    const c = await RawClient.connected(port, 4, { clientId: "log-silent", keepalive: 1 });
    expect(await c.waitClose(10_000)).toBe(true);
    const l = await line(err, /INFO client closed by a limit client=log-silent /, "keep alive timeout");
    expect(l).toContain(" limit=keepalive ");
    expect(l).not.toContain(" code="); // 3.1.1: no DISCONNECT could carry one
  }, 15_000);

  test("takeover: the one 'session taken over' line, no disconnect line for the old connection", async () => {
    const a = await RawClient.connected(port, 5, { clientId: "log-twice" });
    await line(err, /client connected client=log-twice .*session=new$/, "first");
    const b = await RawClient.connected(port, 5, { clientId: "log-twice" });
    expect((await a.nextOf("disconnect", 5000)).reasonCode).toBe(0x8e);
    await line(err, /INFO session taken over client=log-twice /, "takeover");
    expect(lines(err(), /client connected client=log-twice /)).toHaveLength(2);
    b.send({ cmd: "disconnect", reasonCode: 0 });
    await line(err, /client disconnected client=log-twice /, "second one's own disconnect");
    expect(lines(err(), /client disconnected client=log-twice /)).toHaveLength(1);
    a.destroy();
    b.destroy();
  });
});

describe("shutdown", () => {
  test("a v5 client at shutdown: its disconnect line carries code=\"server shutting down\"", async () => {
    const { p, port } = await start();
    const c = await RawClient.connected(port, 5, { clientId: "log-at-stop" });
    await line(() => p.stderr, /client connected client=log-at-stop /, "connect");
    p.proc.kill("SIGTERM");
    expect(await p.exitCode()).toBe(0);
    expect(p.stderr).toMatch(/INFO client disconnected client=log-at-stop reason="server shutting down" code="server shutting down" /);
    c.destroy();
  });
});

describe("--log-format json and --log-file", () => {
  test("json: one object per line on stderr, with time, level, msg and the fields", async () => {
    const { p, port } = await start(["--log-format", "json"]);
    try {
      const c = await RawClient.connected(port, 5, { clientId: "log-json", username: "alice", password: Buffer.from("secret") });
      const l = await line(() => p.stderr, /"msg":"client connected"/, "json connect");
      const o = JSON.parse(l);
      expect(o).toMatchObject({ level: "info", msg: "client connected", client: "log-json", user: "alice", version: 5, clean: true, session: "new", listener: `mqtt://127.0.0.1:${port}` });
      expect(Number.isNaN(Date.parse(o.time))).toBe(false);
      c.destroy();
      await line(() => p.stderr, /"msg":"client disconnected"/, "json disconnect");
    } finally {
      await stop(p);
    }
    // Every line the broker wrote is JSON, the start and shutdown lines included.
    for (const l of p.stderr.split("\n").filter((x) => x !== "")) expect(typeof JSON.parse(l).msg).toBe("string");
  });

  test("a log file gets the lines (appended); stderr stays empty", async () => {
    const file = join(dir, "logs", "bunmq.log");
    const { p, port } = await start(["--log-format", "json", "--log-file", file]);
    try {
      const c = await RawClient.connected(port, 4, { clientId: "log-to-file" });
      await line(() => readFileSync(file, "utf8"), /"client":"log-to-file"/, "in the file");
      c.destroy();
    } finally {
      await stop(p);
    }
    expect(p.stderr).toBe("");
    const first = readFileSync(file, "utf8");
    expect(lines(first, /"msg":"client connected"/)).toHaveLength(1);
    // A second run appends.
    const second = await start(["--log-format", "json", "--log-file", file]);
    const c = await RawClient.connected(second.port, 4, { clientId: "log-to-file-2" });
    await line(() => readFileSync(file, "utf8"), /"client":"log-to-file-2"/, "second run");
    c.destroy();
    await stop(second.p);
    const both = readFileSync(file, "utf8");
    expect(both.startsWith(first)).toBe(true);
    expect(lines(both, /"msg":"client connected"/)).toHaveLength(2);
  });

  test("logFile in the config is relative to the config file", async () => {
    const sub = mkdtempSync(join(dir, "rel-"));
    const path = join(sub, "config.json");
    writeFileSync(path, JSON.stringify({ logFile: "out/broker.log", sys: { interval: 0 } }));
    const p = BrokerProcess.start(["--config", path, "--port", "0", "--data", ":memory:"]);
    try {
      const port = await p.port();
      const c = await RawClient.connected(port, 4, { clientId: "log-relative" });
      await line(() => readFileSync(join(sub, "out", "broker.log"), "utf8"), /INFO client connected client=log-relative /, "relative file");
      c.destroy();
    } finally {
      await stop(p);
    }
  });

  test("a log file that cannot be opened: one line naming it, exit 1", async () => {
    const blocker = join(dir, "not-a-dir");
    writeFileSync(blocker, "x");
    const file = join(blocker, "bunmq.log");
    const p = BrokerProcess.start(["--port", "0", "--data", ":memory:", "--log-file", file]);
    expect(await p.exitCode()).toBe(1);
    expect(p.stderr).toMatch(new RegExp(`^bunmq: cannot open log file ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: .+\n$`));
    expect(p.stdout).not.toMatch(/listening on/);
  });
});
