/**
 * Bridges with a real Mosquitto as the UPSTREAM: Debian's
 * `/usr/sbin/mosquitto`, started here on free loopback ports with a config
 * written to a temp directory, and an in-process bunmq edge whose
 * `bridges[]` connect to it as a client. MQTT.js clients publish and
 * subscribe on both sides. Specified:
 *
 * - MQTT 5 and MQTT 3.1.1 bridges: `out` with remotePrefix (local
 *   `sensors/a` is `site1/sensors/a` upstream), `in` with remotePrefix
 *   (upstream `site1/commands/x` is `commands/x` locally, an unprefixed
 *   upstream topic is not bridged), and QoS 0/1/2 end to end in both
 *   directions through topic entries of QoS 0, 1 and 2: a subscriber at
 *   QoS 2 receives min(publish QoS, topic QoS) (MQTT 3.1.1 §3.8.4 / MQTT 5
 *   §3.8.4 "the QoS of the delivered message is the minimum").
 * - No loop with `direction: both` (`loop/#`, no prefixes): a message
 *   published on either side arrives exactly once at a subscriber on each
 *   side. v5: the upstream subscription is No Local (MQTT 5 §3.8.3.1
 *   [MQTT-3.8.3-3]); 3.1.1: Mosquitto honours the bridge bit (protocol
 *   level 0x84, its try_private), so nothing echoes; 3.1.1 with
 *   `tryPrivate: false`: Mosquitto echoes our messages and the edge's echo
 *   filter drops them (`echoesDropped` > 0).
 * - Upstream killed (SIGKILL) while 1,000 QoS 1 messages are published at
 *   the edge: they stay queued in the bridge's session; Mosquitto restarted
 *   on the same port (its persistence keeps the upstream subscriber's
 *   session): all 1,000 reach that subscriber, in order.
 * - Wrong credentials (Mosquitto `allow_anonymous false` + password_file):
 *   the bridge is refused, retries with backoff (failures keep growing),
 *   lastError says it was refused, never delivers; a bridge with the right
 *   password to the same Mosquitto works, and local clients of the edge are
 *   unaffected.
 * - TLS with a client certificate (Mosquitto `require_certificate true`):
 *   the bridge with the CA-signed certificate delivers both ways; one
 *   without a client certificate never connects and delivers nothing.
 *
 * Skipped, with the reason printed, when mosquitto is not installed (the
 * credentials test when mosquitto_passwd is missing, the TLS test when the
 * test certificates cannot be made).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { BridgeStatus } from "../../lib/bridge/bridge.ts";
import type { ConfigInput } from "../../lib/config.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { connectClient, type Received, type TestClient } from "../helpers/clients.ts";
import { MOSQUITTO, MOSQUITTO_MISSING, MOSQUITTO_PASSWD, Mosquitto } from "../helpers/mosquitto.ts";

const FILE = "tests/bridge/mosquitto.test.ts";
const HAVE = MOSQUITTO !== null;
if (!HAVE) console.warn(`${FILE}: SKIPPED: ${MOSQUITTO_MISSING}`);
const HAVE_PASSWD = HAVE && MOSQUITTO_PASSWD !== null;
if (HAVE && !HAVE_PASSWD) console.warn(`${FILE}: SKIPPED (wrong credentials): mosquitto_passwd not found (apt-get install mosquitto)`);
const certs = HAVE ? testCerts() : null;
if (HAVE) warnSkip(FILE);

type BridgeInput = NonNullable<ConfigInput["bridges"]>[number];
type Version = 4 | 5;
const VERSIONS: { label: string; v: Version }[] = [
  { label: "MQTT 5", v: 5 },
  { label: "MQTT 3.1.1", v: 4 },
];
const FAST = { minMs: 100, maxMs: 500 };

/** An in-process edge with these bridges, its own listener on port 0. */
function startEdge(bridges: BridgeInput[]): Promise<RunningBroker> {
  return startTestBroker({ bridges: bridges as never });
}

function statusOf(rb: RunningBroker, name: string): BridgeStatus {
  const s = rb.bridges.status().find((x) => x.name === name);
  if (s === undefined) throw new Error(`no bridge ${name}`);
  return s;
}

