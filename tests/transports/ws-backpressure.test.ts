/**
 * Backpressure over WebSocket, as over TCP (tests/e2e/backpressure.test.ts):
 * a WebSocket subscriber that never reads is bounded — the connection's
 * pending output stays near limits.maxPendingOutput and Bun holds at most one
 * batch more, its QoS 0 messages are dropped and counted — and it is dropped
 * after drainTimeoutMs; a WebSocket publisher held back by a full subscriber
 * queue stops being read (the socket is paused) and loses nothing.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Connection } from "../../lib/connection.ts";
import type { RunningBroker } from "../../lib/server.ts";
import type { WsTransport } from "../../lib/websocket.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { encode, RawClient } from "../helpers/raw.ts";
import { RawWsClient } from "../helpers/ws-raw.ts";

const MAX_PENDING = 65536;
const PAYLOAD = 96 * 1024;
const FLOOD_BYTES = 20 * 1024 * 1024;

let running: RunningBroker | null = null;
const sockets: { destroy(): void }[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await running?.stop();
  running = null;
});

async function broker(limits: Record<string, number>): Promise<{ b: RunningBroker; tcp: number; ws: number }> {
  running = await startTestBroker({
    limits,
    listeners: [
      { host: "127.0.0.1", port: 0 },
      { host: "127.0.0.1", port: 0, protocol: "ws" },
    ],
  });
  return { b: running, tcp: running.addresses[0]!.port, ws: running.addresses[1]!.port };
}

function connOf(b: RunningBroker, clientId: string): Connection {
  for (const c of b.broker.connections) if (c.clientId === clientId) return c;
  throw new Error(`no connection for ${clientId}`);
}

/** One QoS 0 message per broker read (see the TCP test: so the slow socket's buffers really fill). */
async function flood(b: RunningBroker, pub: RawClient, topic: string): Promise<number> {
  const one = encode({ cmd: "publish", topic, qos: 0, payload: Buffer.alloc(PAYLOAD, 0x42) });
  let sent = 0;
  while (sent * PAYLOAD < FLOOD_BYTES) {
    const target = b.broker.messagesIn + 1;
    if (!pub.socket.write(one)) await new Promise<void>((r) => pub.socket.once("drain", () => r()));
    sent++;
    await waitFor(() => b.broker.messagesIn >= target || pub.closed, 10_000, "the broker to read a flood message");
  }
  return sent;
}

