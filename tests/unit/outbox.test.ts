/**
 * Outbox (lib/outbox.ts) through real connected sessions: real Connections
 * over in-memory transports (tests/helpers/harness.ts) and a real Broker, fed
 * CONNECT / SUBSCRIBE / PUBLISH / acks encoded by mqtt-packet, with output
 * decoded by mqtt-packet. Covers the in-flight window (limits.maxInflight,
 * maxInflightBytes, the v5 Receive Maximum), order per topic, re-sending on
 * resume, the queue policy of the module comment (hold the publisher while the
 * subscriber makes progress, drop when it is stuck, twice the bound for
 * messages nobody can be held for, offline bound, QoS 0 never queued) and
 * the v5 PUBACK reason codes that tell a publisher nobody took its message.
 */
import { describe, expect, test } from "bun:test";
import { Message } from "../../lib/message.ts";
import { Routed } from "../../lib/router.ts";
import type { Session } from "../../lib/session.ts";
import { Harness, type Packet, publishPacket, settle, type TestClient } from "../helpers/harness.ts";

type Limits = Record<string, number>;

const pubs = (ps: Packet[]) => ps.filter((p) => p.cmd === "publish");
const texts = (ps: Packet[]) => pubs(ps).map((p) => p.payload.toString());
const ackIds = (ps: Packet[], cmd = "puback") => ps.filter((p) => p.cmd === cmd).map((p) => p.messageId);
const rc = (p: Packet | undefined) => p?.reasonCode ?? 0;
/** `count` QoS 1 PUBLISH packets on `topic`, payloads `${prefix}${i}`, packet ids from `firstId`. */
const batch = (topic: string, prefix: string, from: number, count: number, firstId = from + 1, qos: 0 | 1 | 2 = 1) =>
  Array.from({ length: count }, (_, i) => publishPacket(topic, `${prefix}${from + i}`, qos, firstId + i));
