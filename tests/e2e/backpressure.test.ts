/**
 * Backpressure over real loopback sockets (DESIGN.md 2.7, 6.9): a subscriber
 * that stops reading must not make the broker buffer without bound. Its
 * pending output stays near limits.maxPendingOutput, QoS 0 messages to it are
 * dropped and counted, the publisher and the other subscribers carry on, and
 * after limits.drainTimeoutMs without a drain it is disconnected.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Connection } from "../../lib/connection.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { RawClient, encode } from "../helpers/raw.ts";

const MAX_PENDING = 65536;
/** Flood messages: larger than maxPendingOutput, so one message is one broker read. */
const PAYLOAD = 96 * 1024;
const FLOOD_BYTES = 20 * 1024 * 1024;

let running: RunningBroker | null = null;
const sockets: { destroy(): void }[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await running?.stop();
  running = null;
});

async function broker(drainTimeoutMs: number): Promise<RunningBroker> {
  running = await startTestBroker({
    limits: { maxPendingOutput: MAX_PENDING, drainTimeoutMs },
    persistence: { path: ":memory:" },
  });
  return running;
}

function connOf(b: RunningBroker, clientId: string): Connection {
  for (const c of b.broker.connections) if (c.clientId === clientId) return c;
  throw new Error(`no connection for ${clientId}`);
}

/** Watch one connection's pending output between event-loop turns. */
function watch(conn: Connection) {
  const w = { maxLen: 0, maxBuf: 0, sawWaitingDrain: false, stop: () => {} };
  const sample = () => {
    if (conn.out.len > w.maxLen) w.maxLen = conn.out.len;
    if (conn.out.buf.length > w.maxBuf) w.maxBuf = conn.out.buf.length;
    if (conn.waitingDrain) w.sawWaitingDrain = true;
  };
  const t = setInterval(sample, 1);
  w.stop = () => {
    clearInterval(t);
    sample();
  };
  return w;
}

/**
 * Flood QoS 0 PUBLISHes from a raw publisher (3.1.1, already CONNECTed), one
 * message per broker read: each write waits until the broker has taken the
 * previous message in. The broker counts a connection's output of the current
 * read against maxPendingOutput too (see the burst test), so several large
 * messages in one read would be dropped before the slow socket is even
 * offered them; pacing makes the slow socket's buffers really fill up.
 */
async function flood(b: RunningBroker, pub: RawClient, topic: string, totalBytes: number): Promise<number> {
  const one = encode({ cmd: "publish", topic, qos: 0, payload: Buffer.alloc(PAYLOAD, 0x42) });
  let sent = 0;
  while (sent * PAYLOAD < totalBytes) {
    if (pub.closed) throw new Error("publisher connection closed during the flood");
    const target = b.broker.messagesIn + 1;
    const ok = pub.socket.write(one);
    sent++;
    if (!ok) await new Promise<void>((r) => pub.socket.once("drain", () => r()));
    await waitFor(() => b.broker.messagesIn >= target || pub.closed, 10_000, "the broker to read a flood message");
  }
  return sent;
}

async function subscriber(port: number, clientId: string, filter: string, qos: 0 | 1 = 0): Promise<RawClient> {
  const c = await RawClient.connected(port, 4, { clientId });
  sockets.push(c);
  c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos }] });
  const ack = await c.nextOf("suback");
  expect(ack.granted).toEqual([qos]);
  return c;
}

/** Count PUBLISHes a reading client has received so far (and discard them); acknowledges QoS 1. */
function takePublishes(c: RawClient, into: { n: number; last: string; topics?: string[] }): void {
  for (const p of c.pending()) {
    if (p.cmd === "publish") {
      into.n++;
      into.last = p.topic;
      into.topics?.push(p.topic);
      if (p.qos === 1) c.send({ cmd: "puback", messageId: p.messageId });
    }
  }
}

