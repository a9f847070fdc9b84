/**
 * Persistent sessions: Clean Session (3.1.1) / Clean Start + Session Expiry
 * Interval (5), Session Present, the offline queue, retransmission on resume
 * ([MQTT-4.4.0-1]), outbound flow control by the client's Receive Maximum,
 * message expiry while queued and inbound QoS 2 state across connections.
 *
 * Broker policy tested here: QoS 0 messages are not queued for an offline
 * session; the offline queue is bounded (limits.maxQueuedMessages), newer
 * messages are dropped and counted in `broker.dropped`.
 */
import { describe, expect, test } from "bun:test";
import type { IClientPublishOptions } from "mqtt";
import { startTestBroker, useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { type Packet, RawClient } from "../helpers/raw.ts";

const b = useTestBroker();

type Version = 4 | 5;
type PubProps = IClientPublishOptions["properties"];

/** CONNECT options for a session that survives the connection. */
function persistent(version: Version, clientId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const props = (extra.properties as Record<string, unknown> | undefined) ?? {};
  return version === 5
    ? { clientId, clean: false, ...extra, properties: { sessionExpiryInterval: 60, ...props } }
    : { clientId, clean: false, ...extra };
}

async function subscribe(c: RawClient, topic: string, qos: 0 | 1 | 2, messageId = 1): Promise<void> {
  c.send({ cmd: "subscribe", messageId, subscriptions: [{ topic, qos }] });
  const ack = await c.nextOf("suback");
  expect(ack.messageId).toBe(messageId);
  expect(ack.granted).toEqual([qos]);
}

/** Normal DISCONNECT; the broker closes the socket and the session is detached. */
async function disconnect(c: RawClient, extra: Record<string, unknown> = {}): Promise<void> {
  c.send({ cmd: "disconnect", ...extra });
  expect(await c.waitClose()).toBe(true);
}

/** Connect, subscribe to `topic` and DISCONNECT normally: what stays behind is the session (if it outlives the connection) with that subscription. */
async function subscribeAndLeave(version: Version, opts: Record<string, unknown>, topic: string, qos: 0 | 1 | 2 = 1, port = b.port): Promise<void> {
  const s = await RawClient.connected(port, version, opts);
  await subscribe(s, topic, qos);
  await disconnect(s);
}

/** Drop the socket without DISCONNECT and wait until the broker has detached the session. */
async function drop(c: RawClient, clientId: string): Promise<void> {
  c.destroy();
  await waitFor(() => (b.broker.sessions.get(clientId)?.conn ?? null) === null, 3000, `${clientId} detached`);
}

/** Publish with MQTT.js; QoS > 0 publishes resolve after the broker's ack, so the message has been routed. */
async function publish(topic: string, payloads: string[], qos: 0 | 1 | 2 = 1, version: Version = 4, properties?: PubProps, port = b.port): Promise<void> {
  const p = await connectClient(port, { protocolVersion: version });
  for (const m of payloads) await p.client.publishAsync(topic, m, properties ? { qos, properties } : { qos });
  await p.end();
}

/** Reconnect and return the client with its CONNACK. */
async function reconnect(version: Version, opts: Record<string, unknown>, port = b.port): Promise<{ c: RawClient; ack: Packet }> {
  const c = await RawClient.connect(port, version);
  const ack = await c.handshake(opts);
  expect(ack.cmd).toBe("connack");
  expect(ack.returnCode ?? ack.reasonCode ?? 0).toBe(0);
  return { c, ack };
}

const text = (p: Packet) => (p.payload as Buffer).toString();

describe("3.1.1 Clean Session", () => {
  test("clean=0: QoS 1 messages published while offline arrive in order on resume, Session Present 1, no re-subscribe [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2]", async () => {
    const id = "s311-queue";
    const topic = "sess/311/queue";
    await subscribeAndLeave(4, { clientId: id, clean: false }, topic);
    await publish(topic, ["m1", "m2", "m3"], 1);

    const { c, ack } = await reconnect(4, { clientId: id, clean: false });
    expect(ack.sessionPresent).toBe(true);
    const got: Packet[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await c.next();
      expect(p.cmd).toBe("publish");
      got.push(p);
      c.send({ cmd: "puback", messageId: p.messageId });
    }
    expect(got.map(text)).toEqual(["m1", "m2", "m3"]);
    for (const p of got) {
      expect(p.topic).toBe(topic);
      expect(p.qos).toBe(1);
      expect(p.dup).toBe(false); // first transmission of a queued message
      expect(p.retain).toBe(false);
      expect(p.messageId).toBeGreaterThan(0);
    }
    expect(new Set(got.map((p) => p.messageId)).size).toBe(3);
    expect(await c.drain(200)).toEqual([]);

    // The stored subscription is live again without a SUBSCRIBE.
    await publish(topic, ["live"], 1);
    const live = await c.nextOf("publish");
    expect(text(live)).toBe("live");
    c.send({ cmd: "puback", messageId: live.messageId });
    await disconnect(c);
  });

  test("clean=0: a QoS 0 message published while offline is not queued (policy), a QoS 1 one is [MQTT-3.1.2-5]", async () => {
    const id = "s311-qos0";
    const topic = "sess/311/qos0";
    await subscribeAndLeave(4, { clientId: id, clean: false }, topic);
    const p = await connectClient(b.port, {});
    await p.client.publishAsync(topic, "zero", { qos: 0 });
    await p.client.publishAsync(topic, "one", { qos: 1 }); // its PUBACK means "zero" was processed too
    await p.end();

    const { c, ack } = await reconnect(4, { clientId: id, clean: false });
    expect(ack.sessionPresent).toBe(true);
    const got = await c.drain(300);
    expect(got.map((x) => [x.cmd, text(x), x.qos])).toEqual([["publish", "one", 1]]);
    c.send({ cmd: "puback", messageId: got[0]!.messageId });
    await disconnect(c);
  });

  test("reconnect with clean=1 discards the stored session: Session Present 0, no subscription, no queued message [MQTT-3.1.2-6] [MQTT-3.2.2-1]", async () => {
    const id = "s311-clean1";
    const topic = "sess/311/clean1";
    await subscribeAndLeave(4, { clientId: id, clean: false }, topic);
    await publish(topic, ["queued"], 1);
    expect(b.broker.sessions.get(id)?.queue.length).toBe(1);

    const { c, ack } = await reconnect(4, { clientId: id, clean: true });
    expect(ack.sessionPresent).toBe(false);
    expect(await c.drain(300)).toEqual([]); // the queued message went with the old session
    expect(b.broker.sessions.get(id)?.subs.size).toBe(0);
    await publish(topic, ["after"], 1);
    expect(await c.drain(300)).toEqual([]); // and so did the subscription
    await disconnect(c);

    // The clean=1 session itself ends with its connection: nothing to resume afterwards.
    expect(b.broker.sessions.has(id)).toBe(false);
    const again = await reconnect(4, { clientId: id, clean: false });
    expect(again.ack.sessionPresent).toBe(false);
    await disconnect(again.c);
  });

  for (const how of ["DISCONNECT", "socket drop"] as const) {
    test(`clean=1 session is discarded when the connection ends (${how}) [MQTT-3.1.2-6] [MQTT-3.2.2-3]`, async () => {
      const id = `s311-c1-${how === "DISCONNECT" ? "disc" : "drop"}`;
      const topic = `sess/311/c1/${how === "DISCONNECT" ? "disc" : "drop"}`;
      const s = await RawClient.connected(b.port, 4, { clientId: id, clean: true });
      await subscribe(s, topic, 1);
      expect(b.broker.sessions.get(id)?.subs.size).toBe(1);
      if (how === "DISCONNECT") await disconnect(s);
      else await drop(s, id);
      expect(b.broker.sessions.has(id)).toBe(false);
      await publish(topic, ["lost"], 1);

      const { c, ack } = await reconnect(4, { clientId: id, clean: false });
      expect(ack.sessionPresent).toBe(false);
      expect(await c.drain(300)).toEqual([]);
      expect(b.broker.sessions.get(id)?.subs.size).toBe(0);
      await disconnect(c);
    });
  }
});

describe("v5 Session Expiry Interval", () => {
  test("expiry 1 s: resumable at once [MQTT-3.1.2-23]; 2 s after disconnect it is gone, Clean Start 0 → Session Present 0 [MQTT-4.1.0-2] [MQTT-3.2.2-3]", async () => {
    const id = "s5-exp1";
    const topic = "sess/5/exp1";
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } };
    await subscribeAndLeave(5, opts, topic);
    const first = await reconnect(5, opts);
    expect(first.ack.sessionPresent).toBe(true);
    await disconnect(first.c);

    await Bun.sleep(2000);
    expect(b.broker.sessions.has(id)).toBe(false);
    const { c, ack } = await reconnect(5, opts);
    expect(ack.sessionPresent).toBe(false);
    expect(b.broker.sessions.get(id)?.subs.size).toBe(0);
    await disconnect(c);
  });

  for (const [label, props] of [
    ["absent", {}],
    ["0", { sessionExpiryInterval: 0 }],
  ] as const) {
    test(`expiry ${label}: the session ends with the connection, Clean Start 0 right after → Session Present 0 (§3.1.2.11.2)`, async () => {
      const id = `s5-exp0-${label}`;
      const topic = `sess/5/exp0/${label}`;
      await subscribeAndLeave(5, { clientId: id, clean: false, properties: props }, topic);
      expect(b.broker.sessions.has(id)).toBe(false);
      const { c, ack } = await reconnect(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
      expect(ack.sessionPresent).toBe(false);
      expect(b.broker.sessions.get(id)?.subs.size).toBe(0);
      await disconnect(c);
    });
  }

  for (const expiry of [0xffffffff, 3600]) {
    test(`expiry ${expiry}: session kept, Clean Start 0 → Session Present 1 and queued messages delivered [MQTT-3.1.2-23] [MQTT-3.2.2-3]`, async () => {
      const id = `s5-exp-${expiry}`;
      const topic = `sess/5/exp/${expiry}`;
      const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: expiry } };
      await subscribeAndLeave(5, opts, topic);
      await publish(topic, ["kept"], 1, 5);
      const { c, ack } = await reconnect(5, opts);
      expect(ack.sessionPresent).toBe(true);
      // A server that lowers the interval must say so in CONNACK (§3.2.2.3.2).
      const told = ack.properties?.sessionExpiryInterval as number | undefined;
      if (told !== undefined) expect(told).toBeLessThan(expiry);
      const p = await c.nextOf("publish");
      expect(text(p)).toBe("kept");
      c.send({ cmd: "puback", messageId: p.messageId });
      await disconnect(c, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    });
  }

  test("CONNECT expiry 0, DISCONNECT with expiry 10 → server DISCONNECT 0x82 and the will is published (§3.14.2.2.2)", async () => {
    const id = "s5-disc-bad-expiry";
    const willTopic = "sess/5/bad-expiry/will";
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync(willTopic, { qos: 1 });
    const c = await RawClient.connected(b.port, 5, {
      clientId: id,
      properties: { sessionExpiryInterval: 0 },
      will: { topic: willTopic, payload: Buffer.from("bad disconnect"), qos: 1, retain: false },
    });
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 10 } });
    const d = await c.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x82);
    expect(d.properties?.sessionExpiryInterval).toBeUndefined(); // [MQTT-3.14.2-2]
    expect(await c.waitClose()).toBe(true);
    await w.waitMessages(1, 5000);
    expect(w.messages[0]!.topic).toBe(willTopic);
    expect(w.messages[0]!.payload.toString()).toBe("bad disconnect");
    expect(b.broker.sessions.has(id)).toBe(false); // the expiry stayed 0
    await w.end();
  });

  test("CONNECT expiry 100, DISCONNECT with expiry 0 → session discarded, next Clean Start 0 → Session Present 0 (§3.14.2.2.2)", async () => {
    const id = "s5-disc-expiry0";
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 100 } };
    const s = await RawClient.connected(b.port, 5, opts);
    await subscribe(s, "sess/5/disc-expiry0", 1);
    await disconnect(s, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    expect(b.broker.sessions.has(id)).toBe(false);
    const { c, ack } = await reconnect(5, opts);
    expect(ack.sessionPresent).toBe(false);
    await disconnect(c, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });
});