const range = (prefix: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

function session(h: Harness, id: string): Session {
  const s = h.broker.sessions.get(id);
  if (!s) throw new Error(`no session ${id}`);
  return s;
}
const queued = (s: Session) => s.queue.toArray().map((d) => d.msg.payload.toString());

/** A connected subscriber to `filter`. */
async function subscriber(h: Harness, id: string, version: 4 | 5 = 4, opts: Record<string, unknown> = {}, filter = "t", qos: 0 | 1 | 2 = 1): Promise<TestClient> {
  const c = await h.connected(id, version, opts);
  const ack = await c.subscribe(filter, qos);
  expect(ack.granted).toEqual([qos]);
  return c;
}

/**
 * Acknowledge every QoS 1 PUBLISH that arrives (QoS 2: PUBREC, then PUBCOMP
 * on PUBREL) until nothing more comes; returns the payloads in order.
 */
async function ackAll(c: TestClient, first: Packet[] = []): Promise<string[]> {
  const seen: string[] = [];
  let got = first;
  for (let round = 0; round < 1000; round++) {
    if (got.length === 0) got = await c.receive();
    if (got.length === 0) return seen;
    for (const p of got) {
      if (p.cmd === "publish") {
        seen.push(p.payload.toString());
        if (p.qos === 1) c.puback(p.messageId);
        if (p.qos === 2) c.pubrec(p.messageId);
      } else if (p.cmd === "pubrel") {
        c.pubcomp(p.messageId);
      }
    }
    got = [];
  }
  throw new Error("ackAll: no end");
}

// ---------------------------------------------------------------------------

describe("in-flight window", () => {
  test("v5: exactly min(maxInflight, Receive Maximum) QoS 1 PUBLISHes go out unacknowledged; the rest wait in the queue in order [MQTT-3.3.4-9] [MQTT-4.9.0-1] [MQTT-4.9.0-2]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 5 } } });
    const sub = await subscriber(h, "sub", 5, { properties: { receiveMaximum: 3 } });
    const pub = await h.connected("pub", 4);
    pub.sendMany(batch("t", "m", 0, 10));
    const got = pubs(await sub.receive());
    expect(got.map((p) => [p.messageId, p.payload.toString(), p.qos, p.dup])).toEqual([
      [1, "m0", 1, false],
      [2, "m1", 1, false],
      [3, "m2", 1, false],
    ]);
    const s = session(h, "sub");
    expect(s.inflight.count).toBe(3);
    expect(queued(s)).toEqual(range("m", 3, 10));
    // The publisher's messages were all taken (queued below the bound).
    expect(ackIds(await pub.receive())).toEqual(range("", 1, 11).map(Number));
  });

  test("the window is limits.maxInflight when the client's Receive Maximum is larger (v5) or absent (3.1.1)", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 4 } } });
    const v5 = await subscriber(h, "v5", 5, { properties: { receiveMaximum: 10 } });
    const v4 = await subscriber(h, "v4", 4);
    for (let i = 0; i < 7; i++) h.publish("t", `m${i}`);
    expect(pubs(await v5.receive()).length).toBe(4);
    expect(pubs(await v4.receive()).length).toBe(4);
    expect(session(h, "v5").queue.length).toBe(3);
    expect(session(h, "v4").queue.length).toBe(3);
  });

  test("each PUBACK lets exactly one more PUBLISH out, in publication order [MQTT-4.6.0-5] [MQTT-4.9.0-2]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 5 } } });
    const sub = await subscriber(h, "sub", 5, { properties: { receiveMaximum: 3 } });
    const pub = await h.connected("pub", 4);
    pub.sendMany(batch("t", "m", 0, 10));
    expect(texts(await sub.receive())).toEqual(["m0", "m1", "m2"]);
    for (let k = 0; k < 7; k++) {
      sub.puback(k + 1);
      const got = pubs(await sub.receive());
      expect(got.map((p) => [p.messageId, p.payload.toString()])).toEqual([[k + 4, `m${k + 3}`]]);
    }
    // A repeated or unknown PUBACK frees nothing.
    sub.puback(1);
    sub.puback(999);
    expect(await sub.receive()).toEqual([]);
    for (let id = 8; id <= 10; id++) sub.puback(id);
    expect(await sub.receive()).toEqual([]);
    const s = session(h, "sub");
    expect(s.inflight.count).toBe(0);
    expect(s.queue.length).toBe(0);
  });

  test("QoS 2: PUBREC does not free the window, PUBCOMP does [MQTT-4.3.3-4] (v5 §4.9)", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 10 } } });
    const sub = await subscriber(h, "sub", 5, { properties: { receiveMaximum: 2 } }, "t", 2);
    const pub = await h.connected("pub", 4);
    pub.sendMany(batch("t", "m", 0, 3, 1, 2));
    expect(pubs(await sub.receive()).map((p) => [p.messageId, p.qos])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    sub.pubrec(1);
    const afterRec = await sub.receive();
    expect(afterRec.map((p) => [p.cmd, p.messageId])).toEqual([["pubrel", 1]]);
    sub.pubcomp(1);
    expect(pubs(await sub.receive()).map((p) => [p.messageId, p.payload.toString()])).toEqual([[3, "m2"]]);
  });

  test("messages of several topics interleaved keep their order through the queue [MQTT-4.6.0-5]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 2 } } });
    const sub = await subscriber(h, "sub", 4, {}, "t/#");
    const pub = await h.connected("pub", 4);
    const sent: string[] = [];
    const packets: Record<string, unknown>[] = [];
    for (let i = 0; i < 12; i++) {
      const topic = `t/${"abc"[i % 3]}`;
      sent.push(`${topic}:${i}`);
      packets.push(publishPacket(topic, `${topic}:${i}`, 1, i + 1));
    }
    pub.sendMany(packets.slice(0, 6));
    pub.sendMany(packets.slice(6));
    expect(await ackAll(sub)).toEqual(sent);
    expect(sub.log.filter((p) => p.cmd === "publish").map((p) => `${p.topic}:${p.payload.toString().split(":")[1]}`)).toEqual(sent);
  });

  test("QoS 0 and other packets are not held back by a full window [MQTT-4.9.0-3]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 1 } } });
    const sub = await subscriber(h, "sub", 5);
    const pub = await h.connected("pub", 4);
    pub.sendMany(batch("t", "q1-", 0, 3));
    expect(texts(await sub.receive())).toEqual(["q1-0"]);
    pub.publish("t", "zero", 0);
    sub.send({ cmd: "pingreq" });
    const got = await sub.receive();
    expect(got.map((p) => [p.cmd, p.qos ?? 0, p.payload?.toString() ?? ""])).toEqual([
      ["publish", 0, "zero"],
      ["pingresp", 0, ""],
    ]);
    expect(queued(session(h, "sub"))).toEqual(["q1-1", "q1-2"]);
  });
});

describe("limits.maxInflightBytes", () => {
  test("closes the window once the payload bytes in flight reach it; each ack reopens it", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 100, maxInflightBytes: 1024 } } });
    const sub = await subscriber(h, "sub", 4);
    for (let i = 0; i < 6; i++) h.publish("t", Buffer.alloc(400, 0x30 + i));
    // 0, 400 and 800 bytes in flight are below 1024: three go; at 1200 the window is closed.
    const first = pubs(await sub.receive());
    expect(first.map((p) => p.payload[0] - 0x30)).toEqual([0, 1, 2]);
    const s = session(h, "sub");
    expect(s.inflight.bytes).toBe(1200);
    expect(s.queue.length).toBe(3);
    sub.puback(1); // 800 in flight: one more
    expect(pubs(await sub.receive()).map((p) => p.payload[0] - 0x30)).toEqual([3]);
    expect(s.inflight.bytes).toBe(1200);
    sub.puback(2);
    sub.puback(3);
    // 400 in flight: two more (400 -> 800 -> 1200)
    expect(pubs(await sub.receive()).map((p) => p.payload[0] - 0x30)).toEqual([4, 5]);
  });

  test("a payload larger than maxInflightBytes still goes out alone (no deadlock), then the rest", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 100, maxInflightBytes: 1024 } } });
    const sub = await subscriber(h, "sub", 4);
    h.publish("t", Buffer.alloc(3000, 0x41));
    h.publish("t", "small-1");
    h.publish("t", "small-2");
    const got = pubs(await sub.receive());
    expect(got.map((p) => p.payload.length)).toEqual([3000]);
    sub.puback(got[0]!.messageId);
    expect(texts(await sub.receive())).toEqual(["small-1", "small-2"]);
  });
});