/** Wait until the bridge is connected upstream (the error says its last error otherwise). */
async function bridgeUp(rb: RunningBroker, name: string, ms = 5000): Promise<void> {
  try {
    await waitFor(() => statusOf(rb, name).connected, ms, `bridge ${name} connected`);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last error: ${statusOf(rb, name).lastError || "none"}`);
  }
}

const plain = (m: Received) => [m.topic, String(m.payload), m.qos];
const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

/** Clients opened by a test, closed after it whatever happens. */
class Clients {
  private list: TestClient[] = [];
  async open(port: number, opts: Parameters<typeof connectClient>[1] = {}): Promise<TestClient> {
    const c = await connectClient(port, opts);
    this.list.push(c);
    return c;
  }
  async closeAll(): Promise<void> {
    const l = this.list;
    this.list = [];
    await Promise.all(l.map((c) => c.end(true).catch(() => {})));
  }
}

/**
 * Wait until the bridge's upstream subscriptions are in place: publish
 * `probe` upstream until it shows up on the edge subscriber `edgeSub`
 * (which must match it), then forget the probes it received.
 */
async function inboundReady(upPort: number, edgeSub: TestClient, probeTopic: string, ms = 5000): Promise<void> {
  const pub = await connectClient(upPort);
  try {
    const end = Date.now() + ms;
    for (;;) {
      await pub.client.publishAsync(probeTopic, "probe", { qos: 1 });
      try {
        await edgeSub.waitMessages(1, 100);
        break;
      } catch {
        if (Date.now() > end) throw new Error(`the bridge's upstream subscription for ${probeTopic} never took effect`);
      }
    }
    await Bun.sleep(50); // a second probe in flight
    edgeSub.messages.length = 0;
  } finally {
    await pub.end(true);
  }
}

// ---- 1. both directions, prefixes, QoS ------------------------------------

/** Topic entries of each QoS, out and in, all with remotePrefix site1/. */
const OUT_ROOTS: Record<0 | 1 | 2, string> = { 2: "sensors", 1: "metrics", 0: "logs" };
const IN_ROOTS: Record<0 | 1 | 2, string> = { 2: "commands", 1: "config", 0: "alerts" };

