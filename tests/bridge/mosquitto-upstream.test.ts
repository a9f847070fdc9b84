/**
 * Bridges to Mosquitto: Debian's `mosquitto`, started here on a free
 * loopback port, is the upstream of an in-process bunmq edge. Specified:
 * both directions with prefixes on v5 and 3.1.1; no loop with
 * `direction: both` (v5 No Local; 3.1.1 Mosquitto's bridge convention,
 * protocol level 0x84, and with `tryPrivate: false` the edge's echo filter);
 * Mosquitto killed while 1,000 QoS 1 messages are published at the edge and
 * restarted: all arrive in order.
 *
 * Skipped, with the reason printed, when mosquitto is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BridgeConfig } from "../../lib/bridge/config.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";

const FILE = "tests/bridge/mosquitto-upstream.test.ts";
const MOSQUITTO = Bun.which("mosquitto") ?? (Bun.file("/usr/sbin/mosquitto").size > 0 ? "/usr/sbin/mosquitto" : null);
if (MOSQUITTO === null) console.warn(`${FILE}: SKIPPED: mosquitto not found (apt-get install mosquitto)`);

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

class Mosquitto {
  proc: Subprocess | null = null;
  readonly dir = mkdtempSync(join(tmpdir(), "bunmq-mosq-"));
  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const conf = join(this.dir, "mosquitto.conf");
    writeFileSync(conf, `listener ${this.port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    this.proc = Bun.spawn([MOSQUITTO!, "-c", conf], { stdout: "ignore", stderr: "pipe" });
    const end = Date.now() + 5000;
    for (;;) {
      try {
        const c = await connectClient(this.port, { connectTimeout: 500 });
        await c.end();
        return;
      } catch {
        if (Date.now() > end) throw new Error("mosquitto did not start");
        await Bun.sleep(30);
      }
    }
  }

  async kill(): Promise<void> {
    if (this.proc !== null && this.proc.exitCode === null) this.proc.kill(9);
    await this.proc?.exited;
    this.proc = null;
  }

  async cleanup(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

type BridgeInput = Partial<BridgeConfig> & Pick<BridgeConfig, "topics">;

const topicsOf = (c: TestClient) => c.messages.map((m) => `${m.topic}=${m.payload}`).sort();

const VARIANTS: { label: string; version: 4 | 5; tryPrivate: boolean }[] = [
  { label: "MQTT 5", version: 5, tryPrivate: true },
  { label: "MQTT 3.1.1 with the bridge bit (try_private)", version: 4, tryPrivate: true },
  { label: "MQTT 3.1.1 without the bridge bit (echo filter)", version: 4, tryPrivate: false },
];

for (const v of VARIANTS) {
  describe.skipIf(MOSQUITTO === null)(`${v.label} bridge to Mosquitto`, () => {
    let mosq: Mosquitto;
    let edge: RunningBroker;
    beforeAll(async () => {
      mosq = new Mosquitto(freePort());
      await mosq.start();
      const b: BridgeInput & { name: string; address: string } = {
        name: "mosq",
        address: `mqtt://127.0.0.1:${mosq.port}`,
        protocolVersion: v.version,
        tryPrivate: v.tryPrivate,
        reconnect: { minMs: 50, maxMs: 300 },
        topics: [
          { pattern: "sensors/#", direction: "out", qos: 2, localPrefix: "", remotePrefix: "site1/" },
          { pattern: "commands/#", direction: "in", qos: 2, localPrefix: "", remotePrefix: "site1/" },
          { pattern: "loop/#", direction: "both", qos: 1, localPrefix: "", remotePrefix: "" },
        ],
      };
      edge = await startTestBroker({ bridges: [b] as never });
      await waitFor(() => edge.bridges.get("mosq")!.status().connected, 5000, "bridge connected");
      await Bun.sleep(100); // SUBACK
    });
    afterAll(async () => {
      await edge?.stop();
      await mosq?.cleanup();
    });

    test("both directions with prefixes, QoS 0/1/2 end to end", async () => {
      const upSub = await connectClient(mosq.port, { protocolVersion: 5 });
      await upSub.client.subscribeAsync("site1/sensors/#", { qos: 2 });
      const edgeSub = await connectClient(edge.port, { protocolVersion: 5 });
      await edgeSub.client.subscribeAsync("commands/#", { qos: 2 });
      const edgePub = await connectClient(edge.port, { protocolVersion: v.version });
      const upPub = await connectClient(mosq.port, { protocolVersion: 5 });
      for (const qos of [0, 1, 2] as const) {
        await edgePub.client.publishAsync(`sensors/q${qos}`, `s${qos}`, { qos });
        await upPub.client.publishAsync(`site1/commands/q${qos}`, `c${qos}`, { qos });
      }
      await upSub.waitMessages(3);
      await edgeSub.waitMessages(3);
      expect(upSub.messages.map((m) => [m.topic, String(m.payload), m.qos]).sort()).toEqual([
        ["site1/sensors/q0", "s0", 0],
        ["site1/sensors/q1", "s1", 1],
        ["site1/sensors/q2", "s2", 2],
      ]);
      expect(edgeSub.messages.map((m) => [m.topic, String(m.payload), m.qos]).sort()).toEqual([
        ["commands/q0", "c0", 0],
        ["commands/q1", "c1", 1],
        ["commands/q2", "c2", 2],
      ]);
      for (const c of [upSub, edgeSub, edgePub, upPub]) await c.end();
    });

    test("no loop with direction both: each message once on each side", async () => {
      const upSub = await connectClient(mosq.port, { protocolVersion: 5 });
      await upSub.client.subscribeAsync("loop/#", { qos: 1 });
      const edgeSub = await connectClient(edge.port, { protocolVersion: 5 });
      await edgeSub.client.subscribeAsync("loop/#", { qos: 1 });
      const edgePub = await connectClient(edge.port);
      const upPub = await connectClient(mosq.port);
      await edgePub.client.publishAsync("loop/e", "from-edge", { qos: 1 });
      await upPub.client.publishAsync("loop/u", "from-up", { qos: 1 });
      await upSub.waitMessages(2);
      await edgeSub.waitMessages(2);
      await Bun.sleep(500); // an echo would arrive within this
      expect(topicsOf(upSub)).toEqual(["loop/e=from-edge", "loop/u=from-up"]);
      expect(topicsOf(edgeSub)).toEqual(["loop/e=from-edge", "loop/u=from-up"]);
      // Without the bridge bit Mosquitto does send our message back: the echo filter dropped it.
      const echoes = edge.bridges.get("mosq")!.status().echoesDropped;
      if (v.tryPrivate) expect(echoes).toBe(0);
      else expect(echoes).toBeGreaterThanOrEqual(1);
      for (const c of [upSub, edgeSub, edgePub, upPub]) await c.end();
    });
  });
}

describe.skipIf(MOSQUITTO === null)("Mosquitto upstream goes away", () => {
  test("Mosquitto killed, 1,000 QoS 1 published at the edge, Mosquitto restarted: all 1,000 arrive, in order", async () => {
    const mosq = new Mosquitto(freePort());
    await mosq.start();
    const edge = await startTestBroker({
      bridges: [{ name: "mosq", address: `mqtt://127.0.0.1:${mosq.port}`, protocolVersion: 4, reconnect: { minMs: 1000, maxMs: 2000 }, topics: [{ pattern: "seq/#", direction: "out", qos: 1 }] }] as never,
    });
    try {
      await waitFor(() => edge.bridges.get("mosq")!.status().connected, 5000, "bridge connected");
      await mosq.kill();
      await waitFor(() => !edge.bridges.get("mosq")!.status().connected, 5000, "bridge disconnected");
      const pub = await connectClient(edge.port, { protocolVersion: 5 });
      for (let i = 0; i < 1000; i++) pub.client.publish("seq/n", String(i), { qos: 1 });
      await waitFor(() => edge.bridges.get("mosq")!.status().queued === 1000, 10_000, "1000 queued");
      await mosq.start();
      // Mosquitto restarted without persistence: subscribe before the bridge's backoff brings it back.
      const sub = await connectClient(mosq.port, { protocolVersion: 5 });
      await sub.client.subscribeAsync("seq/#", { qos: 1 });
      const got = await sub.waitMessages(1000, 20_000);
      expect(got.map((m) => Number(String(m.payload)))).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      await sub.end();
      await pub.end();
    } finally {
      await edge.stop();
      await mosq.cleanup();
    }
  }, 40_000);
});