describe("resend on resume", () => {
  test("3.1.1 clean=0: in-flight PUBLISHes re-sent with DUP=1 and their packet ids, PUBREL re-sent for released QoS 2, in original order, then the queue [MQTT-4.4.0-1] [MQTT-3.3.1-1]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 4 } } });
    const sub = await subscriber(h, "p", 4, { clean: false }, "t", 2);
    const pub = await h.connected("pub", 4);
    pub.sendMany([publishPacket("t", "m0", 1, 1), publishPacket("t", "m1", 2, 2), publishPacket("t", "m2", 2, 3)]);
    expect(pubs(await sub.receive()).map((p) => [p.messageId, p.qos, p.payload.toString()])).toEqual([
      [1, 1, "m0"],
      [2, 2, "m1"],
      [3, 2, "m2"],
    ]);
    sub.pubrec(2);
    expect((await sub.receive()).map((p) => [p.cmd, p.messageId])).toEqual([["pubrel", 2]]);
    sub.drop();
    // Offline: QoS 1/2 messages wait in the session ([MQTT-3.1.2-5]).
    pub.sendMany([publishPacket("t", "m3", 1, 4), publishPacket("t", "m4", 2, 5), publishPacket("t", "m5", 1, 6)]);
    await settle();
    const s = session(h, "p");
    expect(s.inflight.count).toBe(3);
    expect(queued(s)).toEqual(["m3", "m4", "m5"]);

    const again = h.client(4);
    const connack = await again.connect({ clientId: "p", clean: false });
    expect(connack.sessionPresent).toBe(true);
    const got = again.take();
    expect(got.map((p) => [p.cmd, p.messageId, p.dup ?? false, p.qos ?? 0, p.payload?.toString() ?? ""])).toEqual([
      ["publish", 1, true, 1, "m0"],
      ["pubrel", 2, false, 1, ""], // (PUBREL's fixed header has QoS bits 01)
      ["publish", 3, true, 2, "m2"],
      ["publish", 4, false, 1, "m3"], // the queue follows into the free slot of the window
    ]);
    again.puback(1);
    expect(pubs(await again.receive()).map((p) => [p.messageId, p.dup, p.qos, p.payload.toString()])).toEqual([[5, false, 2, "m4"]]);
    again.pubcomp(2);
    expect(pubs(await again.receive()).map((p) => [p.messageId, p.dup, p.payload.toString()])).toEqual([[6, false, "m5"]]);
  });

  test("v5: a smaller Receive Maximum on the new connection re-sends only that many first; the others follow as acks free the window, before any new message [MQTT-4.4.0-1] [MQTT-4.9.0-2] (v5 §4.9)", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 10 } } });
    const sub = await subscriber(h, "r", 5, { properties: { sessionExpiryInterval: 300, receiveMaximum: 4 } });
    for (let i = 0; i < 6; i++) h.publish("t", `m${i}`);
    expect(texts(await sub.receive())).toEqual(["m0", "m1", "m2", "m3"]);
    sub.drop();
    await settle();

    const again = h.client(5);
    const connack = await again.connect({ clientId: "r", clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 2 } });
    expect(connack.sessionPresent).toBe(true);
    expect(pubs(again.take()).map((p) => [p.messageId, p.dup, p.payload.toString()])).toEqual([
      [1, true, "m0"],
      [2, true, "m1"],
    ]);
    const s = session(h, "r");
    expect(s.resend?.map((d) => d.packetId)).toEqual([3, 4]);
    // A live message while re-sends are pending waits behind them.
    h.publish("t", "m6");
    expect(await again.receive()).toEqual([]);
    const order: [number, boolean, string][] = [];
    for (let id = 1; id <= 7; id++) {
      again.puback(id);
      const got = pubs(await again.receive());
      expect(got.length).toBe(id <= 5 ? 1 : 0);
      for (const p of got) order.push([p.messageId, p.dup, p.payload.toString()]);
    }
    expect(order).toEqual([
      [3, true, "m2"],
      [4, true, "m3"],
      [5, false, "m4"],
      [6, false, "m5"],
      [7, false, "m6"],
    ]);
    expect(s.resend).toBeNull();
  });

  test("v5: an ack for an in-flight delivery not yet re-sent on this connection completes it; it is never re-sent [MQTT-4.4.0-1]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 10 } } });
    const sub = await subscriber(h, "r3", 5, { properties: { sessionExpiryInterval: 300, receiveMaximum: 4 } });
    for (let i = 0; i < 5; i++) h.publish("t", `m${i}`);
    expect(texts(await sub.receive())).toEqual(["m0", "m1", "m2", "m3"]);
    sub.drop();
    const again = h.client(5);
    await again.connect({ clientId: "r3", clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 2 } });
    expect(pubs(again.take()).map((p) => p.messageId)).toEqual([1, 2]);
    again.puback(3); // it had m2 from the first connection
    expect(await again.receive()).toEqual([]); // 1 and 2 still fill the window of 2
    again.puback(1);
    expect(pubs(await again.receive()).map((p) => [p.messageId, p.dup, p.payload.toString()])).toEqual([[4, true, "m3"]]);
    again.puback(2);
    expect(pubs(await again.receive()).map((p) => [p.messageId, p.dup, p.payload.toString()])).toEqual([[5, false, "m4"]]);
  });

  test("v5: PUBRELs are re-sent whatever the Receive Maximum; no new PUBLISH while they fill the window [MQTT-4.4.0-1] [MQTT-4.9.0-3]", async () => {
    const h = new Harness({ config: { limits: { maxInflight: 10 } } });
    const sub = await subscriber(h, "r2", 5, { properties: { sessionExpiryInterval: 300, receiveMaximum: 3 } }, "t", 2);
    const pub = await h.connected("pub", 4);
    pub.sendMany(batch("t", "m", 0, 4, 1, 2));
    expect(pubs(await sub.receive()).map((p) => p.messageId)).toEqual([1, 2, 3]);
    for (const id of [1, 2, 3]) sub.pubrec(id);
    expect(ackIds(await sub.receive(), "pubrel")).toEqual([1, 2, 3]);
    sub.drop();
    const again = h.client(5);
    await again.connect({ clientId: "r2", clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 1 } });
    const got = again.take();
    expect(got.map((p) => [p.cmd, p.messageId])).toEqual([
      ["pubrel", 1],
      ["pubrel", 2],
      ["pubrel", 3],
    ]);
    for (const id of [1, 2]) again.pubcomp(id);
    expect(await again.receive()).toEqual([]); // one PUBREL still pending fills the window of 1
    again.pubcomp(3);
    expect(pubs(await again.receive()).map((p) => [p.messageId, p.payload.toString()])).toEqual([[4, "m3"]]);
  });
});

