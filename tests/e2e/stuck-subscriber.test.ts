/**
 * The queue policy over real loopback sockets (lib/outbox.ts): a subscriber
 * that makes no progress can hold a publisher back for at most
 * limits.maxPublisherStallMs; after that its overflow is dropped and counted,
 * the publisher resumes and is not held again while the subscriber stays
 * stuck. A v5 publisher whose message every matching subscriber dropped gets
 * PUBACK 0x97 (Quota exceeded) instead of success. QoS 0 never holds a
 * publisher back.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Connection } from "../../lib/connection.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { RawClient, encode } from "../helpers/raw.ts";

const QUEUE = 50;

let running: RunningBroker | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await running?.stop();
  running = null;
});

async function broker(stallMs = 300): Promise<RunningBroker> {
  // drainTimeoutMs is far above the time the tests wait: whatever releases the
  // publisher, it is not the drain timeout disconnecting the subscriber.
  running = await startTestBroker({
    limits: { maxQueuedMessages: QUEUE, maxInflight: 10, maxPublisherStallMs: stallMs, drainTimeoutMs: 600_000 },
  });
  return running;
}

async function client(b: RunningBroker, version: 4 | 5, clientId: string): Promise<RawClient> {
  const c = await RawClient.connected(b.port, version, { clientId });
  clients.push(c);
  return c;
}

function connOf(b: RunningBroker, clientId: string): Connection {
  for (const c of b.broker.connections) if (c.clientId === clientId && !c.isClosed()) return c;
  throw new Error(`no connection for ${clientId}`);
}

/** A subscriber to `filter` at QoS 1 that never acknowledges and stops reading. */
async function stuckSubscriber(b: RunningBroker, clientId: string, filter: string): Promise<RawClient> {
  const s = await client(b, 4, clientId);
  s.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
  expect((await s.nextOf("suback")).granted).toEqual([1]);
  s.socket.pause();
  return s;
}

/** Publish `n` QoS 1 messages back to back (one write), return the PUBACKs as they come. */
async function publishAll(pub: RawClient, topic: string, n: number, ms: number): Promise<{ messageId: number; reasonCode?: number }[]> {
  const frames: Buffer[] = [];
  for (let i = 1; i <= n; i++) frames.push(encode({ cmd: "publish", topic, qos: 1, messageId: i, payload: Buffer.from(`m${i}`) }, pub.version));
  pub.write(Buffer.concat(frames));
  const acks: { messageId: number; reasonCode?: number }[] = [];
  while (acks.length < n) acks.push((await pub.nextOf("puback", ms)) as { messageId: number; reasonCode?: number });
  return acks;
}

