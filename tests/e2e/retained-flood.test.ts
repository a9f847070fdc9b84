/**
 * Retained messages on subscribe over a large retained set (3.1.1
 * [MQTT-3.3.1-6], 5 [MQTT-3.3.1-9]): every matching retained message must
 * arrive, at QoS 1 too, sent across event-loop turns as the subscriber's
 * window allows (lib/retained-sender.ts) — never encoded all in one turn,
 * never pushed through the session queue and dropped there. The broker's
 * memory for it stays bounded, and other clients keep being served.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { RawClient, encode } from "../helpers/raw.ts";

const N = 200_000;

let b: RunningBroker;
const clients: RawClient[] = [];
beforeAll(async () => {
  b = await startTestBroker({ limits: { maxQueuedMessages: 1000, maxInflight: 256 } });
  // N retained QoS 1 messages, pipelined in large writes.
  const pub = await RawClient.connected(b.port, 4, { clientId: "rf-loader" });
  clients.push(pub);
  const BATCH = 5000;
  for (let i = 0; i < N; i += BATCH) {
    const frames: Buffer[] = [];
    for (let j = i; j < i + BATCH; j++) {
      frames.push(encode({ cmd: "publish", topic: `rf/${j % 100}/${j}`, qos: 1, retain: true, messageId: (j % 65535) + 1, payload: Buffer.from(`v${j}`) }));
    }
    pub.write(Buffer.concat(frames));
    await waitFor(() => b.broker.retainedCount >= i + BATCH, 20_000, "retained messages stored");
  }
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.destroy();
  await b.stop();
});

/** Read PUBLISHes as they come, acknowledge QoS 1, count distinct topics under rf/. */
function collector(c: RawClient) {
  const got = new Map<string, string>();
  const order: string[] = [];
  let publishes = 0;
  const t = setInterval(() => {
    for (const p of c.pending()) {
      if (p.cmd !== "publish") continue;
      publishes++;
      if (p.qos > 0) c.send({ cmd: "puback", messageId: p.messageId });
      got.set(p.topic, p.payload.toString());
      order.push(`${p.topic}=${p.payload.toString()}:${p.retain ? "R" : "L"}`);
    }
  }, 2);
  return { got, order, stop: () => clearInterval(t), publishes: () => publishes };
}

describe("a # subscription over 200,000 retained messages", () => {
  test("QoS 1: every retained message arrives once, with RETAIN 1; the session queue and the output buffer stay bounded; a control pair keeps working meanwhile", async () => {
    const sub = await RawClient.connected(b.port, 4, { clientId: "rf-sub" });
    clients.push(sub);
    const col = collector(sub);
    const conn = [...b.broker.connections].find((c) => c.clientId === "rf-sub")!;
    let maxQueue = 0;
    let maxOut = 0;
    const watch = setInterval(() => {
      const s = b.broker.sessions.get("rf-sub");
      if (s && s.queue.length > maxQueue) maxQueue = s.queue.length;
      if (conn.out.buf.length > maxOut) maxOut = conn.out.buf.length;
    }, 1);
    // A control pair on a $ topic (outside `#`, [MQTT-4.7.2-1]) round-trips while the flood runs.
    const ctlSub = await RawClient.connected(b.port, 4, { clientId: "rf-ctl-sub" });
    const ctlPub = await RawClient.connected(b.port, 4, { clientId: "rf-ctl-pub" });
    clients.push(ctlSub, ctlPub);
    ctlSub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "$ctl/x", qos: 1 }] });
    await ctlSub.nextOf("suback");

    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "#", qos: 1 }] });
    let roundTrips = 0;
    try {
      while (col.got.size < N) {
        ctlPub.send({ cmd: "publish", topic: "$ctl/x", qos: 1, messageId: 1 + (roundTrips % 60000), payload: Buffer.from("ping") });
        const p = await ctlSub.nextOf("publish", 10_000);
        ctlSub.send({ cmd: "puback", messageId: p.messageId });
        await ctlPub.nextOf("puback", 10_000);
        roundTrips++;
        await Bun.sleep(5);
        if (roundTrips > 20_000) break;
      }
      await waitFor(() => col.got.size >= N, 60_000, "every retained message");
    } finally {
      clearInterval(watch);
      col.stop();
    }
    expect(col.got.size).toBe(N);
    expect(col.publishes()).toBe(N); // once each
    expect(col.got.get("rf/7/12307")).toBe("v12307");
    expect(col.order.every((o) => o.endsWith(":R"))).toBe(true);
    expect(roundTrips).toBeGreaterThan(0); // the control pair was served during the flood
    expect(maxQueue).toBeLessThanOrEqual(1000); // paced by the window, not piled into the queue
    expect(maxOut).toBeLessThanOrEqual(16 * 1024 * 1024); // never the whole set encoded at once (~6 MB here)
    expect(b.broker.dropped).toBe(0);
    expect(b.broker.retainedSender.jobs).toBe(0);
  }, 90_000);

  test("a live message on a topic whose retained message has not gone out yet: the retained one arrives first, the live one after (never an older value after a newer one)", async () => {
    const sub = await RawClient.connected(b.port, 4, { clientId: "rf-order" });
    clients.push(sub);
    const pub = await RawClient.connected(b.port, 4, { clientId: "rf-live" });
    clients.push(pub);
    // Do not read yet: the window fills and the job waits with most of the set unsent.
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rf/#", qos: 1 }] });
    await waitFor(() => b.broker.sessions.get("rf-order")?.retainedJobs !== null, 5000, "the retained job to start");
    // Live (not retained) updates of topics all over the set.
    const live = [3, 99_999, 150_001, N - 1].map((j) => `rf/${j % 100}/${j}`);
    for (const [i, t] of live.entries()) pub.send({ cmd: "publish", topic: t, qos: 1, messageId: i + 1, payload: Buffer.from("LIVE") });
    for (let i = 0; i < live.length; i++) await pub.nextOf("puback");
    const col = collector(sub);
    try {
      await waitFor(() => col.got.size >= N, 60_000, "every retained message");
      await Bun.sleep(100);
    } finally {
      col.stop();
    }
    for (const t of live) {
      const seen = col.order.filter((o) => o.startsWith(`${t}=`));
      const j = t.split("/")[2];
      // The retained value first (RETAIN 1), then the live one; the retained one never again after it.
      expect({ t, seen }).toEqual({ t, seen: [`${t}=v${j}:R`, `${t}=LIVE:L`] });
    }
    expect(col.publishes()).toBe(N + live.length);
  }, 90_000);
});