describe.skipIf(!HAVE).each(VERSIONS)("$label bridge to Mosquitto: prefixes and QoS", ({ v }) => {
  let mosq: Mosquitto;
  let edge: RunningBroker;
  const clients = new Clients();
  const name = `prefix-v${v}`;

  beforeAll(async () => {
    mosq = await Mosquitto.start({ conf: ([p]) => `persistence false\nallow_anonymous true\nlistener ${p} 127.0.0.1\n` });
    const topics: BridgeInput["topics"] = [];
    for (const q of [0, 1, 2] as const) {
      topics.push({ pattern: `${OUT_ROOTS[q]}/#`, direction: "out", qos: q, remotePrefix: "site1/" });
      topics.push({ pattern: `${IN_ROOTS[q]}/#`, direction: "in", qos: q, remotePrefix: "site1/" });
    }
    edge = await startEdge([{ name, address: `mqtt://127.0.0.1:${mosq.port}`, protocolVersion: v, reconnect: FAST, topics }]);
    await bridgeUp(edge, name);
    // The inbound subscriptions: probe until one gets through.
    const probe = await clients.open(edge.port, { protocolVersion: 5 });
    await probe.client.subscribeAsync("commands/#", { qos: 2 });
    await inboundReady(mosq.port, probe, "site1/commands/probe");
    await clients.closeAll();
  });
  afterAll(async () => {
    await clients.closeAll();
    await edge?.stop();
    await mosq?.cleanup();
  });

  test("out with remotePrefix: local sensors/a arrives upstream as site1/sensors/a, and only there", async () => {
    try {
      const up = await clients.open(mosq.port, { protocolVersion: 5 });
      await up.client.subscribeAsync(["site1/#", "sensors/#"], { qos: 2 });
      const pub = await clients.open(edge.port, { protocolVersion: v });
      await pub.client.publishAsync("sensors/a", "temp=21", { qos: 1 });
      await pub.client.publishAsync("sensors/b", "marker", { qos: 1 }); // same path, after it
      await up.waitMessages(2);
      expect(up.messages.map((m) => [m.topic, String(m.payload)])).toEqual([
        ["site1/sensors/a", "temp=21"],
        ["site1/sensors/b", "marker"],
      ]);
      expect(statusOf(edge, name).messagesOut).toBeGreaterThanOrEqual(2);
    } finally {
      await clients.closeAll();
    }
  });

  test("in with remotePrefix: upstream site1/commands/x arrives locally as commands/x; unprefixed commands/y is not bridged", async () => {
    try {
      const local = await clients.open(edge.port, { protocolVersion: v });
      await local.client.subscribeAsync("#", { qos: 2 });
      const up = await clients.open(mosq.port, { protocolVersion: 5 });
      await up.client.publishAsync("commands/y", "not bridged", { qos: 1 });
      await up.client.publishAsync("site1/commands/x", "open valve", { qos: 1 });
      await local.waitMessages(1);
      await Bun.sleep(200); // commands/y would have come first
      expect(local.messages.map((m) => [m.topic, String(m.payload)])).toEqual([["commands/x", "open valve"]]);
      expect(statusOf(edge, name).messagesIn).toBeGreaterThanOrEqual(1);
    } finally {
      await clients.closeAll();
    }
  });

  test("QoS 0/1/2 out (edge → Mosquitto): an upstream QoS 2 subscriber receives min(publish QoS, topic QoS)", async () => {
    try {
      const up = await clients.open(mosq.port, { protocolVersion: 5 });
      await up.client.subscribeAsync("site1/#", { qos: 2 });
      const pub = await clients.open(edge.port, { protocolVersion: v });
      const want: (string | number)[][] = [];
      for (const tq of [0, 1, 2] as const) {
        for (const pq of [0, 1, 2] as const) {
          const t = `${OUT_ROOTS[tq]}/p${pq}`;
          await pub.client.publishAsync(t, `out ${tq}/${pq}`, { qos: pq });
          want.push([`site1/${t}`, `out ${tq}/${pq}`, Math.min(pq, tq)]);
        }
      }
      await up.waitMessages(9);
      await Bun.sleep(100); // no extra copy
      expect(sorted(up.messages.map(plain))).toEqual(sorted(want));
    } finally {
      await clients.closeAll();
    }
  });

  test("QoS 0/1/2 in (Mosquitto → edge): an edge QoS 2 subscriber receives min(publish QoS, topic QoS)", async () => {
    try {
      const local = await clients.open(edge.port, { protocolVersion: v });
      await local.client.subscribeAsync(Object.values(IN_ROOTS).map((r) => `${r}/#`), { qos: 2 });
      const up = await clients.open(mosq.port, { protocolVersion: 5 });
      const want: (string | number)[][] = [];
      for (const tq of [0, 1, 2] as const) {
        for (const pq of [0, 1, 2] as const) {
          const t = `${IN_ROOTS[tq]}/p${pq}`;
          await up.client.publishAsync(`site1/${t}`, `in ${tq}/${pq}`, { qos: pq });
          want.push([t, `in ${tq}/${pq}`, Math.min(pq, tq)]);
        }
      }
      await local.waitMessages(9);
      await Bun.sleep(100);
      expect(sorted(local.messages.map(plain))).toEqual(sorted(want));
    } finally {
      await clients.closeAll();
    }
  });
});

// ---- 2. no loop with direction both ---------------------------------------

const LOOP_VARIANTS: { label: string; v: Version; tryPrivate: boolean }[] = [
  { label: "MQTT 5 (No Local upstream, MQTT 5 [MQTT-3.8.3-3])", v: 5, tryPrivate: true },
  { label: "MQTT 3.1.1 with the bridge bit (protocol level 0x84, try_private)", v: 4, tryPrivate: true },
  { label: "MQTT 3.1.1 with tryPrivate: false (the edge's echo filter)", v: 4, tryPrivate: false },
];