describe("a subscriber that never acknowledges (limits.maxPublisherStallMs)", () => {
  test("holds the publisher back once, for about the stall bound: every PUBLISH is then acknowledged, the overflow dropped and counted, the subscriber still connected", async () => {
    const b = await broker(300);
    const stuck = await stuckSubscriber(b, "stuck-1", "stall/#");
    const pub = await client(b, 4, "pub-1");
    const dropsBefore = b.broker.drops.queueFull;
    // 10 in flight + 50 queued fill the subscriber; the 61st message holds the publisher back.
    // Without the bound it would wait for the drain timeout (10 min here): the 10 s wait fails.
    const acks = await publishAll(pub, "stall/a", 400, 10_000);
    expect(acks.map((a) => a.messageId)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1)); // in order [MQTT-4.6.0-2]
    expect(b.broker.stats().stuckSubscribers).toBe(1); // held back once, not once per overflow
    const dropped = b.broker.drops.queueFull - dropsBefore;
    expect(dropped).toBeGreaterThan(400 - 10 - 2 * QUEUE - 1);
    expect(dropped).toBeLessThanOrEqual(400 - 10 - QUEUE);
    expect(connOf(b, "stuck-1").isClosed()).toBe(false);
    expect(stuck.closed).toBe(false);
    expect(connOf(b, "pub-1").paused).toBe(false);
  }, 20_000);

  test("a v5 publisher gets PUBACK 0x97 (Quota exceeded) for messages every matching subscriber dropped, 0x00 before", async () => {
    const b = await broker(300);
    await stuckSubscriber(b, "stuck-2", "stall5/#");
    const pub = await client(b, 5, "pub-2");
    const acks = await publishAll(pub, "stall5/a", 300, 10_000);
    const codes = acks.map((a) => a.reasonCode ?? 0);
    const firstQuota = codes.indexOf(0x97);
    expect(firstQuota).toBeGreaterThanOrEqual(10 + QUEUE); // the window and the queue took the first ones
    expect(codes.slice(0, firstQuota).every((c) => c === 0)).toBe(true);
    expect(codes.slice(firstQuota).every((c) => c === 0x97)).toBe(true);
  }, 20_000);

  test("a second, reading subscriber keeps the publisher's acks successful: 0x97 only when every subscriber dropped the message", async () => {
    const b = await broker(300);
    await stuckSubscriber(b, "stuck-3", "both/#");
    const good = await client(b, 4, "good-3");
    good.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "both/#", qos: 0 }] });
    await good.nextOf("suback");
    const pub = await client(b, 5, "pub-3");
    const acks = await publishAll(pub, "both/a", 200, 10_000);
    expect(acks.every((a) => (a.reasonCode ?? 0) === 0)).toBe(true);
    expect(b.broker.drops.queueFull).toBeGreaterThan(0);
  }, 20_000);

  test("once it makes progress again (reads and acknowledges) it gets messages again and can hold publishers back again", async () => {
    const b = await broker(300);
    const stuck = await stuckSubscriber(b, "stuck-4", "back/#");
    const pub = await client(b, 4, "pub-4");
    await publishAll(pub, "back/a", 200, 10_000);
    expect(b.broker.stats().stuckSubscribers).toBe(1);
    // It starts reading and acknowledging everything it got.
    stuck.socket.resume();
    const seen = new Set<string>();
    const ack = setInterval(() => {
      for (const p of stuck.pending()) {
        if (p.cmd !== "publish") continue;
        seen.add(p.payload.toString());
        stuck.send({ cmd: "puback", messageId: p.messageId });
      }
    }, 5);
    try {
      await waitFor(() => b.broker.sessions.get("stuck-4")!.queue.length === 0 && !b.broker.sessions.get("stuck-4")!.stuck, 10_000, "the queue to drain");
      pub.send({ cmd: "publish", topic: "back/after", qos: 1, messageId: 999, payload: Buffer.from("after") });
      await pub.nextOf("puback", 5000);
      await waitFor(() => seen.has("after"), 5000, "the message after recovery");
    } finally {
      clearInterval(ack);
    }
  }, 20_000);
});

describe("messages with no publisher to hold back", () => {
  test("a v5 client subscribed to its own topic that never acknowledges: its queue takes twice the bound, then its own PUBLISHes get 0x97 and the drops are counted", async () => {
    const b = await broker(300);
    const self = await client(b, 5, "self-1");
    self.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "self/#", qos: 1 }] });
    await self.nextOf("suback");
    const before = b.broker.drops.queueFull;
    const n = 10 + 2 * QUEUE + 40;
    const frames: Buffer[] = [];
    for (let i = 1; i <= n; i++) frames.push(encode({ cmd: "publish", topic: "self/x", qos: 1, messageId: i, payload: Buffer.from("s") }, 5));
    self.write(Buffer.concat(frames));
    const acks: { reasonCode?: number }[] = [];
    while (acks.length < n) acks.push((await self.nextOf("puback", 5000)) as { reasonCode?: number });
    const quota = acks.filter((a) => a.reasonCode === 0x97).length;
    expect(quota).toBe(40);
    expect(b.broker.drops.queueFull - before).toBe(40);
    expect(b.broker.sessions.get("self-1")!.queue.length).toBe(2 * QUEUE);
  });
});

describe("QoS 0 never holds a publisher back", () => {
  test("a QoS 0 flood to a subscriber that never reads: the publisher is never paused, every message is read", async () => {
    const b = await broker(300);
    await stuckSubscriber(b, "stuck-q0", "q0/#");
    const pub = await client(b, 4, "pub-q0");
    const pubConn = connOf(b, "pub-q0");
    let paused = false;
    const watch = setInterval(() => (paused ||= pubConn.paused), 1);
    const before = b.broker.messagesIn;
    const one = encode({ cmd: "publish", topic: "q0/x", qos: 0, payload: Buffer.alloc(1024, 1) });
    try {
      for (let i = 0; i < 20; i++) {
        pub.write(Buffer.concat(Array.from({ length: 100 }, () => one)));
        await Bun.sleep(2);
      }
      await waitFor(() => b.broker.messagesIn - before === 2000, 10_000, "all 2000 QoS 0 messages read");
    } finally {
      clearInterval(watch);
    }
    expect(paused).toBe(false);
  });
});