// ---------------------------------------------------------------------------
// Queue policy. Bound 4 messages, window 2, stall bound 1000 ms.

const POLICY: Limits = { maxQueuedMessages: 4, maxInflight: 2, maxPublisherStallMs: 1000 };

/** Subscriber "sub" (3.1.1, window 2) with m0..m5 published by "pub": 2 in flight, 4 queued (the bound). */
async function full(limits: Limits = POLICY, pubVersion: 4 | 5 = 4) {
  const h = new Harness({ config: { limits } });
  const sub = await subscriber(h, "sub", 4);
  const pub = await h.connected("pub", pubVersion);
  pub.sendMany(batch("t", "m", 0, 6));
  expect(texts(await sub.receive())).toEqual(["m0", "m1"]);
  const s = session(h, "sub");
  expect(ackIds(pub.take())).toEqual([1, 2, 3, 4, 5, 6]);
  return { h, sub, pub, s };
}

describe("queue policy (lib/outbox.ts)", () => {
  test("below the bound every message is queued and the publisher is not held back", async () => {
    const { h, pub, s } = await full();
    expect(queued(s)).toEqual(["m2", "m3", "m4", "m5"]);
    expect(pub.conn.paused).toBe(false);
    expect(pub.transport.pauseCalls).toBe(0);
    expect(h.broker.congested.size).toBe(0);
    expect(h.broker.drops.total).toBe(0);
  });

  test("over the bound an online subscriber holds back the publisher at that packet; the message is queued and acknowledged; at half the publisher resumes; nothing is dropped", async () => {
    const { h, sub, pub, s } = await full();
    // m6 overflows; m7 and m8 came in the same read and wait unprocessed.
    pub.sendMany(batch("t", "m", 6, 3));
    await settle();
    expect(ackIds(pub.take())).toEqual([7]);
    expect(queued(s)).toEqual(["m2", "m3", "m4", "m5", "m6"]);
    expect(pub.conn.paused).toBe(true);
    expect(pub.transport.readingPaused).toBe(true);
    expect(pub.transport.pauseCalls).toBe(1);
    expect(h.broker.congested.has(s)).toBe(true);
    // What the publisher sends now stays in the "kernel".
    pub.publish("t", "m9", 1, 10);
    await settle();
    expect(pub.take()).toEqual([]);
    expect(pub.transport.inbound.length).toBe(1);

    // The subscriber makes progress: 5 -> 4 -> 3 queued, still held.
    sub.puback(1);
    sub.puback(2);
    await settle();
    expect(s.queue.length).toBe(3);
    expect(pub.conn.paused).toBe(true);
    // 3 -> 2 = half the bound: the publisher resumes; m7, m8 (held) and m9 (kernel) are read.
    sub.puback(3);
    await settle();
    expect(pub.transport.resumeCalls).toBeGreaterThanOrEqual(1);
    expect(ackIds(pub.take())).toEqual([8, 9, 10]);
    // m9 took the queue over the bound again: held again, still queued.
    expect(queued(s)).toEqual(["m5", "m6", "m7", "m8", "m9"]);
    expect(pub.conn.paused).toBe(true);

    // Everything reaches the subscriber, in order, nothing dropped.
    const rest = await ackAll(sub, sub.take());
    expect([...texts(sub.log)]).toEqual(range("m", 0, 10));
    expect(rest.length).toBeGreaterThan(0);
    expect(h.broker.drops.total).toBe(0);
    expect(s.dropped).toBe(0);
    expect(pub.conn.paused).toBe(false);
    expect(h.broker.congested.size).toBe(0);
  });

  test("markStuck trims the queue back to the bound (drops.queueFull), resumes the publisher; further overflow is dropped at once until the queue drains to half", async () => {
    const { h, sub, pub, s } = await full();
    pub.sendMany(batch("t", "m", 6, 2)); // m6 overflows (held, queued), m7 waits
    await settle();
    expect(s.queue.length).toBe(5);
    expect(pub.conn.paused).toBe(true);
    expect(ackIds(pub.take())).toEqual([7]);

    h.broker.outbox.markStuck(s);
    expect(s.stuck).toBe(true);
    expect(h.broker.stalls).toBe(1);
    expect(queued(s)).toEqual(["m2", "m3", "m4", "m5"]); // the newest went
    expect(h.broker.drops.queueFull).toBe(1);
    expect(s.dropped).toBe(1);
    expect(h.broker.congested.has(s)).toBe(false);
    await settle();
    // The publisher resumed; m7 overflowed the stuck subscriber: dropped at once, not held.
    expect(pub.conn.paused).toBe(false);
    expect(pub.transport.readingPaused).toBe(false);
    expect(ackIds(pub.take())).toEqual([8]); // 3.1.1 has no way to say it was dropped
    expect(h.broker.drops.queueFull).toBe(2);
    expect(queued(s)).toEqual(["m2", "m3", "m4", "m5"]);
    // deliver() itself reports the drop.
    const extra = new Message("t", Buffer.from("x"), 1, false, null, 0, "pub");
    expect(h.broker.outbox.deliver(s, extra, 1, false, null, null, pub.conn)).toBe(false);
    expect(h.broker.drops.queueFull).toBe(3);
    expect(pub.conn.paused).toBe(false);

    // Below the bound (3 queued) messages are queued again, but still no holding; at the bound: dropped.
    sub.puback(1);
    await settle();
    expect(s.queue.length).toBe(3);
    expect(s.stuck).toBe(true);
    pub.sendMany([publishPacket("t", "m8", 1, 9), publishPacket("t", "m9", 1, 10)]);
    await settle();
    expect(queued(s)).toEqual(["m3", "m4", "m5", "m8"]);
    expect(h.broker.drops.queueFull).toBe(4); // m9
    expect(pub.conn.paused).toBe(false);

    // Drained to half: not stuck any more; the next overflow holds the publisher again instead of dropping.
    sub.puback(2);
    sub.puback(3);
    await settle();
    expect(s.queue.length).toBe(2);
    expect(s.stuck).toBe(false);
    pub.sendMany(batch("t", "m", 10, 3, 11)); // m10 -> 3, m11 -> 4, m12 -> 5: held
    await settle();
    expect(queued(s)).toEqual(["m5", "m8", "m10", "m11", "m12"]);
    expect(pub.conn.paused).toBe(true);
    expect(h.broker.drops.queueFull).toBe(4);
  });

  test("markStuck on a persistent session removes the trimmed deliveries (and their unreferenced payloads) from the store", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    const sub = await subscriber(h, "ps", 4, { clean: false });
    const pub = await h.connected("pub", 4);
    pub.sendMany(batch("t", "m", 0, 7)); // 2 in flight, 4 queued, m6 overflows: held
    await settle();
    expect(texts(sub.take())).toEqual(["m0", "m1"]);
    const s = session(h, "ps");
    expect(s.queue.length).toBe(5);
    // The journal writes at commit points (journal.ts); with a memory store nothing waits
    // for them, so they lag (lib/batch.ts): reading the store here is one.
    const rows = () => {
      h.broker.journal.commit();
      return h.store
        .load()
        .deliveries.filter((d) => d.clientId === "ps")
        .map((d) => d.seq);
    };
    expect(rows().length).toBe(7);
    h.broker.outbox.markStuck(s);
    const kept = [...s.inflight.ordered(), ...s.queue.toArray()].map((d) => d.seq);
    expect(rows()).toEqual(kept);
    expect(h.store.load().messages.map((m) => m.payload.toString())).toEqual(range("m", 0, 6));
  });

  test("two clients that publish to each other are not deadlocked by holding each other back: their acks are still read", async () => {
    // Each is the other's subscriber. A's message overflows B's queue, so A's
    // reading pauses. B's overflows A's, but B already holds A back, so B is
    // not held (lib/outbox.ts): were it held too, each client's PUBACKs would
    // wait unread behind its paused reading, neither queue could drain, and
    // after maxPublisherStallMs housekeeping would declare both healthy
    // subscribers stuck and drop messages already acknowledged to their
    // publishers (the deadlock this test was written to catch).
    const h = new Harness({ config: { limits: POLICY } });
    const a = await subscriber(h, "A", 4, {}, "to-a");
    const b = await subscriber(h, "B", 4, {}, "to-b");
    for (let i = 0; i < 6; i++) {
      h.publish("to-a", `x${i}`);
      h.publish("to-b", `y${i}`);
    }
    a.publish("to-b", "from-a", 1, 1);
    b.publish("to-a", "from-b", 1, 1);
    await settle();
    expect(a.conn.paused).toBe(true);
    expect(b.conn.paused).toBe(false);
    // Both clients acknowledge their two in-flight deliveries at once.
    for (const c of [a, b]) for (const p of pubs(c.take())) c.puback(p.messageId);
    await settle();
    // B's acks were read (B is not held): B made progress, so it is not stuck.
    h.clock.advance(POLICY.maxPublisherStallMs! - 1);
    h.tick();
    expect(h.broker.stalls).toBe(0);
    // As both keep acknowledging, everything is delivered and nothing dropped: no deadlock.
    const got = { A: [] as string[], B: [] as string[] };
    for (let round = 0; round < 20; round++) {
      for (const [name, c] of [["A", a], ["B", b]] as const) {
        for (const p of pubs(c.take())) {
          got[name].push(p.payload.toString());
          c.puback(p.messageId);
        }
      }
      await settle();
    }
    expect(session(h, "A").inflight.count + session(h, "A").queue.length).toBe(0);
    expect(session(h, "B").inflight.count + session(h, "B").queue.length).toBe(0);
    expect(got.A).toContain("from-b");
    expect(got.B).toContain("from-a");
    expect(h.broker.drops.queueFull).toBe(0);
  });

  test("housekeeping: stuck only after limits.maxPublisherStallMs without progress; an acknowledgement restarts the clock", async () => {
    const { h, sub, pub, s } = await full();
    const pub2 = await h.connected("pub2", 4);
    pub.publish("t", "m6", 1, 7);
    pub2.publish("t", "n0", 1, 1);
    await settle();
    expect(s.queue.length).toBe(6);
    expect(pub.conn.paused && pub2.conn.paused).toBe(true);

    h.clock.advance(1000);
    h.tick(); // exactly the bound: not yet
    expect(s.stuck).toBe(false);
    sub.puback(1); // progress at t0 + 1000 (5 queued, still over the bound: still holding)
    await settle();
    expect(pub.conn.paused).toBe(true);
    h.clock.advance(1000);
    h.tick();
    expect(s.stuck).toBe(false);
    expect(h.broker.stalls).toBe(0);
    h.clock.advance(1);
    h.tick();
    expect(s.stuck).toBe(true);
    expect(h.broker.stalls).toBe(1);
    expect(s.queue.length).toBe(4);
    expect(h.broker.drops.queueFull).toBe(1);
    await settle();
    expect(pub.conn.paused).toBe(false);
    expect(pub2.conn.paused).toBe(false);
    // Not stuck twice for the same episode.
    h.clock.advance(5000);
    h.tick();
    expect(h.broker.stalls).toBe(1);
  });

  test("messages with no publisher to hold (origin null) take the queue to twice the bound, then are dropped", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    const sub = await subscriber(h, "sub", 4);
    for (let i = 0; i < 10; i++) expect(h.publish("t", `w${i}`)).toBe(Routed.Delivered);
    expect(h.publish("t", "w10")).toBe(Routed.DroppedForAll);
    const s = session(h, "sub");
    expect(s.queue.length).toBe(8);
    expect(h.broker.drops.queueFull).toBe(1);
    expect(s.blockers).toBeNull();
    expect(h.broker.congested.size).toBe(0);
    expect(await ackAll(sub)).toEqual(range("w", 0, 10));
  });

  test("the subscriber's own messages never hold its own connection: twice the bound, then dropped (v5 PUBACK 0x97)", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    const self = await subscriber(h, "self", 5);
    self.sendMany(batch("t", "s", 0, 11));
    const got = await self.receive();
    const acks = got.filter((p) => p.cmd === "puback");
    expect(acks.map((p) => [p.messageId, rc(p)])).toEqual([...range("", 1, 11).map((id) => [Number(id), 0]), [11, 0x97]]);
    expect(texts(got)).toEqual(["s0", "s1"]);
    expect(self.conn.paused).toBe(false);
    expect(self.transport.pauseCalls).toBe(0);
    expect(session(h, "self").queue.length).toBe(8);
    expect(h.broker.drops.queueFull).toBe(1);
  });

  test("with several held publishers the queue still stops at twice the bound: the next message is dropped, its publisher is not held (v5 PUBACK 0x97)", async () => {
    const { h, s } = await full();
    for (let i = 0; i < 3; i++) h.publish("t", `w${i}`); // 7 queued, nobody held
    expect(s.queue.length).toBe(7);
    const a = await h.connected("a", 4);
    const b = await h.connected("b", 5);
    a.publish("t", "a0", 1, 1);
    await settle();
    expect(a.conn.paused).toBe(true);
    expect(s.queue.length).toBe(8);
    b.publish("t", "b0", 1, 1);
    const got = await b.receive();
    expect(got.map((p) => [p.cmd, p.messageId, rc(p)])).toEqual([["puback", 1, 0x97]]);
    expect(b.conn.paused).toBe(false);
    expect(s.queue.length).toBe(8);
    expect(h.broker.drops.queueFull).toBe(1);
  });

  test("limits.maxPublisherStallMs 0: publishers are never held; overflow is queued to twice the bound, then dropped", async () => {
    const { h, pub, s } = await full({ ...POLICY, maxPublisherStallMs: 0 });
    pub.sendMany(batch("t", "m", 6, 5));
    await settle();
    expect(ackIds(pub.take())).toEqual([7, 8, 9, 10, 11]);
    expect(pub.conn.paused).toBe(false);
    expect(s.queue.length).toBe(8);
    expect(h.broker.drops.queueFull).toBe(1);
  });

  test("an offline persistent session drops what exceeds the bound; no publisher is held (v5 PUBACK 0x97); it gets the rest in order on return [MQTT-3.1.2-5]", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    const sub = await subscriber(h, "off", 4, { clean: false });
    sub.drop();
    const pub = await h.connected("pub", 5);
    pub.sendMany(batch("t", "m", 0, 6));
    const acks = (await pub.receive()).filter((p) => p.cmd === "puback");
    expect(acks.map((p) => [p.messageId, rc(p)])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
      [5, 0x97],
      [6, 0x97],
    ]);
    expect(pub.conn.paused).toBe(false);
    expect(pub.transport.pauseCalls).toBe(0);
    expect(h.broker.drops.queueFull).toBe(2);
    expect(session(h, "off").dropped).toBe(2);
    const again = h.client(4);
    await again.connect({ clientId: "off", clean: false });
    expect(await ackAll(again, again.take())).toEqual(["m0", "m1", "m2", "m3"]);
  });

  test("limits.maxQueuedBytes bounds the queue by payload bytes too (offline session)", async () => {
    const h = new Harness({ config: { limits: { ...POLICY, maxQueuedMessages: 100, maxQueuedBytes: 1024 } } });
    const sub = await subscriber(h, "off", 4, { clean: false });
    sub.drop();
    for (let i = 0; i < 3; i++) expect(h.publish("t", Buffer.alloc(300, 0x61 + i))).toBe(Routed.Delivered); // 900 bytes
    expect(h.publish("t", Buffer.alloc(300, 0x78))).toBe(Routed.DroppedForAll); // 1200 > 1024
    expect(h.publish("t", Buffer.alloc(100, 0x79))).toBe(Routed.Delivered); // 1000 fits
    const s = session(h, "off");
    expect(s.queue.length).toBe(4);
    expect(s.queue.bytes).toBe(1000);
    expect(h.broker.drops.queueFull).toBe(1);
  });

  test("a subscriber that goes away releases the publishers it held", async () => {
    const { h, sub, pub, s } = await full();
    pub.sendMany(batch("t", "m", 6, 2));
    await settle();
    expect(pub.conn.paused).toBe(true);
    expect(ackIds(pub.take())).toEqual([7]);
    sub.drop(); // clean session: it ends with its connection
    expect(h.broker.congested.has(s)).toBe(false);
    await settle();
    expect(pub.conn.paused).toBe(false);
    expect(ackIds(pub.take())).toEqual([8]); // m7, read after the resume (no subscriber left)
  });
});