describe.skipIf(!HAVE).each(LOOP_VARIANTS)("no loop with direction both: $label", ({ v, tryPrivate }) => {
  let mosq: Mosquitto;
  let edge: RunningBroker;
  const clients = new Clients();
  const name = `loop-v${v}-${tryPrivate ? "private" : "plain"}`;

  beforeAll(async () => {
    mosq = await Mosquitto.start({ conf: ([p]) => `persistence false\nallow_anonymous true\nlistener ${p} 127.0.0.1\n` });
    edge = await startEdge([
      { name, address: `mqtt://127.0.0.1:${mosq.port}`, protocolVersion: v, tryPrivate, reconnect: FAST, topics: [{ pattern: "loop/#", direction: "both", qos: 2 }] },
    ]);
    await bridgeUp(edge, name);
  });
  afterAll(async () => {
    await clients.closeAll();
    await edge?.stop();
    await mosq?.cleanup();
  });

  test("a message published on the edge, and one published upstream, each arrive exactly once on each side (QoS 0, 1, 2)", async () => {
    try {
      const upSub = await clients.open(mosq.port, { protocolVersion: 5 });
      await upSub.client.subscribeAsync("loop/#", { qos: 2 });
      const edgeSub = await clients.open(edge.port, { protocolVersion: 5 });
      await edgeSub.client.subscribeAsync("loop/#", { qos: 2 });
      await inboundReady(mosq.port, edgeSub, "loop/probe");
      upSub.messages.length = 0; // the probes reached it directly
      const edgePub = await clients.open(edge.port, { protocolVersion: v });
      const upPub = await clients.open(mosq.port, { protocolVersion: v });
      const want: string[] = [];
      for (const q of [0, 1, 2] as const) {
        await edgePub.client.publishAsync(`loop/edge/${q}`, `from edge ${q}`, { qos: q });
        await upPub.client.publishAsync(`loop/up/${q}`, `from upstream ${q}`, { qos: q });
        want.push(`loop/edge/${q}=from edge ${q}`, `loop/up/${q}=from upstream ${q}`);
      }
      await upSub.waitMessages(6);
      await edgeSub.waitMessages(6);
      await Bun.sleep(500); // an echo or a loop would bring more within this
      const seen = (c: TestClient) => c.messages.map((m) => `${m.topic}=${m.payload}`).sort();
      expect(seen(upSub)).toEqual(want.sort());
      expect(seen(edgeSub)).toEqual(want.sort());
      const s = statusOf(edge, name);
      expect(s.failures).toBe(0); // no refusal, no fallback reconnection
      if (tryPrivate) {
        // Mosquitto took the bridge bit (or v5 No Local): nothing of ours came back to be filtered.
        expect(s.echoesDropped).toBe(0);
      } else {
        // Without it Mosquitto sends our own messages back; the echo filter dropped them.
        expect(s.echoesDropped).toBeGreaterThan(0);
      }
    } finally {
      await clients.closeAll();
    }
  });
});

// ---- 3. upstream killed -----------------------------------------------------

describe.skipIf(!HAVE).each(VERSIONS)("$label bridge: Mosquitto killed while the edge publishes", ({ v }) => {
  test("SIGKILL, 1,000 QoS 1 published at the edge, restart on the same port: all 1,000 arrive upstream, in order", async () => {
    const N = 1000;
    const name = `seq-v${v}`;
    const subId = `seq-sub-v${v}`;
    const mosq = await Mosquitto.start({
      conf: ([p], dir) =>
        `persistence true\npersistence_location ${dir}/\nautosave_interval 3600\nmax_queued_messages ${N * 2}\nallow_anonymous true\nlistener ${p} 127.0.0.1\n`,
    });
    let edge: RunningBroker | undefined;
    const clients = new Clients();
    try {
      edge = await startEdge([{ name, address: `mqtt://127.0.0.1:${mosq.port}`, protocolVersion: v, reconnect: FAST, topics: [{ pattern: "seq/#", direction: "out", qos: 1 }] }]);
      await bridgeUp(edge, name);
      const port = mosq.port;

      // The upstream subscriber's persistent session (QoS 1), saved to Mosquitto's database (SIGUSR1) before the kill.
      const sub0 = await clients.open(port, { protocolVersion: 4, clientId: subId, clean: false });
      await sub0.client.subscribeAsync("seq/#", { qos: 1 });
      await clients.closeAll();
      const saves = mosq.count(/Saving in-memory database/g);
      mosq.signal("SIGUSR1");
      await waitFor(() => mosq.count(/Saving in-memory database/g) > saves, 3000, "mosquitto saving its database");
      await Bun.sleep(50); // the write after the log line

      await mosq.kill();
      await waitFor(() => !statusOf(edge!, name).connected, 5000, "bridge noticing the upstream is gone");
      const sentBefore = statusOf(edge, name).messagesOut;

      const pub = await clients.open(edge.port, { protocolVersion: 5 });
      await Promise.all(Array.from({ length: N }, (_, i) => pub.client.publishAsync("seq/n", String(i), { qos: 1 })));
      // Every one acknowledged to the publisher is held by the bridge's session.
      const held = () => {
        const s = statusOf(edge!, name);
        return s.queued + s.inflight;
      };
      expect(held()).toBe(N);
      expect(statusOf(edge, name).connected).toBe(false);

      await mosq.run(); // same port, same database
      expect(mosq.port).toBe(port);
      await bridgeUp(edge, name);
      await waitFor(() => held() === 0, 10_000, `bridge queue drained (held ${held()})`);
      expect(statusOf(edge, name).messagesOut - sentBefore).toBeGreaterThanOrEqual(N);

      const sub = await clients.open(port, { protocolVersion: 4, clientId: subId, clean: false });
      const got = await sub.waitMessages(N, 10_000);
      await Bun.sleep(100);
      const seq = got.map((m) => Number(String(m.payload)));
      expect(seq.length).toBe(N);
      expect(seq).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(got.every((m) => m.topic === "seq/n" && m.qos === 1)).toBe(true);
    } finally {
      await clients.closeAll();
      await edge?.stop();
      await mosq.cleanup();
    }
  }, 20_000);
});