describe("retransmission on resume [MQTT-4.4.0-1]", () => {
  for (const version of [4, 5] as const) {
    test(`v${version} QoS 1: an unacknowledged PUBLISH is re-sent with the same packet id and DUP=1 [MQTT-4.4.0-1] [MQTT-3.3.1-1]`, async () => {
      const id = `s-retx1-${version}`;
      const topic = `sess/retx1/${version}`;
      const s = await RawClient.connected(b.port, version, persistent(version, id));
      await subscribe(s, topic, 1);
      await publish(topic, ["once"], 1, version);
      const first = await s.nextOf("publish");
      expect(first.dup).toBe(false);
      expect(first.qos).toBe(1);
      if (version === 5) {
        // v5: never re-sent on a live connection ([MQTT-4.4.0-1] 5).
        expect(await s.drain(500)).toEqual([]);
      }
      await drop(s, id);

      const { c, ack } = await reconnect(version, persistent(version, id));
      expect(ack.sessionPresent).toBe(true);
      const again = await c.next();
      expect(again.cmd).toBe("publish");
      expect(again.messageId).toBe(first.messageId);
      expect(again.dup).toBe(true);
      expect(again.qos).toBe(1);
      expect(again.topic).toBe(topic);
      expect(text(again)).toBe("once");
      c.send({ cmd: "puback", messageId: again.messageId });
      expect(await c.drain(200)).toEqual([]);
      expect(b.broker.sessions.get(id)?.inflight.count).toBe(0);
      await disconnect(c, version === 5 ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : {});
    });

    test(`v${version} QoS 2 before PUBREC: the PUBLISH is re-sent with the same id and DUP=1, then the flow completes [MQTT-4.4.0-1]`, async () => {
      const id = `s-retx2p-${version}`;
      const topic = `sess/retx2p/${version}`;
      const s = await RawClient.connected(b.port, version, persistent(version, id));
      await subscribe(s, topic, 2);
      await publish(topic, ["two"], 2, version);
      const first = await s.nextOf("publish");
      expect(first.qos).toBe(2);
      expect(first.dup).toBe(false);
      await drop(s, id);

      const { c, ack } = await reconnect(version, persistent(version, id));
      expect(ack.sessionPresent).toBe(true);
      const again = await c.next();
      expect(again.cmd).toBe("publish");
      expect(again.messageId).toBe(first.messageId);
      expect(again.dup).toBe(true);
      expect(again.qos).toBe(2);
      expect(text(again)).toBe("two");
      c.send({ cmd: "pubrec", messageId: again.messageId });
      const rel = await c.next();
      expect(rel.cmd).toBe("pubrel");
      expect(rel.messageId).toBe(first.messageId);
      c.send({ cmd: "pubcomp", messageId: rel.messageId });
      expect(await c.drain(200)).toEqual([]);
      expect(b.broker.sessions.get(id)?.inflight.count).toBe(0);
      await disconnect(c, version === 5 ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : {});
    });

    test(`v${version} QoS 2 after PUBREC: the broker re-sends PUBREL (not the PUBLISH) with the same id [MQTT-4.4.0-1] [MQTT-4.3.3-1]`, async () => {
      const id = `s-retx2r-${version}`;
      const topic = `sess/retx2r/${version}`;
      const s = await RawClient.connected(b.port, version, persistent(version, id));
      await subscribe(s, topic, 2);
      await publish(topic, ["two"], 2, version);
      const pub = await s.nextOf("publish");
      expect(pub.qos).toBe(2);
      s.send({ cmd: "pubrec", messageId: pub.messageId });
      const rel = await s.next();
      expect(rel.cmd).toBe("pubrel");
      expect(rel.messageId).toBe(pub.messageId);
      await drop(s, id); // before PUBCOMP

      const { c, ack } = await reconnect(version, persistent(version, id));
      expect(ack.sessionPresent).toBe(true);
      const got = await c.drain(300);
      expect(got.map((p) => [p.cmd, p.messageId])).toEqual([["pubrel", pub.messageId]]);
      c.send({ cmd: "pubcomp", messageId: pub.messageId });
      expect(await c.drain(200)).toEqual([]);
      expect(b.broker.sessions.get(id)?.inflight.count).toBe(0);
      await disconnect(c, version === 5 ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : {});
    });
  }

  test("in-flight messages are re-sent (DUP=1, same ids) before queued ones, everything in publish order [MQTT-4.4.0-1] [MQTT-4.6.0-5]", async () => {
    const id = "s-retx-order";
    const topic = "sess/retx/order";
    const s = await RawClient.connected(b.port, 5, persistent(5, id, { properties: { receiveMaximum: 2 } }));
    await subscribe(s, topic, 1);
    await publish(topic, ["m1", "m2", "m3", "m4", "m5"], 1, 5);
    const inflight = await s.drain(300);
    expect(inflight.map((p) => [p.cmd, text(p), p.dup])).toEqual([
      ["publish", "m1", false],
      ["publish", "m2", false],
    ]);
    await drop(s, id);
    await publish(topic, ["m6"], 1, 5); // queued while offline

    const { c, ack } = await reconnect(5, persistent(5, id, { properties: { receiveMaximum: 20 } }));
    expect(ack.sessionPresent).toBe(true);
    const got: Packet[] = [];
    for (let i = 0; i < 6; i++) got.push(await c.nextOf("publish"));
    expect(got.map(text)).toEqual(["m1", "m2", "m3", "m4", "m5", "m6"]);
    expect(got.map((p) => p.dup)).toEqual([true, true, false, false, false, false]);
    expect(got[0]!.messageId).toBe(inflight[0]!.messageId);
    expect(got[1]!.messageId).toBe(inflight[1]!.messageId);
    expect(new Set(got.map((p) => p.messageId)).size).toBe(6);
    for (const p of got) c.send({ cmd: "puback", messageId: p.messageId });
    expect(await c.drain(200)).toEqual([]);
    await disconnect(c, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });
});

describe("offline queue limit (policy)", () => {
  test("limits.maxQueuedMessages 5: of 8 QoS 1 messages queued offline exactly the first 5 arrive, 3 are counted as dropped [MQTT-3.1.2-5]", async () => {
    const b2 = await startTestBroker({ limits: { maxQueuedMessages: 5 } });
    try {
      const id = "s-qlimit";
      const topic = "sess/qlimit";
      await subscribeAndLeave(4, { clientId: id, clean: false }, topic, 1, b2.port);
      const before = b2.broker.dropped;
      await publish(topic, ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"], 1, 4, undefined, b2.port);
      expect(b2.broker.dropped - before).toBe(3);

      const { c, ack } = await reconnect(4, { clientId: id, clean: false }, b2.port);
      expect(ack.sessionPresent).toBe(true);
      const got = await c.drain(300);
      expect(got.map((p) => [p.cmd, text(p)])).toEqual([
        ["publish", "q1"],
        ["publish", "q2"],
        ["publish", "q3"],
        ["publish", "q4"],
        ["publish", "q5"],
      ]);
      for (const p of got) c.send({ cmd: "puback", messageId: p.messageId });
      expect(await c.drain(200)).toEqual([]);
      c.destroy();
    } finally {
      await b2.stop();
    }
  });
});

describe("v5 flow control: the client's Receive Maximum", () => {
  test("Receive Maximum 2, no acks: exactly 2 QoS 1 PUBLISHes in flight; each PUBACK releases one more [MQTT-3.3.4-9] [MQTT-4.9.0-2]", async () => {
    const id = "s-rm2";
    const topic = "sess/rm2";
    const s = await RawClient.connected(b.port, 5, { clientId: id, properties: { receiveMaximum: 2 } });
    await subscribe(s, topic, 1);
    await publish(topic, ["r1", "r2", "r3", "r4", "r5"], 1, 5);
    const first = await s.drain(300);
    expect(first.map((p) => [p.cmd, text(p)])).toEqual([
      ["publish", "r1"],
      ["publish", "r2"],
    ]);
    s.send({ cmd: "puback", messageId: first[0]!.messageId });
    const second = await s.drain(300);
    expect(second.map((p) => [p.cmd, text(p)])).toEqual([["publish", "r3"]]);
    s.send({ cmd: "puback", messageId: first[1]!.messageId });
    s.send({ cmd: "puback", messageId: second[0]!.messageId });
    const rest = await s.drain(300);
    expect(rest.map((p) => [p.cmd, text(p)])).toEqual([
      ["publish", "r4"],
      ["publish", "r5"],
    ]);
    for (const p of rest) s.send({ cmd: "puback", messageId: p.messageId });
    expect(await s.drain(200)).toEqual([]);
    await disconnect(s);
  });

  test("Receive Maximum 1, QoS 2: PUBREC does not free the quota, PUBCOMP does (§4.9) [MQTT-3.3.4-9]", async () => {
    const id = "s-rm1-q2";
    const topic = "sess/rm1q2";
    const s = await RawClient.connected(b.port, 5, { clientId: id, properties: { receiveMaximum: 1 } });
    await subscribe(s, topic, 2);
    await publish(topic, ["a", "b"], 2, 5);
    const first = await s.drain(300);
    expect(first.map((p) => [p.cmd, text(p)])).toEqual([["publish", "a"]]);
    s.send({ cmd: "pubrec", messageId: first[0]!.messageId });
    const afterRec = await s.drain(300);
    expect(afterRec.map((p) => [p.cmd, p.messageId])).toEqual([["pubrel", first[0]!.messageId]]);
    s.send({ cmd: "pubcomp", messageId: first[0]!.messageId });
    const afterComp = await s.drain(300);
    expect(afterComp.map((p) => [p.cmd, text(p)])).toEqual([["publish", "b"]]);
    s.send({ cmd: "pubrec", messageId: afterComp[0]!.messageId });
    expect((await s.nextOf("pubrel")).messageId).toBe(afterComp[0]!.messageId);
    s.send({ cmd: "pubcomp", messageId: afterComp[0]!.messageId });
    await disconnect(s);
  });

  test("re-sent PUBLISHes on resume count against the new connection's Receive Maximum (§4.9) [MQTT-4.9.0-2] [MQTT-3.3.4-9]", async () => {
    const id = "s-rm-resume";
    const topic = "sess/rm/resume";
    const s = await RawClient.connected(b.port, 5, persistent(5, id, { properties: { receiveMaximum: 4 } }));
    await subscribe(s, topic, 1);
    await publish(topic, ["x1", "x2", "x3", "x4"], 1, 5);
    const sent = await s.drain(300);
    expect(sent.map(text)).toEqual(["x1", "x2", "x3", "x4"]);
    await drop(s, id);

    const { c, ack } = await reconnect(5, persistent(5, id, { properties: { receiveMaximum: 2 } }));
    expect(ack.sessionPresent).toBe(true);
    const resent = await c.drain(300);
    // Send quota 2: at most two unacknowledged PUBLISHes, re-sent or not.
    expect(resent.map((p) => [p.cmd, text(p), p.dup, p.messageId])).toEqual([
      ["publish", "x1", true, sent[0]!.messageId],
      ["publish", "x2", true, sent[1]!.messageId],
    ]);
    for (const p of resent) c.send({ cmd: "puback", messageId: p.messageId });
    const rest = await c.drain(300);
    expect(rest.map((p) => [p.cmd, text(p), p.dup])).toEqual([
      ["publish", "x3", true],
      ["publish", "x4", true],
    ]);
    for (const p of rest) c.send({ cmd: "puback", messageId: p.messageId });
    await disconnect(c, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });
});

describe("v5 message expiry while queued", () => {
  test("expiry 1 s is dropped after 2 s offline [MQTT-3.3.2-5]; expiry 10 s is delivered with the remaining interval [MQTT-3.3.2-6]", async () => {
    const id = "s-msg-expiry";
    const topic = "sess/msgexpiry";
    await subscribeAndLeave(5, persistent(5, id), topic);
    await publish(topic, ["short"], 1, 5, { messageExpiryInterval: 1 });
    await publish(topic, ["long"], 1, 5, { messageExpiryInterval: 10 });
    await Bun.sleep(2000);

    const { c, ack } = await reconnect(5, persistent(5, id));
    expect(ack.sessionPresent).toBe(true);
    const got = await c.drain(300);
    expect(got.map((p) => [p.cmd, text(p)])).toEqual([["publish", "long"]]);
    const left = got[0]!.properties?.messageExpiryInterval as number | undefined;
    expect(left).toBeDefined();
    // At least 2 s of the 10 have passed.
    expect(left!).toBeLessThanOrEqual(8);
    expect(left!).toBeGreaterThanOrEqual(1);
    c.send({ cmd: "puback", messageId: got[0]!.messageId });
    await disconnect(c, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });
});

describe("inbound QoS 2 state is session state", () => {
  for (const version of [4, 5] as const) {
    test(`v${version}: PUBLISH QoS 2 id 5, reconnect before PUBREL, DUP re-send → PUBREC, delivered once; PUBREL → PUBCOMP [MQTT-4.3.3-2] / 5 [MQTT-4.3.3-10] [MQTT-4.3.3-11]`, async () => {
      const id = `s-in-q2-${version}`;
      const topic = `sess/inq2/${version}`;
      const w = await connectClient(b.port, { protocolVersion: version });
      await w.client.subscribeAsync(topic, { qos: 2 });
      const pub = { cmd: "publish", topic, payload: Buffer.from("exactly once"), qos: 2, messageId: 5, dup: false, retain: false };

      const a = await RawClient.connected(b.port, version, persistent(version, id));
      a.send(pub);
      const rec = await a.next();
      expect(rec.cmd).toBe("pubrec");
      expect(rec.messageId).toBe(5);
      await w.waitMessages(1);
      await drop(a, id);
      expect(b.broker.sessions.get(id)?.inboundQos2.has(5)).toBe(true);

      const { c, ack } = await reconnect(version, persistent(version, id));
      expect(ack.sessionPresent).toBe(true);
      c.send({ ...pub, dup: true });
      const rec2 = await c.next();
      expect(rec2.cmd).toBe("pubrec");
      expect(rec2.messageId).toBe(5);
      expect(rec2.reasonCode ?? 0).toBeLessThan(0x80);
      c.send({ cmd: "pubrel", messageId: 5 });
      const comp = await c.next();
      expect(comp.cmd).toBe("pubcomp");
      expect(comp.messageId).toBe(5);
      expect(comp.reasonCode ?? 0).toBe(0); // the id was known: not 0x92
      await Bun.sleep(300);
      expect(w.messages.map((m) => m.payload.toString())).toEqual(["exactly once"]);

      // After PUBCOMP the id is free: the same id is a new message (5 [MQTT-4.3.3-12]).
      c.send({ ...pub, payload: Buffer.from("new one") });
      expect((await c.next()).cmd).toBe("pubrec");
      c.send({ cmd: "pubrel", messageId: 5 });
      expect((await c.next()).cmd).toBe("pubcomp");
      await w.waitMessages(2);
      expect(w.messages.map((m) => m.payload.toString())).toEqual(["exactly once", "new one"]);
      await disconnect(c, version === 5 ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : {});
      await w.end();
    });
  }
});
