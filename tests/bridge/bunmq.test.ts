/**
 * Bridges to another bunmq: the upstream is a second bunmq process (real
 * TCP, its own event loop), the edge an in-process broker whose `bridges[]`
 * connects to it. Specified here:
 * - both directions with prefix remapping (Mosquitto's `topic` semantics),
 *   QoS 0/1/2 end to end at min(message QoS, topic QoS), on v5 and 3.1.1;
 * - no loops with `direction: both`: each message once on each side;
 * - the upstream killed while 1,000 QoS 1 messages are published at the
 *   edge: all arrive after its restart, in order;
 * - the edge SIGKILLed while its bridge queue holds acknowledged messages:
 *   all arrive upstream after the edge restarts (its store);
 * - wrong credentials upstream: retried with backoff, logged in the status,
 *   local clients unaffected;
 * - WebSocket and TLS with a client certificate to the upstream;
 * - reload adds, changes and removes bridges; status in $SYS and /metrics;
 * - the reserved `$bridge/` Client IDs and the config checks.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BridgeConfig } from "../../lib/bridge/config.ts";
import { ConfigError, type ConfigInput, parseConfig } from "../../lib/config.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { BrokerProcess } from "../helpers/process.ts";
import { parsePrometheus } from "../helpers/prom.ts";

const FILE = "tests/bridge/bunmq.test.ts";

/** A port that was free a moment ago (for a broker restarted on the same port). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

/** A bunmq upstream process on `port` (0: any), memory store unless `args` say otherwise. */
async function upstream(port = 0, args: string[] = ["--data", ":memory:"]): Promise<{ p: BrokerProcess; port: number }> {
  const p = BrokerProcess.start(["--host", "127.0.0.1", "--port", String(port), ...args]);
  return { p, port: await p.port() };
}

type BridgeInput = Partial<BridgeConfig> & Pick<BridgeConfig, "topics">;

function bridge(port: number, b: BridgeInput): BridgeInput & { name: string; address: string } {
  return { name: "up", address: `mqtt://127.0.0.1:${port}`, reconnect: { minMs: 50, maxMs: 400 }, ...b };
}

async function edgeWith(bridges: BridgeInput[], extra: Partial<ConfigInput> = {}): Promise<RunningBroker> {
  return startTestBroker({ ...extra, bridges: bridges as never });
}

async function connected(rb: RunningBroker, name = "up", ms = 5000): Promise<void> {
  await waitFor(() => rb.bridges.get(name)?.status().connected === true, ms, `bridge ${name} connected`);
}

/** Wait until the upstream has the bridge's subscriptions (its SUBACK came back). */
async function settled(): Promise<void> {
  await Bun.sleep(100);
}

const topicsOf = (c: TestClient) => c.messages.map((m) => `${m.topic}=${m.payload}`);

