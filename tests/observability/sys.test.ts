/**
 * $SYS (Mosquitto's topic names, plus bunmq's own): retained messages that a
 * `$SYS/#` subscriber gets at once, updated every sys.interval seconds with
 * values that follow what clients did; off with interval 0; readable only
 * where the ACL allows once rules exist; never written to the store. Clients
 * cannot publish to $SYS (tests/protocol/03-publish.test.ts, §4.7.2).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningBroker } from "../../lib/server.ts";
import { SqliteStore } from "../../lib/store-sqlite.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type Received, type TestClient } from "../helpers/clients.ts";

const MOSQUITTO_NAMES = [
  "$SYS/broker/version",
  "$SYS/broker/uptime",
  "$SYS/broker/clients/connected",
  "$SYS/broker/clients/disconnected",
  "$SYS/broker/clients/total",
  "$SYS/broker/clients/maximum",
  "$SYS/broker/messages/received",
  "$SYS/broker/messages/sent",
  "$SYS/broker/messages/stored",
  "$SYS/broker/subscriptions/count",
  "$SYS/broker/retained messages/count",
  "$SYS/broker/store/messages/count",
  ...["messages", "bytes"].flatMap((k) => ["received", "sent"].flatMap((d) => ["1min", "5min", "15min"].map((w) => `$SYS/broker/load/${k}/${d}/${w}`))),
];
const BUNMQ_NAMES = [
  "$SYS/broker/takeovers",
  "$SYS/broker/dropped/queue_full",
  "$SYS/broker/dropped/qos0_pending",
  "$SYS/broker/dropped/acl",
  "$SYS/broker/dropped/expired",
  "$SYS/broker/store/commit_p99_us",
];

/** The latest value of each $SYS topic a client has received. */
function latest(msgs: Received[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const x of msgs) m.set(x.topic, x.payload.toString());
  return m;
}

async function sysSubscriber(port: number, clientId: string, version: 4 | 5 = 4): Promise<TestClient> {
  const c = await connectClient(port, { protocolVersion: version, clientId });
  await c.client.subscribeAsync("$SYS/#", { qos: 0 });
  return c;
}