describe("QoS 0 under the queue policy", () => {
  test("QoS 0 never enters the queue and never holds a publisher back, even while the QoS 1 queue is over its bound", async () => {
    const { h, sub, pub, s } = await full();
    pub.publish("t", "m6", 1, 7);
    await settle();
    expect(pub.conn.paused).toBe(true);
    expect(s.queue.length).toBe(5);
    const pub0 = await h.connected("pub0", 4);
    pub0.sendMany(batch("t", "z", 0, 3, 0, 0));
    const got = pubs(await sub.receive());
    expect(got.map((p) => [p.qos, p.payload.toString()])).toEqual([
      [0, "z0"],
      [0, "z1"],
      [0, "z2"],
    ]);
    expect(s.queue.length).toBe(5);
    expect(pub0.conn.paused).toBe(false);
    expect(pub0.transport.pauseCalls).toBe(0);
    expect(h.broker.drops.total).toBe(0);
  });

  test("QoS 0 is dropped (drops.qos0Pending) while the client's output is not draining beyond limits.maxPendingOutput; never queued; flows again after drain", async () => {
    const h = new Harness({ config: { limits: { ...POLICY, maxPendingOutput: 16 * 1024 } } });
    const sub = await subscriber(h, "slow", 4, {}, "t", 0);
    const pub = await h.connected("pub", 4);
    const conn = sub.conn;
    sub.transport.accept = 0; // the client stops reading
    const big = (i: number) => publishPacket("t", Buffer.alloc(1000, 0x30 + (i % 10)), 0);
    // Written while the output drains (not waiting for drain), whatever its size: the first batch.
    pub.sendMany(Array.from({ length: 10 }, (_, i) => big(i)));
    await settle();
    expect(conn.waitingDrain).toBe(true);
    const size = conn.out.len / 10; // one PUBLISH: 1 + 2 (Remaining Length) + 3 (topic) + 1000
    expect(size).toBe(1006);
    // Not draining but below maxPendingOutput: still written to the output buffer (15 * 1006 = 15090).
    pub.sendMany(Array.from({ length: 5 }, (_, i) => big(i)));
    await settle();
    expect(h.broker.drops.qos0Pending).toBe(0);
    expect(conn.out.len).toBe(15 * size);
    // Accepted while out.len <= 16384 (15090 -> 16096 -> 17102), then dropped and counted;
    // the publisher is not held back, nothing is queued.
    pub.sendMany(Array.from({ length: 10 }, (_, i) => big(i)));
    await settle();
    expect(conn.out.len).toBe(17 * size);
    expect(h.broker.drops.qos0Pending).toBe(8);
    expect(session(h, "slow").queue.length).toBe(0);
    expect(pub.conn.paused).toBe(false);
    expect(pub.transport.pauseCalls).toBe(0);
    expect(sub.take()).toEqual([]);
    // The client reads again: the 17 kept messages arrive, and new ones flow.
    sub.transport.drain();
    expect(conn.waitingDrain).toBe(false);
    expect(pubs(sub.take()).length).toBe(17);
    pub.publish("t", "after", 0);
    expect(texts(await sub.receive())).toEqual(["after"]);
    expect(h.broker.drops.qos0Pending).toBe(8);
  });

  test("partial writes: the rest of the output is kept and written on drain, in order", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    const sub = await subscriber(h, "sub", 4, {}, "t", 0);
    const before = sub.transport.bytesWritten; // CONNACK, SUBACK
    sub.transport.accept = 50;
    for (let i = 0; i < 10; i++) h.publish("t", `p${i}-${"x".repeat(20)}`, 0);
    await settle();
    expect(sub.transport.bytesWritten - before).toBe(50);
    expect(sub.conn.waitingDrain).toBe(true);
    sub.transport.drain(100);
    expect(sub.transport.bytesWritten - before).toBe(150);
    expect(sub.conn.waitingDrain).toBe(true);
    sub.transport.drain();
    expect(texts(sub.take()).map((t) => t.split("-")[0])).toEqual(range("p", 0, 10));
  });
});