for (const version of [5, 4] as const) {
  describe(`MQTT ${version === 5 ? "5" : "3.1.1"} bridge to a bunmq process`, () => {
    let up: { p: BrokerProcess; port: number };
    let edge: RunningBroker;
    beforeAll(async () => {
      up = await upstream();
      edge = await edgeWith([
        bridge(up.port, {
          protocolVersion: version,
          topics: [
            { pattern: "sensors/#", direction: "out", qos: 2, localPrefix: "", remotePrefix: "site1/" },
            { pattern: "commands/#", direction: "in", qos: 2, localPrefix: "edge/", remotePrefix: "site1/" },
            { pattern: "capped/#", direction: "out", qos: 1, localPrefix: "", remotePrefix: "" },
            { pattern: "loop/#", direction: "both", qos: 2, localPrefix: "", remotePrefix: "" },
          ],
        }),
      ]);
      await connected(edge);
      await settled();
    });
    afterAll(async () => {
      await edge?.stop();
      await up?.p.kill();
    });

    test("out: a local message arrives upstream with localPrefix stripped and remotePrefix added, at QoS 0, 1 and 2", async () => {
      const sub = await connectClient(up.port, { protocolVersion: 5 });
      await sub.client.subscribeAsync("site1/#", { qos: 2 });
      const pub = await connectClient(edge.port, { protocolVersion: version });
      for (const qos of [0, 1, 2] as const) await pub.client.publishAsync(`sensors/q${qos}`, `m${qos}`, { qos });
      const got = await sub.waitMessages(3);
      expect(got.map((m) => [m.topic, String(m.payload), m.qos]).sort()).toEqual([
        ["site1/sensors/q0", "m0", 0],
        ["site1/sensors/q1", "m1", 1],
        ["site1/sensors/q2", "m2", 2],
      ]);
      await sub.end();
      await pub.end();
    });

    test("in: an upstream message arrives locally with remotePrefix stripped and localPrefix added, at QoS 0, 1 and 2", async () => {
      const sub = await connectClient(edge.port, { protocolVersion: version });
      await sub.client.subscribeAsync("edge/#", { qos: 2 });
      const pub = await connectClient(up.port, { protocolVersion: 5 });
      for (const qos of [0, 1, 2] as const) await pub.client.publishAsync(`site1/commands/c${qos}`, `c${qos}`, { qos });
      const got = await sub.waitMessages(3);
      expect(got.map((m) => [m.topic, String(m.payload), m.qos]).sort()).toEqual([
        ["edge/commands/c0", "c0", 0],
        ["edge/commands/c1", "c1", 1],
        ["edge/commands/c2", "c2", 2],
      ]);
      // Upstream topics outside the in entries are not subscribed, so never arrive.
      await pub.client.publishAsync("commands/unmapped", "x", { qos: 1 });
      await Bun.sleep(200);
      expect(sub.messages.length).toBe(3);
      await sub.end();
      await pub.end();
    });

    test("a topic's qos caps the forwarded QoS (min of the message's and the entry's)", async () => {
      const sub = await connectClient(up.port, { protocolVersion: 5 });
      await sub.client.subscribeAsync("capped/#", { qos: 2 });
      const pub = await connectClient(edge.port, { protocolVersion: version });
      await pub.client.publishAsync("capped/x", "q2", { qos: 2 });
      const [m] = await sub.waitMessages(1);
      expect(m!.qos).toBe(1);
      await sub.end();
      await pub.end();
    });

    test("no loop with direction both: each message arrives once on each side, from either side", async () => {
      const upSub = await connectClient(up.port, { protocolVersion: 5 });
      await upSub.client.subscribeAsync("loop/#", { qos: 2 });
      const edgeSub = await connectClient(edge.port, { protocolVersion: version });
      await edgeSub.client.subscribeAsync("loop/#", { qos: 2 });
      const edgePub = await connectClient(edge.port, { protocolVersion: version });
      const upPub = await connectClient(up.port, { protocolVersion: 5 });
      await edgePub.client.publishAsync("loop/from-edge", "e", { qos: 1 });
      await upPub.client.publishAsync("loop/from-up", "u", { qos: 2 });
      await upSub.waitMessages(2);
      await edgeSub.waitMessages(2);
      await Bun.sleep(500); // an echo would arrive within this
      expect(topicsOf(upSub).sort()).toEqual(["loop/from-edge=e", "loop/from-up=u"]);
      expect(topicsOf(edgeSub).sort()).toEqual(["loop/from-edge=e", "loop/from-up=u"]);
      for (const c of [upSub, edgeSub, edgePub, upPub]) await c.end();
    });
  });
}