describe("$SYS topics (sys.interval)", () => {
  let rb: RunningBroker;
  beforeAll(async () => {
    rb = await startTestBroker({ sys: { interval: 3600 } }); // updates are driven by the tests (sys.publish())
  });
  afterAll(() => rb.stop());

  test("a $SYS/# subscriber (3.1.1 and 5) gets every Mosquitto topic and bunmq's own at once, as retained messages", async () => {
    for (const v of [4, 5] as const) {
      const s = await sysSubscriber(rb.port, `sys-all-${v}`, v);
      await waitFor(() => latest(s.messages).size >= MOSQUITTO_NAMES.length + BUNMQ_NAMES.length, 3000, "$SYS topics");
      const got = latest(s.messages);
      for (const t of [...MOSQUITTO_NAMES, ...BUNMQ_NAMES]) expect({ t, present: got.has(t) }).toEqual({ t, present: true });
      expect(s.messages.every((m) => m.retain)).toBe(true);
      expect(got.get("$SYS/broker/version")).toMatch(/^bunmq version \d+\.\d+\.\d+/);
      expect(got.get("$SYS/broker/uptime")).toMatch(/^\d+ seconds$/);
      await s.end();
    }
  });

  test("values follow the clients: connected, disconnected, total, maximum, messages received and sent, subscriptions, takeovers", async () => {
    const s = await sysSubscriber(rb.port, "sys-watch");
    const persistent = await connectClient(rb.port, { clientId: "sys-persist", clean: false });
    await persistent.client.subscribeAsync("sys/t", { qos: 1 });
    await persistent.end();
    // A peak of 5 connected (sys-watch and four others), then back to 1.
    const peak = await Promise.all([1, 2, 3, 4].map((i) => connectClient(rb.port, { clientId: `sys-peak-${i}` })));
    for (const c of peak) await c.end();
    const a = await connectClient(rb.port, { clientId: "sys-a", protocolVersion: 5 });
    const b = await connectClient(rb.port, { clientId: "sys-a", protocolVersion: 5 }); // takes over a
    const received0 = Number(latest(s.messages).get("$SYS/broker/messages/received"));
    for (let i = 0; i < 4; i++) await b.client.publishAsync("sys/t", "x", { qos: 1 });
    await waitFor(() => rb.broker.sessions.get("sys-persist")!.queue.length === 4, 3000, "queued");
    s.messages.length = 0;
    rb.broker.sys!.publish();
    await waitFor(() => latest(s.messages).has("$SYS/broker/messages/received"), 3000, "an update");
    const got = latest(s.messages);
    expect(got.get("$SYS/broker/clients/connected")).toBe(String(rb.broker.clients));
    expect(Number(got.get("$SYS/broker/clients/connected"))).toBe(2); // sys-watch and sys-a
    expect(got.get("$SYS/broker/clients/disconnected")).toBe("1"); // sys-persist
    expect(got.get("$SYS/broker/clients/total")).toBe("3");
    expect(Number(got.get("$SYS/broker/clients/maximum"))).toBeGreaterThanOrEqual(5);
    expect(Number(got.get("$SYS/broker/messages/received")) - received0).toBe(4);
    expect(got.get("$SYS/broker/subscriptions/count")).toBe(String(rb.broker.stats().subscriptions));
    expect(got.get("$SYS/broker/takeovers")).toBe("1");
    expect(Number(got.get("$SYS/broker/messages/stored"))).toBeGreaterThanOrEqual(4);
    // Load averages are per-minute rates (Mosquitto's calc_load): 4 messages in a 3600 s interval is a small positive number.
    expect(Number(got.get("$SYS/broker/load/messages/received/1min"))).toBeGreaterThanOrEqual(0);
    await a.end(true);
    await b.end();
    await s.end();
  });

  test("an update publishes only what changed (uptime always); a new subscriber still gets every topic", async () => {
    const s = await sysSubscriber(rb.port, "sys-changes");
    await waitFor(() => latest(s.messages).size >= MOSQUITTO_NAMES.length, 3000, "$SYS topics");
    rb.broker.sys!.publish(); // takes in this subscriber's own connection
    await waitFor(() => s.messages.filter((m) => m.topic === "$SYS/broker/uptime").length === 2, 3000, "an uptime update");
    s.messages.length = 0;
    rb.broker.sys!.publish();
    rb.broker.sys!.publish();
    await waitFor(() => s.messages.filter((m) => m.topic === "$SYS/broker/uptime").length === 2, 3000, "two uptime updates");
    const topics = new Set(s.messages.map((m) => m.topic));
    expect(topics.has("$SYS/broker/version")).toBe(false);
    expect(topics.has("$SYS/broker/clients/total")).toBe(false);
    expect(s.messages.every((m) => !m.retain)).toBe(true); // live updates to an existing subscription: retain flag 0 ([MQTT-3.3.1-9])
    await s.end();
  });

  test("$SYS/broker/dropped/* and store/commit_p99_us are numbers", async () => {
    const s = await sysSubscriber(rb.port, "sys-drops");
    await waitFor(() => latest(s.messages).size >= BUNMQ_NAMES.length, 3000, "$SYS topics");
    const got = latest(s.messages);
    for (const t of BUNMQ_NAMES) expect({ t, n: /^\d+$/.test(got.get(t) ?? "") }).toEqual({ t, n: true });
    await s.end();
  });
});

