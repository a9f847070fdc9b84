/**
 * Keep Alive: 3.1.1 [MQTT-3.1.2-24], 5 [MQTT-3.1.2-22]. A client with Keep
 * Alive K > 0 that sends no Control Packet for 1.5 × K is disconnected as if
 * the network had failed (so its will is published); v5 may get DISCONNECT
 * 0x8D first, a 3.1.1 client never gets a DISCONNECT. Any packet resets the
 * clock; PINGREQ is answered with PINGRESP [MQTT-3.12.4-1]; Keep Alive 0
 * turns the check off.
 *
 * Timing: the broker's housekeeping ticks every 250 ms, so a 1 s Keep Alive
 * closes at 1.5–1.75 s. Assertions use only a generous upper bound (4 s) and
 * a clearly-early "still open" point (0.5 s), never a tight window.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { encode, RawClient } from "../helpers/raw.ts";

let b: RunningBroker;
let watcher: TestClient;
beforeAll(async () => {
  b = await startTestBroker({});
  watcher = await connectClient(b.port, { keepalive: 0 });
  await watcher.client.subscribeAsync("ka/will/#", { qos: 1 });
});
afterAll(async () => {
  await watcher.end(true);
  await b.stop();
});

const bytesLen = (c: RawClient) => c.received.reduce((n, x) => n + x.length, 0);
const willsOn = (topic: string) => watcher.messages.filter((m) => m.topic === topic);

describe("a silent client is disconnected after 1.5 × Keep Alive", () => {
  test.concurrent("3.1.1, Keep Alive 1 s: open at 0.5 s, closed by 4 s, no DISCONNECT sent, will published [MQTT-3.1.2-24]", async () => {
    const id = "ka311-silent";
    const c = await RawClient.connected(b.port, 4, {
      clientId: id,
      keepalive: 1,
      will: { topic: "ka/will/311", payload: Buffer.from("timed out 311"), qos: 1, retain: false },
    });
    const afterAck = bytesLen(c);
    await Bun.sleep(500);
    expect(c.closed).toBe(false);
    expect(willsOn("ka/will/311").length).toBe(0);
    expect(await c.waitClose(3500)).toBe(true);
    // 3.1.1 has no server-to-client DISCONNECT: nothing at all after CONNACK.
    expect(bytesLen(c)).toBe(afterAck);
    await waitFor(() => willsOn("ka/will/311").length === 1, 2000, "will 311");
    expect(willsOn("ka/will/311")[0]!.payload.toString()).toBe("timed out 311");
    expect(b.broker.sessions.has(id)).toBe(false);
  });

  test.concurrent("5, Keep Alive 1 s: open at 0.5 s, then DISCONNECT 0x8D and close by 4 s, will published [MQTT-3.1.2-22]", async () => {
    const c = await RawClient.connected(b.port, 5, {
      clientId: "ka5-silent",
      keepalive: 1,
      will: { topic: "ka/will/5", payload: Buffer.from("timed out 5"), qos: 1, retain: false },
    });
    await Bun.sleep(500);
    expect(c.closed).toBe(false);
    expect(c.pending()).toEqual([]);
    const d = await c.next(3500);
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x8d);
    expect(d.properties?.sessionExpiryInterval).toBeUndefined(); // [MQTT-3.14.2-2]
    expect(await c.waitClose(2000)).toBe(true);
    expect(c.pending()).toEqual([]); // nothing after DISCONNECT [MQTT-3.14.4-1]
    await waitFor(() => willsOn("ka/will/5").length === 1, 2000, "will 5");
    expect(willsOn("ka/will/5")[0]!.payload.toString()).toBe("timed out 5");
  });

  test.concurrent("3.1 (MQIsdp), Keep Alive 1 s: closed by 4 s", async () => {
    const c = await RawClient.connected(b.port, 3, { clientId: "ka31-silent", keepalive: 1 });
    const afterAck = bytesLen(c);
    await Bun.sleep(500);
    expect(c.closed).toBe(false);
    expect(await c.waitClose(3500)).toBe(true);
    expect(bytesLen(c)).toBe(afterAck);
  });

  test.concurrent("MQTT.js v5 client that stops pinging sees DISCONNECT 0x8D", async () => {
    const t = await connectClient(b.port, { protocolVersion: 5, keepalive: 1, clientId: "ka-mqttjs" });
    // Stop MQTT.js from sending PINGREQ: freeze its keep-alive manager.
    const km = (t.client as unknown as { keepaliveManager?: { destroy(): void } }).keepaliveManager;
    km?.destroy();
    const got = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(-1), 4000);
      t.client.on("disconnect", (p) => {
        clearTimeout(timer);
        resolve(p.reasonCode);
      });
    });
    expect(got).toBe(0x8d);
    await t.end(true);
  });
});

describe("activity keeps the connection up", () => {
  test.concurrent("PINGREQ every 400 ms for 2.6 s (Keep Alive 1 s): stays connected, each PINGREQ gets one PINGRESP [MQTT-3.12.4-1]", async () => {
    const c = await RawClient.connected(b.port, 4, { clientId: "ka-pinger", keepalive: 1 });
    for (let i = 0; i < 6; i++) {
      await Bun.sleep(400);
      expect(c.closed).toBe(false);
      c.send({ cmd: "pingreq" });
      const r = await c.next(1000);
      expect(r.cmd).toBe("pingresp");
      expect(r.length).toBe(0);
    }
    expect(c.closed).toBe(false);
    c.destroy();
  });

  test.concurrent("v5: PINGREQ answered byte-exactly with D0 00, and the connection survives 2.4 s of pings", async () => {
    const c = await RawClient.connected(b.port, 5, { clientId: "ka-pinger5", keepalive: 1 });
    const start = c.received.length;
    for (let i = 0; i < 6; i++) {
      await Bun.sleep(400);
      c.write([0xc0, 0x00]);
      expect((await c.next(1000)).cmd).toBe("pingresp");
    }
    expect(Buffer.concat(c.received.slice(start)).toString("hex")).toBe("d000".repeat(6));
    expect(c.closed).toBe(false);
    c.destroy();
  });

  test.concurrent("any packet counts, not only PINGREQ: QoS 0 PUBLISH every 400 ms for 2.6 s keeps a Keep Alive 1 s client up [MQTT-3.1.2-24]", async () => {
    const c = await RawClient.connected(b.port, 4, { clientId: "ka-publisher", keepalive: 1 });
    for (let i = 0; i < 6; i++) {
      await Bun.sleep(400);
      expect(c.closed).toBe(false);
      c.send({ cmd: "publish", topic: "ka/traffic", payload: Buffer.from(String(i)), qos: 0 });
    }
    await Bun.sleep(100);
    expect(c.closed).toBe(false);
    c.send({ cmd: "pingreq" });
    expect((await c.next()).cmd).toBe("pingresp");
    c.destroy();
  });

  test.concurrent("the broker answers a client that pings only at 1.0 s intervals (within 1.5 × Keep Alive)", async () => {
    const c = await RawClient.connected(b.port, 5, { clientId: "ka-edge", keepalive: 1 });
    for (let i = 0; i < 2; i++) {
      await Bun.sleep(1000);
      expect(c.closed).toBe(false);
      c.send({ cmd: "pingreq" });
      expect((await c.next(1000)).cmd).toBe("pingresp");
    }
    c.destroy();
  });

  test.concurrent("trickling the bytes of one incomplete packet is not a Control Packet: still closed by 4 s [MQTT-3.1.2-24]", async () => {
    const c = await RawClient.connected(b.port, 4, { clientId: "ka-trickle", keepalive: 1 });
    const pub = encode({ cmd: "publish", topic: "ka/trickle", payload: Buffer.alloc(40, 0x61), qos: 0 });
    // Send the fixed header and then one byte every 300 ms: the PUBLISH never completes in time.
    let i = 0;
    c.write(pub.subarray(0, 2));
    i = 2;
    const deadline = Date.now() + 4000;
    while (!c.closed && Date.now() < deadline && i < pub.length - 1) {
      await Bun.sleep(300);
      if (!c.closed) c.write(pub.subarray(i, ++i));
    }
    expect(await c.waitClose(Math.max(0, deadline - Date.now()))).toBe(true);
    c.destroy();
  });
});

describe("Keep Alive 0 turns the check off [MQTT-3.1.2-24]", () => {
  for (const version of [4, 5] as const) {
    test.concurrent(`v${version}: a silent Keep Alive 0 client is still connected after 2 s`, async () => {
      const c = await RawClient.connected(b.port, version, { clientId: `ka-off-${version}`, keepalive: 0 });
      await Bun.sleep(2000);
      expect(c.closed).toBe(false);
      expect(c.pending()).toEqual([]);
      c.send({ cmd: "pingreq" });
      expect((await c.next()).cmd).toBe("pingresp");
      c.destroy();
    });
  }
});

describe("v5 Server Keep Alive is the value enforced [MQTT-3.2.2-21]", () => {
  const k = useTestBroker({ limits: { maxKeepalive: 1 } });

  test.concurrent("client asks 60 s, CONNACK says 1 s, and a silent client is closed with 0x8D by 4 s", async () => {
    const c = await RawClient.connect(k.port, 5);
    const ack = await c.handshake({ clientId: "ska", keepalive: 60 });
    expect(ack.properties?.serverKeepAlive).toBe(1);
    await Bun.sleep(500);
    expect(c.closed).toBe(false);
    const d = await c.next(3500);
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x8d);
    expect(await c.waitClose()).toBe(true);
  });
});