describe("a WebSocket subscriber that never reads", () => {
  test(
    "is bounded: pending output near maxPendingOutput, at most one batch more inside Bun, QoS 0 drops counted, the others carry on",
    async () => {
      const { b, tcp, ws } = await broker({ maxPendingOutput: MAX_PENDING, drainTimeoutMs: 60_000 });
      const slow = await RawWsClient.connectedWs(ws, 4, { clientId: "ws-slow" });
      sockets.push(slow);
      slow.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "wbp/#", qos: 0 }] });
      await slow.nextOf("suback");
      const pub = await RawClient.connected(tcp, 4, { clientId: "wbp-pub" });
      sockets.push(pub);
      const conn = connOf(b, "ws-slow");
      const transport = conn.transport as WsTransport;
      slow.socket.pause(); // never reads again

      let maxOut = 0;
      let maxBun = 0;
      let sawWaiting = false;
      const t = setInterval(() => {
        maxOut = Math.max(maxOut, conn.out.len);
        maxBun = Math.max(maxBun, transport.bufferedAmount);
        if (conn.waitingDrain) sawWaiting = true;
      }, 1);
      const droppedBefore = b.broker.dropped;
      const sent = await flood(b, pub, "wbp/flood");
      clearInterval(t);

      expect(sawWaiting).toBe(true); // the broker did wait for a drain (send returned -1, then nothing was taken)
      expect(maxOut).toBeLessThanOrEqual(4 * MAX_PENDING);
      // Bun's own buffer holds the one message that was taken when the socket backed up.
      expect(maxBun).toBeLessThanOrEqual(4 * MAX_PENDING + PAYLOAD + 1024);
      const dropped = b.broker.dropped - droppedBefore;
      expect(dropped).toBeGreaterThan(sent / 2);
      // The publisher was never held back (QoS 0): it still works.
      pub.send({ cmd: "publish", topic: "wbp/end", qos: 1, messageId: 9, payload: Buffer.from("end") });
      expect((await pub.nextOf("puback", 10_000)).messageId).toBe(9);
      expect(conn.isClosed()).toBe(false);
    },
    60_000,
  );

  test(
    "is disconnected after drainTimeoutMs; the publisher and a reading WebSocket subscriber are untouched",
    async () => {
      const { b, tcp, ws } = await broker({ maxPendingOutput: MAX_PENDING, drainTimeoutMs: 500 });
      const slow = await RawWsClient.connectedWs(ws, 5, { clientId: "ws-slow2" });
      sockets.push(slow);
      slow.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "wbp2/#", qos: 0 }] });
      await slow.nextOf("suback");
      const good = await RawWsClient.connectedWs(ws, 5, { clientId: "ws-good2" });
      sockets.push(good);
      good.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "wbp2/after", qos: 1 }] });
      await good.nextOf("suback");
      const pub = await RawClient.connected(tcp, 4, { clientId: "wbp2-pub" });
      sockets.push(pub);
      const conn = connOf(b, "ws-slow2");
      slow.socket.pause();
      await flood(b, pub, "wbp2/flood");
      await waitFor(() => conn.waitingDrain || conn.isClosed(), 10_000, "the slow WebSocket to wait for a drain");
      await waitFor(() => conn.isClosed() && !b.broker.connections.has(conn), 10_000, "the slow WebSocket to be dropped");
      expect(b.broker.sessions.has("ws-slow2")).toBe(false);
      pub.send({ cmd: "publish", topic: "wbp2/after", qos: 1, messageId: 3, payload: Buffer.from("still here") });
      expect((await pub.nextOf("puback", 10_000)).messageId).toBe(3);
      const p = await good.nextOf("publish", 5000);
      expect(p.payload.toString()).toBe("still here");
    },
    60_000,
  );
});

describe("a WebSocket publisher held back by a full subscriber queue", () => {
  test(
    "stops being read (the WebSocket is paused) and loses nothing once the subscriber catches up",
    async () => {
      const { b, tcp, ws } = await broker({ maxQueuedMessages: 20, maxInflight: 5, maxPublisherStallMs: 60_000 });
      // The subscriber reads but does not acknowledge: its window (5) and queue (20) fill up.
      const sub = await RawClient.connected(tcp, 4, { clientId: "held-sub" });
      sockets.push(sub);
      sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "held/#", qos: 1 }] });
      await sub.nextOf("suback");
      const pub = await RawWsClient.connectedWs(ws, 4, { clientId: "held-pub" });
      sockets.push(pub);
      const N = 200;
      const frames = Array.from({ length: N }, (_, i) => encode({ cmd: "publish", topic: "held/x", qos: 1, messageId: i + 1, payload: Buffer.from(String(i)) }));
      for (const f of frames) pub.write(f);
      const pubConn = connOf(b, "held-pub");
      await waitFor(() => pubConn.paused, 5000, "the publisher to be held back");
      expect((pubConn.transport as WsTransport).readingPaused).toBe(true);
      const acked = () => pub.pending().filter((p) => p.cmd === "puback").length;
      let pubacks = acked();
      expect(pubacks).toBeLessThan(N);
      // The subscriber now acknowledges everything it gets: every message arrives, in order.
      const got: number[] = [];
      await waitFor(
        () => {
          for (const p of sub.pending()) {
            if (p.cmd !== "publish") continue;
            got.push(Number(p.payload.toString()));
            sub.send({ cmd: "puback", messageId: p.messageId });
          }
          pubacks += acked();
          return got.length >= N && pubacks === N;
        },
        15_000,
        "every message delivered and acknowledged",
      );
      expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(pubConn.paused).toBe(false);
    },
    30_000,
  );
});