// ---- 4. wrong credentials ---------------------------------------------------

describe.skipIf(!HAVE_PASSWD)("bridge with wrong credentials (Mosquitto allow_anonymous false + password_file)", () => {
  let mosq: Mosquitto;
  let edge: RunningBroker;
  const clients = new Clients();
  const addr = () => `mqtt://127.0.0.1:${mosq.port}`;

  beforeAll(async () => {
    mosq = await Mosquitto.start({
      conf: ([p], dir) => {
        const file = `${dir}/passwd`;
        const r = Bun.spawnSync([MOSQUITTO_PASSWD!, "-b", "-c", file, "edge", "s3cret"], { stdout: "pipe", stderr: "pipe" });
        if (r.exitCode !== 0) throw new Error(`mosquitto_passwd: ${r.stderr.toString()}`);
        return `persistence false\nallow_anonymous false\npassword_file ${file}\nlistener ${p} 127.0.0.1\n`;
      },
    });
    edge = await startEdge([
      { name: "good", address: addr(), protocolVersion: 5, username: "edge", password: "s3cret", reconnect: FAST, topics: [{ pattern: "good/#", direction: "out", qos: 1 }] },
      { name: "bad5", address: addr(), protocolVersion: 5, username: "edge", password: "wrong", reconnect: FAST, topics: [{ pattern: "bad/#", direction: "out", qos: 1 }] },
      { name: "bad4", address: addr(), protocolVersion: 4, username: "edge", password: "wrong", reconnect: FAST, topics: [{ pattern: "bad/#", direction: "out", qos: 1 }] },
    ]);
  });
  afterAll(async () => {
    await clients.closeAll();
    await edge?.stop();
    await mosq?.cleanup();
  });

  test("refused, retried with backoff (failures keep growing), lastError says refused, nothing delivered; the right password works", async () => {
    try {
      await bridgeUp(edge, "good"); // the password file itself is fine
      for (const n of ["bad5", "bad4"]) {
        await waitFor(() => statusOf(edge, n).failures >= 2, 5000, `${n}: two failed attempts`);
        const s = statusOf(edge, n);
        expect(s.connected).toBe(false);
        expect(s.connects).toBe(0);
        expect(s.lastError).toMatch(/refused/i);
        expect(s.lastError).toMatch(/not authori[sz]ed|bad user ?name or password/i);
      }
      // Still retrying later on.
      const f = statusOf(edge, "bad5").failures;
      await waitFor(() => statusOf(edge, "bad5").failures > f, 3000, "bad5 retrying again");

      const up = await clients.open(mosq.port, { protocolVersion: 5, username: "edge", password: "s3cret" });
      await up.client.subscribeAsync(["good/#", "bad/#"], { qos: 1 });
      const pub = await clients.open(edge.port, { protocolVersion: 5 });
      await pub.client.publishAsync("bad/x", "must not arrive", { qos: 1 });
      await pub.client.publishAsync("good/x", "through the good bridge", { qos: 1 });
      await up.waitMessages(1);
      await Bun.sleep(300);
      expect(up.messages.map((m) => [m.topic, String(m.payload)])).toEqual([["good/x", "through the good bridge"]]);
      // The refused bridges hold the message for when they are let in.
      expect(statusOf(edge, "bad5").queued).toBe(1);
      expect(statusOf(edge, "bad4").queued).toBe(1);
      expect(statusOf(edge, "bad5").messagesOut).toBe(0);
    } finally {
      await clients.closeAll();
    }
  });

  test("meanwhile, local clients of the edge connect and exchange messages normally (QoS 0/1/2, v5 and 3.1.1)", async () => {
    try {
      const before = statusOf(edge, "bad4").failures;
      for (const { v } of VERSIONS) {
        const sub = await clients.open(edge.port, { protocolVersion: v });
        await sub.client.subscribeAsync("local/#", { qos: 2 });
        const pub = await clients.open(edge.port, { protocolVersion: v });
        for (const q of [0, 1, 2] as const) await pub.client.publishAsync(`local/${q}`, `v${v} q${q}`, { qos: q });
        await sub.waitMessages(3);
        expect(sub.messages.map(plain)).toEqual([0, 1, 2].map((q) => [`local/${q}`, `v${v} q${q}`, q]));
      }
      await waitFor(() => statusOf(edge, "bad4").failures > before, 3000, "bad4 still retrying");
    } finally {
      await clients.closeAll();
    }
  });
});

