/**
 * Session takeover: exactly one live connection per Client ID.
 * 3.1.1 [MQTT-3.1.4-2], 5 [MQTT-3.1.4-3]: an accepted CONNECT closes the
 * existing connection whatever Clean Session / Clean Start says (v5: DISCONNECT
 * 0x8E first); the flag only decides resume vs discard (Session Present).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { RawClient } from "../helpers/raw.ts";

const b = useTestBroker({ auth: { allowAnonymous: true, users: [{ username: "alice", password: "secret" }] } });

const flagCombos: [boolean, boolean][] = [
  [true, true],
  [true, false],
  [false, true],
  [false, false],
];

describe("takeover 3.1.1 [MQTT-3.1.4-2]", () => {
  for (const [oldClean, newClean] of flagCombos) {
    test(`old clean=${oldClean}, new clean=${newClean}: old socket closed without any packet, new accepted`, async () => {
      const id = `t311-${oldClean}-${newClean}`;
      const a = await RawClient.connected(b.port, 4, { clientId: id, clean: oldClean });
      const c = await RawClient.connect(b.port, 4);
      const ack = await c.handshake({ clientId: id, clean: newClean });
      expect(ack.cmd).toBe("connack");
      expect(ack.returnCode).toBe(0);
      // [MQTT-3.2.2-1..3]: Session Present only when resuming a stored session
      expect(ack.sessionPresent).toBe(!newClean && !oldClean);
      expect(await a.waitClose()).toBe(true);
      // A 3.1.1 client never receives DISCONNECT (Table 2.1)
      expect(a.pending()).toEqual([]);
      expect(c.closed).toBe(false);
      c.send({ cmd: "pingreq" });
      expect((await c.next()).cmd).toBe("pingresp");
      c.destroy();
    });
  }
});

describe("takeover 5 [MQTT-3.1.4-3]", () => {
  for (const [oldClean, newClean] of flagCombos) {
    test(`old cleanStart=${oldClean}, new cleanStart=${newClean}: old gets DISCONNECT 0x8E then close`, async () => {
      const id = `t5-${oldClean}-${newClean}`;
      const a = await RawClient.connected(b.port, 5, { clientId: id, clean: oldClean, properties: { sessionExpiryInterval: 60 } });
      const c = await RawClient.connect(b.port, 5);
      const ack = await c.handshake({ clientId: id, clean: newClean, properties: { sessionExpiryInterval: 60 } });
      expect(ack.reasonCode).toBe(0);
      expect(ack.sessionPresent).toBe(!newClean);
      const d = await a.next();
      expect(d.cmd).toBe("disconnect");
      expect(d.reasonCode).toBe(0x8e);
      expect(await a.waitClose()).toBe(true);
      c.send({ cmd: "pingreq" });
      expect((await c.next()).cmd).toBe("pingresp");
      c.destroy();
    });
  }

  test("MQTT.js v5 client sees DISCONNECT 0x8E on takeover", async () => {
    const a = await connectClient(b.port, { clientId: "mqttjs-take", protocolVersion: 5 });
    const got = new Promise<number | undefined>((r) => a.client.on("disconnect", (p) => r(p.reasonCode)));
    const c = await connectClient(b.port, { clientId: "mqttjs-take", protocolVersion: 5 });
    expect(await got).toBe(0x8e);
    await c.end();
  });
});

describe("a refused CONNECT never kicks the live connection", () => {
  test("wrong password: 3.1.1 CONNACK 0x04, the first client keeps working", async () => {
    const a = await connectClient(b.port, { clientId: "victim", username: "alice", password: "secret" });
    await a.client.subscribeAsync("victim/t", { qos: 1 });
    const c = await RawClient.connect(b.port, 4);
    const ack = await c.handshake({ clientId: "victim", username: "alice", password: Buffer.from("wrong") });
    expect(ack.returnCode).toBe(0x04);
    expect(await c.waitClose()).toBe(true);
    expect(a.client.connected).toBe(true);
    const p = await connectClient(b.port, {});
    await p.client.publishAsync("victim/t", "still here", { qos: 1 });
    await a.waitMessages(1);
    expect(a.messages[0]!.payload.toString()).toBe("still here");
    await Promise.all([a.end(), p.end()]);
  });

  test("malformed CONNECT (v5 Receive Maximum 0) with the same id: CONNACK 0x82, no takeover", async () => {
    const a = await RawClient.connected(b.port, 5, { clientId: "victim5" });
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: "victim5", properties: { receiveMaximum: 0 } });
    expect(ack.reasonCode).toBe(0x82);
    expect(await c.waitClose()).toBe(true);
    expect(a.closed).toBe(false);
    a.send({ cmd: "pingreq" });
    expect((await a.next()).cmd).toBe("pingresp");
    a.destroy();
  });
});

describe("teardown race (the NanoMQ bug)", () => {
  test("the old connection's close never removes the new one's session or subscriptions", async () => {
    const a = await RawClient.connected(b.port, 4, { clientId: "race", clean: false });
    a.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "race/t", qos: 1 }] });
    await a.nextOf("suback");
    const c = await RawClient.connect(b.port, 4);
    const ack = await c.handshake({ clientId: "race", clean: false });
    expect(ack.sessionPresent).toBe(true);
    // The old socket now closes from its side too: its close handler runs after the takeover.
    a.destroy();
    await a.waitClose();
    await Bun.sleep(50);
    const s = b.broker.sessions.get("race");
    expect(s?.conn).not.toBeNull();
    expect(s?.subs.has("race/t")).toBe(true);
    const p = await connectClient(b.port, {});
    await p.client.publishAsync("race/t", "after race", { qos: 1 });
    const pub = await c.nextOf("publish");
    expect(pub.payload.toString()).toBe("after race");
    await p.end();
    c.destroy();
  });
});

describe("storm: 60 sockets CONNECT concurrently with one Client ID", () => {
  for (const version of [4, 5] as const) {
    test(`v${version}: exactly one stays connected, it works, and the client count is right`, async () => {
      const before = b.broker.clients;
      const id = `storm-${version}`;
      const socks = await Promise.all(Array.from({ length: 60 }, () => RawClient.connect(b.port, version)));
      for (const s of socks) {
        s.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: version, clean: true, keepalive: 0, clientId: id });
      }
      // Every socket gets its CONNACK (each CONNECT was valid and accepted in turn) ...
      await waitFor(() => socks.filter((s) => s.closed).length === 59, 5000, "59 closed sockets");
      await Bun.sleep(100);
      const alive = socks.filter((s) => !s.closed);
      expect(alive.length).toBe(1);
      expect(b.broker.clients).toBe(before + 1);
      expect(b.broker.sessions.get(id)?.conn).not.toBeNull();
      // ... and the survivor works.
      const survivor = alive[0]!;
      survivor.send({ cmd: "subscribe", messageId: 7, subscriptions: [{ topic: "storm/x", qos: 0 }] });
      expect((await survivor.nextOf("suback")).messageId).toBe(7);
      for (const s of socks) s.destroy();
      await waitFor(() => b.broker.clients === before, 3000, "client count back");
    });
  }
});

describe("will on takeover", () => {
  test("3.1.1: the taken-over connection's will is published [MQTT-3.1.2-8]", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("will/takeover311", { qos: 1 });
    await RawClient.connected(b.port, 4, { clientId: "will311", will: { topic: "will/takeover311", payload: Buffer.from("gone"), qos: 1, retain: false } });
    await RawClient.connected(b.port, 4, { clientId: "will311" });
    await w.waitMessages(1);
    expect(w.messages[0]!.payload.toString()).toBe("gone");
    await w.end();
  });

  test("v5: will delay 30 s, session expiry 60 s, new Clean Start 0 → will not published", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("will/takeover5", { qos: 1 });
    await RawClient.connected(b.port, 5, {
      clientId: "will5",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: "will/takeover5", payload: Buffer.from("gone"), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
    });
    const c = await RawClient.connected(b.port, 5, { clientId: "will5", clean: false, properties: { sessionExpiryInterval: 60 } });
    await Bun.sleep(200);
    expect(w.messages.length).toBe(0);
    c.destroy();
    await w.end();
  });

  test("v5: will delay 30 s but new Clean Start 1 ends the old session → will published", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("will/takeover5b", { qos: 1 });
    await RawClient.connected(b.port, 5, {
      clientId: "will5b",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: "will/takeover5b", payload: Buffer.from("gone"), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
    });
    const c = await RawClient.connected(b.port, 5, { clientId: "will5b", clean: true });
    await w.waitMessages(1);
    expect(w.messages[0]!.payload.toString()).toBe("gone");
    c.destroy();
    await w.end();
  });
});

/**
 * A slow (argon2id) password check finishes after the event loop moved on.
 * The verdict of a CONNECT whose socket closed meanwhile must take over
 * nothing, and with many CONNECTs for one Client ID verified at once exactly
 * one live connection remains, never a dead one (3.1.1 [MQTT-3.1.4-2], 5
 * [MQTT-3.1.4-3]: takeover only by an accepted CONNECT of a live client).
 */