describe("v5 PUBACK reason codes from routing", () => {
  test("0x10 No matching subscribers when no subscription matches (a success code)", async () => {
    const h = new Harness();
    const pub = await h.connected("pub", 5);
    pub.publish("nobody/home", "x", 1, 1);
    const got = await pub.receive();
    expect(got.map((p) => [p.cmd, p.messageId, rc(p)])).toEqual([["puback", 1, 0x10]]);
  });

  test("0x97 Quota exceeded when every matching subscriber dropped it; 0x00 when at least one took it", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    for (const id of ["s1", "s2"]) (await subscriber(h, id, 4, { clean: false }, "t/#")).drop();
    const pub = await h.connected("pub", 5);
    for (let i = 0; i < 4; i++) h.publish("t/x", `fill${i}`); // both queues at the bound
    pub.publish("t/x", "over", 1, 1);
    expect((await pub.receive()).map((p) => [p.cmd, rc(p)])).toEqual([["puback", 0x97]]);
    expect(h.broker.drops.queueFull).toBe(2);
    // A third, online subscriber takes it: success although the other two dropped it.
    await subscriber(h, "s3", 4, {}, "t/x");
    pub.publish("t/x", "taken", 1, 2);
    expect((await pub.receive()).map((p) => [p.cmd, p.messageId, rc(p)])).toEqual([["puback", 2, 0]]);
    expect(h.broker.drops.queueFull).toBe(4);
  });

  test("QoS 2 dropped for every subscriber: PUBREC 0x97 ends the flow, the packet id is free again [MQTT-4.3.3-9]", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    (await subscriber(h, "s1", 4, { clean: false }, "t", 2)).drop();
    for (let i = 0; i < 4; i++) h.publish("t", `fill${i}`);
    const pub = await h.connected("pub", 5);
    pub.publish("t", "over", 2, 7);
    expect((await pub.receive()).map((p) => [p.cmd, p.messageId, rc(p)])).toEqual([["pubrec", 7, 0x97]]);
    expect(session(h, "pub").inboundQos2.has(7)).toBe(false);
  });

  test("a retained message is not reported as dropped even if every subscriber dropped it", async () => {
    const h = new Harness({ config: { limits: POLICY } });
    (await subscriber(h, "s1", 4, { clean: false })).drop();
    for (let i = 0; i < 4; i++) h.publish("t", `fill${i}`);
    const pub = await h.connected("pub", 5);
    pub.publish("t", "kept", 1, 1, { retain: true });
    expect((await pub.receive()).map((p) => [p.cmd, rc(p)])).toEqual([["puback", 0]]);
    expect(h.broker.drops.queueFull).toBe(1);
    expect(h.broker.retainedMessage("t")?.payload.toString()).toBe("kept");
  });
});