// ---- 5. TLS with a client certificate -----------------------------------------

describe.skipIf(!HAVE || certs === null)("bridge over TLS to Mosquitto with require_certificate true", () => {
  let mosq: Mosquitto;
  let edge: RunningBroker;
  const clients = new Clients();
  const plainPort = () => mosq.ports[0]!;
  const tlsPort = () => mosq.ports[1]!;

  beforeAll(async () => {
    const c = certs!;
    mosq = await Mosquitto.start({
      listeners: 2,
      conf: ([p, t]) =>
        `persistence false\nallow_anonymous true\nlistener ${p} 127.0.0.1\nlistener ${t} 127.0.0.1\ncafile ${c.ca}\ncertfile ${c.serverCert}\nkeyfile ${c.serverKey}\nrequire_certificate true\n`,
    });
    const address = `mqtts://127.0.0.1:${tlsPort()}`;
    edge = await startEdge([
      {
        name: "mtls",
        address,
        protocolVersion: 5,
        tls: { ca: c.ca, cert: c.aliceCert, key: c.aliceKey },
        reconnect: FAST,
        topics: [
          { pattern: "tls/#", direction: "out", qos: 1, remotePrefix: "site1/" },
          { pattern: "tlsin/#", direction: "in", qos: 1 },
        ],
      },
      { name: "nocert", address, protocolVersion: 5, tls: { ca: c.ca }, reconnect: FAST, topics: [{ pattern: "nocert/#", direction: "out", qos: 1 }] },
    ]);
  });
  afterAll(async () => {
    await clients.closeAll();
    await edge?.stop();
    await mosq?.cleanup();
  });

  test("with the CA-signed client certificate (alice): connects, messages go out and come in", async () => {
    try {
      await bridgeUp(edge, "mtls");
      const up = await clients.open(plainPort(), { protocolVersion: 5 });
      await up.client.subscribeAsync("site1/tls/#", { qos: 1 });
      const local = await clients.open(edge.port, { protocolVersion: 5 });
      await local.client.subscribeAsync("tlsin/#", { qos: 1 });
      await inboundReady(plainPort(), local, "tlsin/probe");
      await local.client.publishAsync("tls/a", "over mutual tls", { qos: 1 });
      await up.waitMessages(1);
      expect(up.messages.map(plain)).toEqual([["site1/tls/a", "over mutual tls", 1]]);
      const upPub = await clients.open(plainPort(), { protocolVersion: 5 });
      await upPub.client.publishAsync("tlsin/b", "back over tls", { qos: 1 });
      await local.waitMessages(1);
      expect(local.messages.map(plain)).toEqual([["tlsin/b", "back over tls", 1]]);
      expect(mosq.log).toMatch(/New client connected from 127\.0\.0\.1:\d+ as [^ ]*mtls/);
    } finally {
      await clients.closeAll();
    }
  });

  test("without a client certificate (tls: {ca} only): never connected, failures > 0, nothing delivered", async () => {
    try {
      const up = await clients.open(plainPort(), { protocolVersion: 5 });
      await up.client.subscribeAsync("nocert/#", { qos: 1 });
      const pub = await clients.open(edge.port, { protocolVersion: 5 });
      await pub.client.publishAsync("nocert/a", "must not arrive", { qos: 1 });
      await waitFor(() => statusOf(edge, "nocert").failures >= 2, 5000, "nocert: two failed attempts");
      await Bun.sleep(200);
      const s = statusOf(edge, "nocert");
      expect(s.connects).toBe(0);
      expect(s.connected).toBe(false);
      expect(s.lastError).not.toBe("");
      expect(s.messagesOut).toBe(0);
      expect(s.queued).toBe(1);
      expect(up.messages).toEqual([]);
      expect(mosq.log).not.toMatch(/as [^ ]*nocert/);
    } finally {
      await clients.closeAll();
    }
  });
});