describe("late authentication verdicts (argon2id users)", () => {
  let a: RunningBroker;
  beforeAll(async () => {
    const hash = await Bun.password.hash("slow-secret", { algorithm: "argon2id" });
    a = await startTestBroker({ auth: { allowAnonymous: false, users: [{ username: "slow", password: hash }] } });
  });
  afterAll(() => a.stop());

  const connectPacket = (version: 4 | 5, id: string) => ({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: version,
    clean: true,
    keepalive: 0,
    clientId: id,
    username: "slow",
    password: Buffer.from("slow-secret"),
  });

  for (const version of [4, 5] as const) {
    test(`v${version}: a CONNECT whose socket closes before its verdict does not kick the live client`, async () => {
      const id = `late-${version}`;
      const live = await RawClient.connected(a.port, version, connectPacket(version, id));
      const ghost = await RawClient.connect(a.port, version);
      ghost.send(connectPacket(version, id));
      ghost.destroy(); // gone before argon2 can answer
      // Let the verdict arrive (argon2id takes tens of ms here) and any takeover act.
      await waitFor(() => [...a.broker.connections].every((c) => c.clientId !== id || c.session !== null || c.isClosed()), 3000, "verdicts");
      await Bun.sleep(300);
      expect(live.closed).toBe(false);
      expect(live.pending().filter((p) => p.cmd === "disconnect")).toEqual([]);
      const conn = a.broker.sessions.get(id)?.conn;
      expect(conn).not.toBeNull();
      expect(conn!.isClosed()).toBe(false);
      // The live client still works.
      live.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: `late/${version}`, qos: 0 }] });
      expect((await live.nextOf("suback")).messageId).toBe(3);
      live.destroy();
      await waitFor(() => !a.broker.sessions.get(id)?.conn, 3000, "the live client detached");
    });

    test(`v${version}: storm of 30 CONNECTs for one Client ID, half of them closing before their verdict: exactly one live connection, and it is open`, async () => {
      const id = `late-storm-${version}`;
      const before = a.broker.clients;
      const socks = await Promise.all(Array.from({ length: 30 }, () => RawClient.connect(a.port, version)));
      socks.forEach((s, i) => {
        s.send(connectPacket(version, id));
        if (i % 2 === 1) s.destroy();
      });
      const open = socks.filter((_, i) => i % 2 === 0);
      // Every open socket is answered: CONNACK, then (all but one) a takeover close.
      await waitFor(() => open.filter((s) => s.closed).length === open.length - 1, 15_000, "all but one open socket taken over");
      await Bun.sleep(200);
      const alive = open.filter((s) => !s.closed);
      expect(alive.length).toBe(1);
      expect(a.broker.clients).toBe(before + 1);
      const conn = a.broker.sessions.get(id)?.conn;
      expect(conn).not.toBeNull();
      expect(conn!.isClosed()).toBe(false);
      const survivor = alive[0]!;
      survivor.send({ cmd: "subscribe", messageId: 9, subscriptions: [{ topic: `late-storm/${version}`, qos: 0 }] });
      expect((await survivor.nextOf("suback")).messageId).toBe(9);
      for (const s of socks) s.destroy();
      await waitFor(() => a.broker.clients === before, 3000, "client count back");
    }, 30_000);
  }
});