describe("sys.interval", () => {
  test("0 turns $SYS off: a $SYS/# subscriber gets nothing", async () => {
    const rb = await startTestBroker({ sys: { interval: 0 } });
    const s = await sysSubscriber(rb.port, "sys-off");
    const p = await connectClient(rb.port, { clientId: "sys-off-p" });
    await s.client.subscribeAsync("marker", { qos: 1 });
    await p.client.publishAsync("marker", "m", { qos: 1 });
    await s.waitMessages(1);
    expect(s.messages.map((m) => m.topic)).toEqual(["marker"]);
    expect(rb.broker.retainedCount).toBe(0);
    await s.end();
    await p.end();
    await rb.stop();
  });

  test("updates arrive every interval seconds without anyone asking (interval 1)", async () => {
    const rb = await startTestBroker({ sys: { interval: 1 } });
    const s = await sysSubscriber(rb.port, "sys-timer");
    await waitFor(() => s.messages.filter((m) => m.topic === "$SYS/broker/uptime").length >= 2, 4000, "a timed update");
    await s.end();
    await rb.stop();
  });
});

describe("$SYS and the ACL", () => {
  test("once rules exist, $SYS/# is readable only where a rule allows it: the allowed user gets it, another gets SUBACK 0x80 for $SYS/# and nothing via #", async () => {
    const rb = await startTestBroker({
      sys: { interval: 3600 },
      auth: {
        users: [
          { username: "ops", password: "pw" },
          { username: "dev", password: "pw" },
        ],
        acl: [
          { user: "ops", topic: "$SYS/#", action: "subscribe", allow: true },
          { user: "dev", topic: "#", action: "all", allow: true },
        ],
      },
    });
    const ops = await connectClient(rb.port, { clientId: "ops", username: "ops", password: "pw" });
    await ops.client.subscribeAsync("$SYS/#", { qos: 0 });
    await waitFor(() => latest(ops.messages).has("$SYS/broker/version"), 3000, "ops gets $SYS");
    const dev = await connectClient(rb.port, { clientId: "dev", username: "dev", password: "pw" });
    // MQTT.js reports a SUBACK 0x80 as "Subscribe error: Unspecified error".
    const refused = await new Promise<string>((resolve) => dev.client.subscribe("$SYS/#", { qos: 0 }, (err) => resolve(String(err))));
    expect(refused).toContain("Unspecified error");
    await dev.client.subscribeAsync("#", { qos: 0 });
    rb.broker.sys!.publish();
    await dev.client.publishAsync("marker", "m", { qos: 1 });
    await dev.waitMessages(1);
    await Bun.sleep(50);
    expect(dev.messages.map((m) => m.topic)).toEqual(["marker"]);
    await ops.end();
    await dev.end();
    await rb.stop();
  });
});

describe("$SYS and the store", () => {
  test("$SYS retained messages are never written to the store (they would be stale after a restart)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunmq-sys-"));
    const path = join(dir, "s.db");
    const rb = await startTestBroker({ sys: { interval: 1 }, persistence: { path } });
    const p = await connectClient(rb.port, { clientId: "sys-store" });
    await p.client.publishAsync("kept/retained", "r", { qos: 1, retain: true });
    rb.broker.sys!.publish();
    await p.end();
    await rb.stop();
    const store = new SqliteStore(path);
    const topics = store.load().retained.map((r) => r.topic);
    store.close();
    expect(topics).toEqual(["kept/retained"]);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("$SYS with Mosquitto's own client", () => {
  const have = spawnSync("sh", ["-c", "command -v mosquitto_sub"]).status === 0;
  if (!have) console.warn("sys.test.ts: mosquitto_sub not found (apt-get install mosquitto-clients); skipping the interop test");
  test.skipIf(!have)("mosquitto_sub -t '$SYS/broker/version' -C 1 reads bunmq's version", async () => {
    const rb = await startTestBroker({ sys: { interval: 3600 } });
    const proc = Bun.spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", String(rb.port), "-t", "$SYS/broker/version", "-C", "1", "-W", "5"], { stdout: "pipe" });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    expect(out.trim()).toMatch(/^bunmq version /);
    await rb.stop();
  });
});
