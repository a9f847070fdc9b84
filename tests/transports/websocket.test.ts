/**
 * MQTT over WebSocket (`ws` and `wss` listeners; MQTT 3.1.1 §6, MQTT 5 §6):
 * MQTT.js v3.1.1 and v5 over ws and wss; the subprotocol negotiation
 * ([MQTT-6.0.0-3], [MQTT-6.0.0-4], and "mqttv3.1" for old clients); 404 on
 * other paths, 426 for a plain request, a clear refusal without an MQTT
 * subprotocol; packets split across WebSocket frames and several packets in
 * one frame ([MQTT-6.0.0-2]); text frames ([MQTT-6.0.0-1]); mutual TLS on
 * wss; two endpoints sharing one HTTP server. The raw cases use a WebSocket
 * client written for the tests (tests/helpers/ws-raw.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { encode } from "../helpers/raw.ts";
import { OP_BINARY, OP_CONT, OP_TEXT, RawWsClient, upgradeRequest } from "../helpers/ws-raw.ts";

const certs = testCerts();
warnSkip("tests/transports/websocket.test.ts");
const read = (p: string) => readFileSync(p);

const connect4 = (clientId: string) => encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId });

describe("MQTT over WebSocket (ws)", () => {
  let rb: RunningBroker;
  let port = 0;
  beforeAll(async () => {
    rb = await startTestBroker({
      listeners: [
        { host: "127.0.0.1", port: 0 },
        { host: "127.0.0.1", port: 0, protocol: "ws" },
      ],
    });
    port = rb.addresses[1]!.port;
  });
  afterAll(() => rb.stop());

  test("the listener's URL carries its path: ws://127.0.0.1:PORT/mqtt", () => {
    expect(rb.addresses[1]!.url).toBe(`ws://127.0.0.1:${port}/mqtt`);
  });

  for (const v of [4, 5] as const) {
    test(`MQTT.js v${v === 4 ? "3.1.1" : "5"} over ws: QoS 0, 1, 2 and a retained message, both ways with a TCP client`, async () => {
      const ws = await mqtt.connectAsync(rb.addresses[1]!.url, { reconnectPeriod: 0, protocolVersion: v, clientId: `ws-v${v}` });
      const tcp = await mqtt.connectAsync(rb.addresses[0]!.url, { reconnectPeriod: 0, protocolVersion: v });
      const atWs: string[] = [];
      const atTcp: string[] = [];
      ws.on("message", (_t, p) => atWs.push(p.toString()));
      tcp.on("message", (_t, p) => atTcp.push(p.toString()));
      await ws.subscribeAsync(`ws/v${v}/from-tcp`, { qos: 2 });
      await tcp.subscribeAsync(`ws/v${v}/from-ws`, { qos: 2 });
      for (const qos of [0, 1, 2] as const) {
        await ws.publishAsync(`ws/v${v}/from-ws`, `ws q${qos}`, { qos });
        await tcp.publishAsync(`ws/v${v}/from-tcp`, `tcp q${qos}`, { qos });
      }
      await waitFor(() => atWs.length === 3 && atTcp.length === 3, 3000, "both directions");
      expect(atWs.sort()).toEqual(["tcp q0", "tcp q1", "tcp q2"]);
      expect(atTcp.sort()).toEqual(["ws q0", "ws q1", "ws q2"]);
      await ws.publishAsync(`ws/v${v}/kept`, "retained over ws", { qos: 1, retain: true });
      const late = await mqtt.connectAsync(rb.addresses[1]!.url, { reconnectPeriod: 0, protocolVersion: v });
      const got = new Promise<string>((r) => late.once("message", (_t, p) => r(p.toString())));
      await late.subscribeAsync(`ws/v${v}/kept`, { qos: 1 });
      expect(await got).toBe("retained over ws");
      await Promise.all([ws.endAsync(), tcp.endAsync(), late.endAsync()]);
    });
  }

  describe("subprotocol", () => {
    test('a client offering "mqtt" gets "mqtt" [MQTT-6.0.0-3] [MQTT-6.0.0-4]', async () => {
      const r = await upgradeRequest(port, { protocols: "mqtt" });
      expect(r.status).toBe(101);
      expect(r.headers["sec-websocket-protocol"]).toBe("mqtt");
    });

    test('"mqtt" is chosen among several offers, wherever it stands [MQTT-6.0.0-4]', async () => {
      for (const offer of ["mqttv3.1, mqtt", "chat, mqtt", "MQTT"]) {
        const r = await upgradeRequest(port, { protocols: offer });
        expect({ offer, status: r.status, proto: r.headers["sec-websocket-protocol"] }).toEqual({ offer, status: 101, proto: "mqtt" });
      }
    });

    test('an old client offering only "mqttv3.1" is accepted with "mqttv3.1" and speaks MQTT', async () => {
      const r = await upgradeRequest(port, { protocols: "mqttv3.1" });
      expect(r.status).toBe(101);
      expect(r.headers["sec-websocket-protocol"]).toBe("mqttv3.1");
      const c = await RawWsClient.connectedWs(port, 3, { clientId: "old-client" }, { protocols: "mqttv3.1" });
      expect(c.protocol).toBe("mqttv3.1");
      c.destroy();
    });

    test("an upgrade without an MQTT subprotocol is refused with 400 and says what is needed", async () => {
      for (const protocols of [null, "chat", "mqttv5, stomp"]) {
        const r = await upgradeRequest(port, { protocols });
        expect({ protocols, status: r.status }).toEqual({ protocols, status: 400 });
        expect(r.body).toContain('subprotocol "mqtt" required');
      }
    });
  });

  describe("HTTP", () => {
    test("a request to another path gets 404, upgrade or not", async () => {
      expect((await upgradeRequest(port, { path: "/other" })).status).toBe(404);
      expect((await upgradeRequest(port, { path: "/", upgrade: false })).status).toBe(404);
      expect((await upgradeRequest(port, { path: "/mqtt/x" })).status).toBe(404);
    });

    test("a plain GET on the endpoint gets 426 Upgrade Required", async () => {
      const r = await upgradeRequest(port, { upgrade: false });
      expect(r.status).toBe(426);
      expect(r.headers.upgrade).toBe("websocket");
    });

    test("a query string does not change the path", async () => {
      expect((await upgradeRequest(port, { path: "/mqtt?client=1" })).status).toBe(101);
    });
  });

  describe("framing [MQTT-6.0.0-2]", () => {
    test("a CONNECT split across three WebSocket messages is one packet", async () => {
      const c = await RawWsClient.connectWs(port, 4);
      const bytes = connect4("split-msgs");
      c.sendFrame(OP_BINARY, bytes.subarray(0, 1));
      await Bun.sleep(20);
      c.sendFrame(OP_BINARY, bytes.subarray(1, 5));
      await Bun.sleep(20);
      c.sendFrame(OP_BINARY, bytes.subarray(5));
      const ack = await c.next();
      expect(ack.cmd).toBe("connack");
      expect(ack.returnCode).toBe(0);
      c.destroy();
    });

    test("a packet split across the fragments of one message (FIN clear, continuation frames)", async () => {
      const c = await RawWsClient.connectWs(port, 4);
      const bytes = connect4("fragments");
      c.sendFrame(OP_BINARY, bytes.subarray(0, 3), false);
      c.sendFrame(OP_CONT, bytes.subarray(3, 9), false);
      c.sendFrame(OP_CONT, bytes.subarray(9), true);
      expect((await c.next()).cmd).toBe("connack");
      c.destroy();
    });

    test("CONNECT, SUBSCRIBE, PUBLISH and PINGREQ in one frame are all processed, in order", async () => {
      const c = await RawWsClient.connectWs(port, 4);
      c.write(
        Buffer.concat([
          connect4("one-frame"),
          encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "frame/#", qos: 1 }] }),
          encode({ cmd: "publish", topic: "frame/x", qos: 1, messageId: 2, payload: Buffer.from("in one frame") }),
          encode({ cmd: "pingreq" }),
        ]),
      );
      const seen = [await c.next(), await c.next(), await c.next(), await c.next(), await c.next()];
      expect(seen.map((p) => p.cmd).sort()).toEqual(["connack", "pingresp", "puback", "publish", "suback"]);
      expect(seen[0]!.cmd).toBe("connack");
      expect(seen.find((p) => p.cmd === "publish")!.payload.toString()).toBe("in one frame");
      c.destroy();
    });

    test("a PUBLISH larger than one TCP segment, split at every byte boundary class, arrives whole", async () => {
      const sub = await RawWsClient.connectedWs(port, 4, { clientId: "big-sub" });
      sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "big", qos: 0 }] });
      await sub.nextOf("suback");
      const pub = await RawWsClient.connectedWs(port, 4, { clientId: "big-pub" });
      const payload = Buffer.alloc(200_000, 0x61);
      const bytes = encode({ cmd: "publish", topic: "big", qos: 0, payload });
      for (let at = 0; at < bytes.length; at += 65_000) pub.sendFrame(OP_BINARY, bytes.subarray(at, at + 65_000));
      const p = await sub.nextOf("publish", 3000);
      expect(p.payload.equals(payload)).toBe(true);
      sub.destroy();
      pub.destroy();
    });

    test("the broker sends binary frames only", async () => {
      const c = await RawWsClient.connectedWs(port, 5, { clientId: "binary-only" });
      c.send({ cmd: "pingreq" });
      expect((await c.next()).cmd).toBe("pingresp");
      expect(c.opcodes.every((o) => o === OP_BINARY)).toBe(true);
      c.destroy();
    });
  });

  describe("text frames [MQTT-6.0.0-1]", () => {
    test("a text frame before CONNECT closes the connection", async () => {
      const c = await RawWsClient.connectWs(port, 4);
      c.sendFrame(OP_TEXT, Buffer.from("hello"));
      expect(await c.waitClose()).toBe(true);
      expect(c.pending()).toEqual([]);
    });

    test("v5: a text frame after CONNACK gets DISCONNECT 0x81 and the close; a client beside it is untouched", async () => {
      const other = await RawWsClient.connectedWs(port, 5, { clientId: "text-bystander" });
      const c = await RawWsClient.connectedWs(port, 5, { clientId: "text-sender" });
      c.sendFrame(OP_TEXT, Buffer.from(connect4("x")));
      const d = await c.nextOf("disconnect");
      expect(d.reasonCode).toBe(0x81);
      expect(await c.waitClose()).toBe(true);
      expect(c.closeCodes).toEqual([1003]);
      other.send({ cmd: "pingreq" });
      expect((await other.next()).cmd).toBe("pingresp");
      other.destroy();
    });

    test("3.1.1: a text frame after CONNACK closes the connection (no DISCONNECT in 3.1.1)", async () => {
      const c = await RawWsClient.connectedWs(port, 4, { clientId: "text-v4" });
      c.sendFrame(OP_TEXT, Buffer.from("x"));
      expect(await c.waitClose()).toBe(true);
      expect(c.pending().filter((p) => p.cmd !== "disconnect")).toEqual([]);
    });
  });

  test("a malformed packet over WebSocket closes that connection with v5 DISCONNECT 0x81, as over TCP", async () => {
    const c = await RawWsClient.connectedWs(port, 5, { clientId: "malformed-ws" });
    c.write([0x30, 0x02, 0x00, 0x05]); // PUBLISH whose topic length runs past the packet
    expect((await c.nextOf("disconnect")).reasonCode).toBe(0x81);
    expect(await c.waitClose()).toBe(true);
  });

  test("a client closing its WebSocket without DISCONNECT gets its will published [MQTT-3.1.2-8]", async () => {
    const watcher = await mqtt.connectAsync(rb.addresses[0]!.url, { reconnectPeriod: 0 });
    await watcher.subscribeAsync("will/ws", { qos: 1 });
    const got = new Promise<string>((r) => watcher.once("message", (_t, p) => r(p.toString())));
    const c = await RawWsClient.connectedWs(port, 4, { clientId: "will-ws", will: { topic: "will/ws", payload: Buffer.from("gone"), qos: 1, retain: false } });
    c.destroy();
    expect(await got).toBe("gone");
    await watcher.endAsync();
  });
});

describe("allowedOrigins: which browser pages may open the WebSocket", () => {
  test("an Origin not in the list gets 403; a listed one (any case, trailing slash) and a request without Origin upgrade", async () => {
    const rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0, protocol: "ws", allowedOrigins: ["https://app.example.com", "http://localhost:3000"] }] });
    try {
      const port = rb.port;
      const status = async (origin: string | null) => (await upgradeRequest(port, { headers: origin === null ? {} : { Origin: origin } })).status;
      expect(await status("https://evil.example.net")).toBe(403);
      expect(await status("https://app.example.com.evil.net")).toBe(403);
      expect(await status("null")).toBe(403);
      expect(await status("https://app.example.com")).toBe(101);
      expect(await status("HTTPS://App.Example.com/")).toBe(101);
      expect(await status("http://localhost:3000")).toBe(101);
      expect(await status(null)).toBe(101); // not a browser
    } finally {
      await rb.stop();
    }
  });

  test("without allowedOrigins any Origin may connect (as Mosquitto)", async () => {
    const rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0, protocol: "ws" }] });
    try {
      expect((await upgradeRequest(rb.port, { headers: { Origin: "https://anywhere.example" } })).status).toBe(101);
    } finally {
      await rb.stop();
    }
  });
});

describe("two WebSocket endpoints on one port share one HTTP server", () => {
  test("each path is its own listener; other paths 404", async () => {
    const free = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = free.port;
    free.stop(true);
    const rb = await startTestBroker({
      listeners: [
        { host: "127.0.0.1", port, protocol: "ws", path: "/mqtt" },
        { host: "127.0.0.1", port, protocol: "ws", path: "/devices", maxConnections: 1 },
      ],
    });
    try {
      expect(rb.addresses.map((a) => a.url)).toEqual([`ws://127.0.0.1:${port}/mqtt`, `ws://127.0.0.1:${port}/devices`]);
      const a = await mqtt.connectAsync(rb.addresses[0]!.url, { reconnectPeriod: 0, clientId: "path-a" });
      const b = await mqtt.connectAsync(rb.addresses[1]!.url, { reconnectPeriod: 0, clientId: "path-b" });
      expect(rb.listeners.map((l) => l.connections)).toEqual([1, 1]);
      // The second path's own maxConnections (1) refuses at the upgrade, with 503.
      expect((await upgradeRequest(port, { path: "/devices" })).status).toBe(503);
      expect((await upgradeRequest(port, { path: "/mqtt" })).status).toBe(101);
      expect((await upgradeRequest(port, { path: "/nothing" })).status).toBe(404);
      await Promise.all([a.endAsync(), b.endAsync()]);
    } finally {
      await rb.stop();
    }
  });
});

describe.skipIf(certs === null)("MQTT over secure WebSocket (wss)", () => {
  let rb: RunningBroker;
  beforeAll(async () => {
    const c = certs!;
    rb = await startTestBroker({
      listeners: [
        { host: "127.0.0.1", port: 0, protocol: "wss", tls: { cert: c.serverCert, key: c.serverKey } },
        { host: "127.0.0.1", port: 0, protocol: "wss", tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca, requireClientCert: true } },
      ],
    });
  });
  afterAll(() => rb.stop());

  test("the URL is wss://127.0.0.1:PORT/mqtt", () => {
    expect(rb.addresses[0]!.url).toBe(`wss://127.0.0.1:${rb.addresses[0]!.port}/mqtt`);
  });

  for (const v of [4, 5] as const) {
    test(`MQTT.js v${v === 4 ? "3.1.1" : "5"} over wss: QoS 1 and 2 round trip`, async () => {
      const c = await mqtt.connectAsync(rb.addresses[0]!.url, { reconnectPeriod: 0, protocolVersion: v, ca: read(certs!.ca) });
      await c.subscribeAsync("wss/#", { qos: 2 });
      const got: string[] = [];
      c.on("message", (_t, p) => got.push(p.toString()));
      await c.publishAsync("wss/a", "one", { qos: 1 });
      await c.publishAsync("wss/b", "two", { qos: 2 });
      await waitFor(() => got.length === 2, 3000, "both messages");
      expect(got.sort()).toEqual(["one", "two"]);
      await c.endAsync();
    });
  }

  test("raw wss: subprotocol negotiated over TLS", async () => {
    const c = await RawWsClient.connectedWs(rb.addresses[0]!.port, 5, { clientId: "raw-wss" }, { tls: { ca: read(certs!.ca) } });
    expect(c.protocol).toBe("mqtt");
    c.destroy();
  });

  test("mutual TLS on wss: a client certificate signed by the CA connects; none, or an untrusted one, is refused", async () => {
    const port = rb.addresses[1]!.port;
    const ok = await RawWsClient.connectedWs(port, 4, { clientId: "wss-mtls" }, { tls: { ca: read(certs!.ca), cert: read(certs!.aliceCert), key: read(certs!.aliceKey) } });
    ok.destroy();
    for (const t of [{ ca: read(certs!.ca) }, { ca: read(certs!.ca), cert: read(certs!.malloryCert), key: read(certs!.malloryKey) }]) {
      const r = await RawWsClient.connectWs(port, 4, { tls: t }).then(
        (c) => {
          c.destroy();
          return "upgraded";
        },
        (e: Error) => e.message,
      );
      expect(r).not.toBe("upgraded");
    }
  });
});