describe("the upstream goes away", () => {
  test("upstream killed, 1,000 QoS 1 messages published at the edge, upstream restarted: all arrive, in order", async () => {
    const port = freePort();
    let up = await upstream(port);
    // Backoff of at least 500 ms: the upstream subscriber is in place before the bridge comes back.
    const edge = await edgeWith([bridge(port, { reconnect: { minMs: 1000, maxMs: 2000 }, topics: [{ pattern: "seq/#", direction: "out", qos: 1, localPrefix: "", remotePrefix: "" }] })]);
    try {
      await connected(edge);
      await up.p.kill();
      await waitFor(() => !edge.bridges.get("up")!.status().connected, 5000, "bridge disconnected");
      const pub = await connectClient(edge.port, { protocolVersion: 5 });
      for (let i = 0; i < 1000; i++) pub.client.publish("seq/n", String(i), { qos: 1 });
      await waitFor(() => edge.bridges.get("up")!.status().queued === 1000, 10_000, "1000 queued for the bridge");
      up = await upstream(port);
      const sub = await connectClient(port, { protocolVersion: 5 });
      await sub.client.subscribeAsync("seq/#", { qos: 1 });
      const got = await sub.waitMessages(1000, 20_000);
      expect(got.map((m) => Number(String(m.payload)))).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      await waitFor(() => edge.bridges.get("up")!.status().queued === 0, 5000, "queue drained");
      const st = edge.bridges.get("up")!.status();
      expect(st.connects).toBeGreaterThanOrEqual(2);
      expect(st.dropped).toBe(0);
      await sub.end();
      await pub.end();
    } finally {
      await edge.stop();
      await up.p.kill();
    }
  }, 40_000);

  test("the upstream session persists: what it held for the bridge while the edge was down arrives after the edge restarts (cleanStart false, session expiry)", async () => {
    const { p, port } = await upstream();
    const dir = mkdtempSync(join(tmpdir(), "bunmq-bridge-held-"));
    const cfg = bridge(port, { topics: [{ pattern: "held/#", direction: "in", qos: 1, localPrefix: "", remotePrefix: "" }] });
    const store = { persistence: { path: join(dir, "edge.db") } };
    let edge = await edgeWith([cfg], store);
    try {
      await connected(edge);
      await settled();
      // A local subscriber with a persistent session, so the edge keeps what arrives for it.
      const first = await connectClient(edge.port, { protocolVersion: 5, clientId: "local-sub", clean: false, properties: { sessionExpiryInterval: 3600 } });
      await first.client.subscribeAsync("held/#", { qos: 1 });
      await first.end();
      await edge.stop(); // normal DISCONNECT: the upstream keeps the bridge's session and queues for it
      const pub = await connectClient(port, { protocolVersion: 5 });
      for (let i = 0; i < 20; i++) await pub.client.publishAsync("held/x", String(i), { qos: 1 });
      await pub.end();
      edge = await edgeWith([cfg], store);
      await connected(edge);
      const sub = await connectClient(edge.port, { protocolVersion: 5, clientId: "local-sub", clean: false, properties: { sessionExpiryInterval: 3600 } });
      const got = await sub.waitMessages(20, 5000);
      expect(got.map((m) => Number(String(m.payload)))).toEqual(Array.from({ length: 20 }, (_, i) => i));
      await sub.end();
    } finally {
      await edge.stop();
      await p.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});

describe("the edge is killed", () => {
  test("SIGKILL of the edge while its bridge queue holds acknowledged messages: after its restart every one arrives upstream", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunmq-bridge-crash-"));
    const port = freePort();
    const cfgPath = join(dir, "edge.json");
    writeFileSync(
      cfgPath,
      JSON.stringify({
        listeners: [{ host: "127.0.0.1", port: 0 }],
        persistence: { path: join(dir, "edge.db") },
        bridges: [{ name: "up", address: `mqtt://127.0.0.1:${port}`, reconnect: { minMs: 50, maxMs: 300 }, topics: [{ pattern: "crash/#", direction: "out", qos: 1 }] }],
      }),
    );
    let edge = BrokerProcess.start(["--config", cfgPath]);
    let up: { p: BrokerProcess; port: number } | null = null;
    try {
      const edgePort = await edge.port();
      // The upstream is down: the bridge queues. Every PUBACK means "stored".
      const pub = await connectClient(edgePort, { protocolVersion: 5 });
      for (let i = 0; i < 300; i++) await pub.client.publishAsync("crash/n", String(i), { qos: 1 });
      await pub.end(true);
      edge.proc.kill(9);
      await edge.proc.exited;
      up = await upstream(port);
      const sub = await connectClient(port, { protocolVersion: 5 });
      await sub.client.subscribeAsync("crash/#", { qos: 1 });
      edge = BrokerProcess.start(["--config", cfgPath]);
      await edge.port();
      const got = await sub.waitMessages(300, 15_000);
      expect(got.map((m) => Number(String(m.payload)))).toEqual(Array.from({ length: 300 }, (_, i) => i));
      await sub.end();
    } finally {
      await edge.kill();
      await up?.p.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

describe("credentials and transports", () => {
  test("wrong credentials upstream: refused, retried with backoff, the status says why, local clients unaffected", async () => {
    const users = mkdtempSync(join(tmpdir(), "bunmq-bridge-auth-"));
    const cfg = join(users, "up.json");
    writeFileSync(cfg, JSON.stringify({ auth: { allowAnonymous: false, users: [{ username: "edge", password: "right-password" }] } }));
    const up = await upstream(0, ["--config", cfg, "--data", ":memory:"]);
    const edge = await edgeWith([bridge(up.port, { username: "edge", password: "wrong", reconnect: { minMs: 50, maxMs: 200 }, topics: [{ pattern: "a/#", direction: "both", qos: 1, localPrefix: "", remotePrefix: "" }] })]);
    try {
      await waitFor(() => edge.bridges.get("up")!.status().failures >= 3, 5000, "three failed attempts");
      const st = edge.bridges.get("up")!.status();
      expect(st.connected).toBe(false);
      expect(st.lastError).toMatch(/^connection refused: bad user name or password/i);
      // The local broker is unaffected.
      const a = await connectClient(edge.port, { protocolVersion: 5 });
      await a.client.subscribeAsync("a/#", { qos: 1 });
      const b = await connectClient(edge.port);
      await b.client.publishAsync("a/x", "local", { qos: 1 });
      expect(String((await a.waitMessages(1))[0]!.payload)).toBe("local");
      await a.end();
      await b.end();
    } finally {
      await edge.stop();
      await up.p.kill();
      rmSync(users, { recursive: true, force: true });
    }
  }, 20_000);

  test("over WebSocket (ws://, subprotocol mqtt): both directions", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunmq-bridge-ws-"));
    const cfg = join(dir, "up.json");
    writeFileSync(cfg, JSON.stringify({ listeners: [{ host: "127.0.0.1", port: 0 }, { protocol: "ws", host: "127.0.0.1", port: 0 }] }));
    const up = BrokerProcess.start(["--config", cfg, "--data", ":memory:"]);
    try {
      const tcp = await up.port();
      const ws = Number((await up.waitStdout(/bunmq listening on ws:\/\/\S+:(\d+)/))[1]);
      const edge = await edgeWith([{ name: "up", address: `ws://127.0.0.1:${ws}/mqtt`, topics: [{ pattern: "w/#", direction: "both", qos: 1, localPrefix: "", remotePrefix: "" }] } as BridgeInput]);
      try {
        await connected(edge);
        await settled();
        const upSub = await connectClient(tcp, { protocolVersion: 5 });
        await upSub.client.subscribeAsync("w/#", { qos: 1 });
        const edgeSub = await connectClient(edge.port, { protocolVersion: 5 });
        await edgeSub.client.subscribeAsync("w/#", { qos: 1 });
        await edgeSub.client.publishAsync("w/from-edge", "1", { qos: 1 });
        await upSub.client.publishAsync("w/from-up", "2", { qos: 1 });
        await upSub.waitMessages(2);
        await edgeSub.waitMessages(2);
        await Bun.sleep(200);
        expect(topicsOf(upSub).sort()).toEqual(["w/from-edge=1", "w/from-up=2"]);
        expect(topicsOf(edgeSub).sort()).toEqual(["w/from-edge=1", "w/from-up=2"]);
        await upSub.end();
        await edgeSub.end();
      } finally {
        await edge.stop();
      }
    } finally {
      await up.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);

  const certs = testCerts();
  warnSkip(FILE);
  test.skipIf(certs === null)("TLS with a client certificate (mqtts, requireClientCert): accepted with the certificate, refused without", async () => {
    const c = certs!;
    const dir = mkdtempSync(join(tmpdir(), "bunmq-bridge-tls-"));
    const cfg = join(dir, "up.json");
    writeFileSync(cfg, JSON.stringify({ listeners: [{ host: "127.0.0.1", port: 0 }, { protocol: "mqtts", host: "127.0.0.1", port: 0, tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca, requireClientCert: true } }] }));
    const up = BrokerProcess.start(["--config", cfg, "--data", ":memory:"]);
    try {
      const tcp = await up.port();
      const tls = Number((await up.waitStdout(/bunmq listening on mqtts:\/\/\S+:(\d+)/))[1]);
      const topics = [{ pattern: "t/#", direction: "out" as const, qos: 1 as const, localPrefix: "", remotePrefix: "" }];
      const edge = await edgeWith([
        { name: "withcert", address: `mqtts://localhost:${tls}`, tls: { ca: c.ca, cert: c.aliceCert, key: c.aliceKey, rejectUnauthorized: true }, topics } as BridgeInput,
        { name: "nocert", address: `mqtts://localhost:${tls}`, tls: { ca: c.ca, rejectUnauthorized: true }, reconnect: { minMs: 50, maxMs: 200 }, topics: [{ ...topics[0]!, pattern: "n/#" }] } as BridgeInput,
        // The upstream's certificate does not chain to this CA: the bridge must not connect.
        { name: "wrongca", address: `mqtts://localhost:${tls}`, tls: { ca: c.otherCa, cert: c.aliceCert, key: c.aliceKey }, reconnect: { minMs: 50, maxMs: 200 }, topics: [{ ...topics[0]!, pattern: "n/#" }] } as BridgeInput,
      ]);
      try {
        await connected(edge, "withcert");
        const sub = await connectClient(tcp, { protocolVersion: 5 });
        await sub.client.subscribeAsync(["t/#", "n/#"], { qos: 1 });
        const pub = await connectClient(edge.port, { protocolVersion: 5 });
        await pub.client.publishAsync("t/x", "secure", { qos: 1 });
        await pub.client.publishAsync("n/x", "never", { qos: 1 });
        expect(String((await sub.waitMessages(1))[0]!.payload)).toBe("secure");
        await waitFor(() => edge.bridges.get("nocert")!.status().failures >= 2, 5000, "nocert failures");
        expect(edge.bridges.get("nocert")!.status().connected).toBe(false);
        await waitFor(() => edge.bridges.get("wrongca")!.status().failures >= 2, 5000, "wrongca failures");
        expect(edge.bridges.get("wrongca")!.status()).toMatchObject({ connected: false, connects: 0 });
        await Bun.sleep(200);
        expect(topicsOf(sub)).toEqual(["t/x=secure"]);
        await sub.end();
        await pub.end();
      } finally {
        await edge.stop();
      }
    } finally {
      await up.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});

describe("reload, status and rules", () => {
  test("reload adds a bridge, changes one (new prefix, queue kept) and removes one (its session ends)", async () => {
    const { p, port } = await upstream();
    const a = bridge(port, { name: "a", topics: [{ pattern: "ra/#", direction: "out", qos: 1, localPrefix: "", remotePrefix: "one/" }] });
    const b = bridge(port, { name: "b", topics: [{ pattern: "rb/#", direction: "out", qos: 1, localPrefix: "", remotePrefix: "" }] });
    const edge = await edgeWith([a]);
    try {
      await connected(edge, "a");
      const sub = await connectClient(port, { protocolVersion: 5 });
      await sub.client.subscribeAsync("#", { qos: 1 });
      const pub = await connectClient(edge.port, { protocolVersion: 5 });
      const base = { listeners: [{ host: "127.0.0.1", port: 0 }], persistence: { path: ":memory:" }, logLevel: "error" };
      const r1 = edge.reload(parseConfig({ ...base, bridges: [{ ...a, topics: [{ ...a.topics[0]!, remotePrefix: "two/" }] }, b] }));
      expect(r1.changes).toEqual(expect.arrayContaining(["bridge a changed", "bridge b added"]));
      expect(r1.restartNeeded).not.toContain("bridges");
      await connected(edge, "a");
      await connected(edge, "b");
      await pub.client.publishAsync("ra/x", "1", { qos: 1 });
      await pub.client.publishAsync("rb/x", "2", { qos: 1 });
      await sub.waitMessages(2);
      expect(topicsOf(sub).sort()).toEqual(["rb/x=2", "two/ra/x=1"]);
      const r2 = edge.reload(parseConfig({ ...base, bridges: [b] }));
      expect(r2.changes).toContain("bridge a removed");
      expect(edge.broker.sessions.has("$bridge/a")).toBe(false);
      expect(edge.bridges.status().map((s) => s.name)).toEqual(["b"]);
      await pub.client.publishAsync("ra/x", "3", { qos: 1 });
      await Bun.sleep(200);
      expect(sub.messages.length).toBe(2);
      await sub.end();
      await pub.end();
    } finally {
      await edge.stop();
      await p.kill();
    }
  }, 20_000);

  test("status: $SYS/broker/bridges/NAME/state is 1 while connected, 0 after the upstream goes; /metrics has bunmq_bridge_* per bridge", async () => {
    const { p, port } = await upstream();
    const edge = await edgeWith([bridge(port, { topics: [{ pattern: "s/#", direction: "out", qos: 1, localPrefix: "", remotePrefix: "" }] })], {
      sys: { interval: 1 },
      listeners: [{ host: "127.0.0.1", port: 0 }, { protocol: "http", host: "127.0.0.1", port: 0 }],
    });
    try {
      await connected(edge);
      const sys = await connectClient(edge.port, { protocolVersion: 5 });
      await sys.client.subscribeAsync("$SYS/broker/bridges/up/state", { qos: 0 });
      await waitFor(() => sys.messages.some((m) => String(m.payload) === "1"), 3000, "state 1");
      const pub = await connectClient(edge.port, { protocolVersion: 5 });
      await pub.client.publishAsync("s/x", "hello", { qos: 1 });
      await waitFor(() => edge.bridges.get("up")!.status().messagesOut === 1 && edge.bridges.get("up")!.status().queued === 0, 3000, "sent");
      const http = edge.addresses.find((x) => x.protocol === "http")!;
      const fams = parsePrometheus(await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text());
      const val = (name: string, labels: Record<string, string>) => fams.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
      expect(val("bunmq_bridge_connected", { bridge: "up" })).toBe(1);
      expect(val("bunmq_bridge_messages_total", { bridge: "up", direction: "out" })).toBe(1);
      expect(val("bunmq_bridge_bytes_total", { bridge: "up", direction: "out" })).toBe(5);
      const api = (await (await fetch(`http://127.0.0.1:${http.port}/api/v1/bridges`)).json()) as { bridges: { name: string; connected: boolean }[] };
      expect(api.bridges.map((x) => [x.name, x.connected])).toEqual([["up", true]]);
      await p.kill();
      await waitFor(() => sys.messages.some((m) => String(m.payload) === "0"), 5000, "state 0");
      const after = parsePrometheus(await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text());
      expect(after.get("bunmq_bridge_connected")!.samples[0]!.value).toBe(0);
      expect(after.get("bunmq_bridge_failures_total")!.samples[0]!.value).toBeGreaterThanOrEqual(1);
      // The API cannot end a bridge's session (it holds the outbound queue).
      const del = await fetch(`http://127.0.0.1:${http.port}/api/v1/sessions/${encodeURIComponent("$bridge/up")}`, { method: "DELETE" });
      expect(del.status).toBe(409);
      await sys.end();
      await pub.end();
    } finally {
      await edge.stop();
      await p.kill();
    }
  }, 20_000);

  test("[MQTT-3.1.3-5] Client IDs starting with $bridge/ are reserved: CONNACK 0x85 (v5) / 0x02 (3.1.1)", async () => {
    const rb = await startTestBroker();
    try {
      await expect(connectClient(rb.port, { protocolVersion: 5, clientId: "$bridge/x" })).rejects.toThrow(/Client Identifier not valid|0x85|133/i);
      await expect(connectClient(rb.port, { protocolVersion: 4, clientId: "$bridge/x" })).rejects.toThrow(/Identifier rejected|2/i);
    } finally {
      await rb.stop();
    }
  });

  test("a bad bridge config exits with the field named", () => {
    const t = [{ pattern: "a/#", direction: "out" }];
    const bad = (bridges: unknown[], field: RegExp) => {
      expect(() => parseConfig({ bridges })).toThrow(ConfigError);
      expect(() => parseConfig({ bridges })).toThrow(field);
    };
    bad([{ name: "x", address: "http://h", topics: t }], /bridges\.0\.address/);
    bad([{ name: "x", address: "mqtt://h", tls: { ca: "c" }, topics: t }], /bridges\.0\.tls: only for mqtts/);
    bad([{ name: "x", address: "mqtt://h", topics: [{ pattern: "a/#", remotePrefix: "b/+/" }] }], /bridges\.0\.topics\.0\.remotePrefix/);
    bad([{ name: "x", address: "mqtt://h", topics: [{ pattern: "a/#/b" }] }], /bridges\.0\.topics\.0\.pattern/);
    bad([{ name: "x", address: "mqtt://h", topics: [] }], /bridges\.0\.topics/);
    bad([{ name: "x", address: "mqtt://h", topics: t }, { name: "x", address: "mqtt://g", topics: t }], /bridges\.1\.name: another bridge is named x/);
    bad([{ name: "x", address: "mqtt://h", reconnect: { minMs: 1000, maxMs: 10 }, topics: t }], /bridges\.0\.reconnect\.maxMs/);
    const ok = parseConfig({ bridges: [{ name: "x", address: "mqtts://h", tls: { ca: "ca.crt" }, topics: t }] }, "config", "/etc/bunmq");
    expect(ok.bridges[0]!.tls!.ca).toBe("/etc/bunmq/ca.crt");
    expect(ok.bridges[0]!.protocolVersion).toBe(5);
    expect(ok.bridges[0]!.cleanStart).toBe(false);
  });
});