describe("a subscriber that stops reading", () => {
  test(
    "pending output stays bounded, its QoS 0 messages are dropped and counted, everyone else keeps working",
    async () => {
      const b = await broker(60_000);
      const slow = await subscriber(b.port, "slow", "bp/#");
      const good = await subscriber(b.port, "good", "bp/#", 1);
      const pub = await RawClient.connected(b.port, 4, { clientId: "publisher" });
      sockets.push(pub);
      const slowConn = connOf(b, "slow");
      const goodConn = connOf(b, "good");

      slow.socket.pause(); // never reads again
      const w = watch(slowConn);
      const goodGot = { n: 0, last: "" };
      const reader = setInterval(() => takePublishes(good, goodGot), 5);
      const droppedBefore = b.broker.dropped;
      const sent = await flood(b, pub, "bp/flood", FLOOD_BYTES);

      // The publisher still works: a QoS 1 publish is acknowledged, PINGREQ answered.
      pub.send({ cmd: "publish", topic: "bp/end", qos: 1, messageId: 77, payload: Buffer.from("end") });
      const puback = await pub.nextOf("puback", 10_000);
      expect(puback.messageId).toBe(77);
      pub.send({ cmd: "pingreq" });
      expect((await pub.nextOf("pingresp", 5000)).cmd).toBe("pingresp");

      // The reading subscriber keeps receiving, up to the marker published after the flood
      // (QoS 1 both ways, so it is never a QoS 0 drop).
      await waitFor(() => (takePublishes(good, goodGot), goodGot.last === "bp/end"), 15_000, "good subscriber to get bp/end");
      clearInterval(reader);
      w.stop();

      const bound = 4 * MAX_PENDING;
      // The test did exercise backpressure: the broker had to wait for a drain on the slow socket.
      expect(w.sawWaitingDrain).toBe(true);
      expect(w.maxLen).toBeGreaterThan(0);
      expect(w.maxLen).toBeLessThanOrEqual(bound);
      expect(w.maxBuf).toBeLessThanOrEqual(bound);
      // Nothing else holds the flood either: every connection's pending output is bounded.
      for (const c of b.broker.connections) expect(c.out.len).toBeLessThanOrEqual(bound);

      // Most of 20 MB cannot have fitted in socket buffers: the rest was dropped and counted.
      const dropped = b.broker.dropped - droppedBefore;
      expect(sent * PAYLOAD).toBeGreaterThanOrEqual(FLOOD_BYTES);
      expect(dropped).toBeGreaterThan(sent / 4);
      expect(b.broker.messagesIn).toBeGreaterThanOrEqual(sent + 1); // the publisher was never throttled into losing input
      expect(dropped).toBeLessThanOrEqual(2 * (sent + 1)); // two subscribers at most
      expect(goodGot.n).toBeGreaterThan(0);

      // Both subscribers are still connected (no drain timeout configured yet).
      expect(slowConn.isClosed()).toBe(false);
      expect(goodConn.isClosed()).toBe(false);
      expect(good.closed).toBe(false);
      good.send({ cmd: "pingreq" });
      expect((await good.nextOf("pingresp", 5000)).cmd).toBe("pingresp");
    },
    60_000,
  );

  test(
    "with drainTimeoutMs 500 the non-reading client is disconnected while the others continue",
    async () => {
      const b = await broker(500);
      const slow = await subscriber(b.port, "slow2", "bp2/#");
      const good = await subscriber(b.port, "good2", "bp2/#", 1);
      const pub = await RawClient.connected(b.port, 4, { clientId: "publisher2" });
      sockets.push(pub);
      const slowConn = connOf(b, "slow2");
      const goodConn = connOf(b, "good2");
      const clientsBefore = b.broker.clients;

      slow.socket.pause();
      const goodGot = { n: 0, last: "" };
      const reader = setInterval(() => takePublishes(good, goodGot), 5);
      await flood(b, pub, "bp2/flood", FLOOD_BYTES);
      // The broker is waiting for the slow socket to drain ...
      await waitFor(() => slowConn.waitingDrain || slowConn.isClosed(), 10_000, "the slow connection to wait for a drain");
      // ... and gives up after the drain timeout (generous upper bound).
      await waitFor(() => slowConn.isClosed() && !b.broker.connections.has(slowConn), 10_000, "the slow connection to be closed");
      expect(b.broker.clients).toBe(clientsBefore - 1);
      expect(b.broker.sessions.has("slow2")).toBe(false); // clean session ended with it

      // The client side sees the connection go once it looks again.
      slow.socket.resume();
      expect(await slow.waitClose(10_000)).toBe(true);

      // The others were not affected.
      expect(goodConn.isClosed()).toBe(false);
      expect(good.closed).toBe(false);
      expect(pub.closed).toBe(false);
      pub.send({ cmd: "publish", topic: "bp2/after", qos: 1, messageId: 5, payload: Buffer.from("still here") });
      expect((await pub.nextOf("puback", 10_000)).messageId).toBe(5);
      await waitFor(() => (takePublishes(good, goodGot), goodGot.last === "bp2/after"), 15_000, "good subscriber to get bp2/after");
      clearInterval(reader);
      expect(goodGot.n).toBeGreaterThan(1);
    },
    60_000,
  );

  test(
    "a slow reader that resumes in time is not disconnected and gets the latest messages",
    async () => {
      const b = await broker(60_000);
      const slow = await subscriber(b.port, "slow3", "bp3/#");
      const pub = await RawClient.connected(b.port, 4, { clientId: "publisher3" });
      sockets.push(pub);
      const slowConn = connOf(b, "slow3");
      slow.socket.pause();
      await flood(b, pub, "bp3/flood", FLOOD_BYTES);
      await waitFor(() => slowConn.waitingDrain, 10_000, "the slow connection to wait for a drain");
      slow.socket.resume();
      // The pending output drains, then new messages flow again.
      await waitFor(() => !slowConn.waitingDrain && slowConn.out.len === 0, 15_000, "the slow connection to drain");
      pub.send({ cmd: "publish", topic: "bp3/after", qos: 0, payload: Buffer.from("x") });
      const got = { n: 0, last: "" };
      await waitFor(() => (takePublishes(slow, got), got.last === "bp3/after"), 15_000, "the resumed reader to get bp3/after");
      expect(slowConn.isClosed()).toBe(false);
      // Every byte it received parsed as whole packets: dropping never cut a packet in half.
      expect(slow.parseError).toBeNull();
    },
    60_000,
  );

  test(
    "a subscriber that does read, with an idle socket, loses nothing from one burst of small QoS 0 messages",
    async () => {
      // maxPendingOutput (16 KiB here, the smallest allowed) is about output a
      // client has not taken yet. Here the subscriber reads everything and its
      // socket is idle: one 128 KB write of small publishes (well within loopback
      // socket buffers) must all arrive, even if the broker reads it in one chunk.
      running = await startTestBroker({ limits: { maxPendingOutput: 16 * 1024 }, persistence: { path: ":memory:" } });
      const b = running;
      const reader = await subscriber(b.port, "reader", "burst/#");
      const pub = await RawClient.connected(b.port, 4, { clientId: "burster" });
      sockets.push(pub);
      const droppedBefore = b.broker.dropped;
      const N = 640;
      const frames = Array.from({ length: N }, (_, i) => encode({ cmd: "publish", topic: `burst/${i}`, qos: 0, payload: Buffer.alloc(190, 0x61) }));
      pub.write(Buffer.concat(frames)); // ~128 KB in one write
      const got = { n: 0, last: "", topics: [] as string[] };
      await waitFor(() => (takePublishes(reader, got), got.n >= N || b.broker.messagesIn >= N), 10_000, "the burst to be routed");
      await Bun.sleep(300);
      takePublishes(reader, got);
      const dropped = b.broker.dropped - droppedBefore;
      expect({ received: got.n, dropped }).toEqual({ received: N, dropped: 0 });
      expect(got.topics).toEqual(Array.from({ length: N }, (_, i) => `burst/${i}`));
    },
    30_000,
  );
});
