/**
 * Rate and connection limits (lib/rate-limit.ts, lib/admission.ts) over real
 * sockets: limits.publishRate / publishBytesRate hold a client back instead
 * of losing its messages, and keep alive does not end it meanwhile;
 * limits.connectRate closes sockets from one source address at accept;
 * limits.maxUnauthenticated (and the listener's own) bound the sockets that
 * have not finished CONNECT, each counted once. Loopback gives several
 * source addresses (127.0.0.2 ...), so a flood from one is seen not to harm
 * another. No timing assertion: where time matters the test checks a lower
 * bound (fewer messages than the rate allows cannot be a flake).
 */
import { afterEach, describe, expect, test } from "bun:test";
import * as net from "node:net";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { RawClient } from "../helpers/raw.ts";
import { uid } from "../helpers/pool.ts";
import type { RunningBroker } from "../../lib/server.ts";

const brokers: RunningBroker[] = [];
const clients: TestClient[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) await c.end(true);
  for (const b of brokers.splice(0)) await b.stop();
});

async function broker(overrides: Parameters<typeof startTestBroker>[0]): Promise<RunningBroker> {
  const b = await startTestBroker(overrides);
  brokers.push(b);
  return b;
}

async function client(port: number, opts: Record<string, unknown> = {}): Promise<TestClient> {
  const c = await connectClient(port, { protocolVersion: 5, clientId: uid("lim"), ...opts });
  clients.push(c);
  return c;
}

/** A TCP socket from `from` (a loopback address) that sends nothing; resolves when it is closed or after `ms`. */
function idleSocket(port: number, from = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress: from }, () => resolve(s));
    s.on("error", () => {});
    s.once("error", reject);
    sockets.push(s);
  });
}

/** Whether the broker closed `s` within `ms` (a closed-at-accept socket ends at once). */
function closedWithin(s: net.Socket, ms: number): Promise<boolean> {
  if (s.destroyed || s.readyState === "closed") return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

describe("publish rate (limits.publishRate, publishBytesRate)", () => {
  test("a client over publishRate is held back, not cut: every QoS 1 message arrives, in order, later", async () => {
    const b = await broker({ limits: { publishRate: 20 } });
    const sub = await client(b.port);
    await sub.client.subscribeAsync("rate/#", { qos: 1 });
    const pub = await client(b.port);
    const n = 80;
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) acks.push(pub.client.publishAsync("rate/x", String(i), { qos: 1 }));
    await Bun.sleep(500);
    // 20/s with one second of burst: in 0.5 s at most ~30 can have been read; 80 were sent at once.
    expect(sub.messages.length).toBeLessThan(40);
    expect(b.broker.stats().throttled).toBeGreaterThan(0);
    await Promise.all(acks);
    await sub.waitMessages(n, 10_000);
    expect(sub.messages.map((m) => m.payload.toString())).toEqual(Array.from({ length: n }, (_, i) => String(i)));
  }, 20_000);

  test("a throttled client is not disconnected by keep alive: it could not be read, so it could not ping", async () => {
    const b = await broker({ limits: { publishRate: 5 } });
    const pub = await client(b.port, { keepalive: 1 });
    let closed = false;
    pub.client.on("close", () => {
      closed = true;
    });
    // 30 messages at 5/s: reading waits about 5 s, longer than 1.5 x keep alive (the broker's grace).
    const acks = Array.from({ length: 30 }, (_, i) => pub.client.publishAsync("ka/x", String(i), { qos: 1 }));
    await Promise.all(acks);
    expect(closed).toBe(false);
    expect(b.broker.stats().throttled).toBeGreaterThan(0);
  }, 20_000);

  test("publishBytesRate counts the whole packet: a large burst is held back, nothing is lost", async () => {
    const b = await broker({ limits: { publishBytesRate: 64 * 1024 } });
    const sub = await client(b.port);
    await sub.client.subscribeAsync("bytes/#", { qos: 1 });
    const pub = await client(b.port);
    const payload = Buffer.alloc(16 * 1024, 7);
    const n = 24; // 384 KiB at 64 KiB/s
    const acks = Array.from({ length: n }, () => pub.client.publishAsync("bytes/x", payload, { qos: 1 }));
    await Bun.sleep(500);
    expect(sub.messages.length).toBeLessThan(n);
    await Promise.all(acks);
    await sub.waitMessages(n, 15_000);
    expect(sub.messages.every((m) => m.payload.equals(payload))).toBe(true);
  }, 30_000);

  test("one throttled client does not slow another: an unthrottled publisher's messages pass while it waits", async () => {
    const b = await broker({ limits: { publishRate: 10 } });
    const sub = await client(b.port);
    await sub.client.subscribeAsync("iso/#", { qos: 1 });
    const slow = await client(b.port);
    const fast = await client(b.port);
    const slowAcks = Array.from({ length: 40 }, (_, i) => slow.client.publishAsync("iso/slow", String(i), { qos: 1 }));
    await Bun.sleep(50);
    // The other client stays within its own budget (10 per second): it is never held back.
    for (let i = 0; i < 5; i++) await fast.client.publishAsync("iso/fast", String(i), { qos: 1 });
    const fastSeen = sub.messages.filter((m) => m.topic === "iso/fast").length;
    const slowSeen = sub.messages.filter((m) => m.topic === "iso/slow").length;
    expect(fastSeen).toBe(5);
    expect(slowSeen).toBeLessThan(40);
    await Promise.all(slowAcks);
  }, 20_000);

  test("off by default: no client is throttled", async () => {
    const b = await broker({});
    const pub = await client(b.port);
    await Promise.all(Array.from({ length: 200 }, (_, i) => pub.client.publishAsync("off/x", String(i), { qos: 1 })));
    expect(b.broker.stats().throttled).toBe(0);
  });
});

describe("connect rate per source address (limits.connectRate)", () => {
  test("beyond the rate, sockets from that address close at accept and are counted; other addresses connect", async () => {
    const b = await broker({ limits: { connectRate: 5 } });
    const flood = await Promise.all(Array.from({ length: 15 }, () => idleSocket(b.port, "127.0.0.2")));
    const closed = await Promise.all(flood.map((s) => closedWithin(s, 500)));
    // A bucket of one second: the first 5 are admitted (and wait for CONNECT), the rest are closed at once.
    expect(closed.filter((c) => c).length).toBeGreaterThanOrEqual(10);
    expect(b.broker.stats().refusedConnectRate).toBeGreaterThanOrEqual(10);
    // Another source address is not affected by the flood.
    const c = await client(b.port);
    expect(c.client.connected).toBe(true);
  });

  test("the budget refills: after a second the address may connect again", async () => {
    const b = await broker({ limits: { connectRate: 2 } });
    const first = await Promise.all(Array.from({ length: 4 }, () => idleSocket(b.port, "127.0.0.3")));
    expect((await Promise.all(first.map((s) => closedWithin(s, 300)))).filter((c) => c).length).toBe(2);
    await Bun.sleep(1100);
    const again = await RawClient.connected(b.port, 4, { clientId: uid("refill") });
    expect(again.closed).toBe(false);
    again.destroy();
  });
});

describe("unauthenticated sockets (limits.maxUnauthenticated, listeners[].maxUnauthenticated)", () => {
  test("sockets that have not finished CONNECT are bounded; beyond the bound, new ones close at accept", async () => {
    const b = await broker({ limits: { maxUnauthenticated: 3 } });
    const idle = await Promise.all(Array.from({ length: 3 }, () => idleSocket(b.port)));
    await waitFor(() => b.broker.stats().unauthenticated === 3, 2000, "3 unauthenticated sockets");
    const fourth = await idleSocket(b.port);
    expect(await closedWithin(fourth, 1000)).toBe(true);
    expect(b.broker.stats().refusedUnauthenticated).toBe(1);
    // One of them leaves: its place is free again.
    idle[0]!.destroy();
    await waitFor(() => b.broker.stats().unauthenticated === 2, 2000, "its place freed");
    const c = await client(b.port);
    expect(c.client.connected).toBe(true);
  });

  test("an authenticated connection no longer counts: counted once, from accept to CONNACK", async () => {
    const b = await broker({ limits: { maxUnauthenticated: 2 } });
    const live: TestClient[] = [];
    for (let i = 0; i < 5; i++) live.push(await client(b.port));
    expect(b.broker.stats().unauthenticated).toBe(0);
    expect(b.broker.stats().connections).toBe(5);
    // Closing authenticated ones does not make the count go below zero (counted exactly once).
    for (const c of live) await c.end(true);
    await waitFor(() => b.broker.stats().connections === 0, 2000, "closed");
    expect(b.broker.stats().unauthenticated).toBe(0);
    const idle = await Promise.all([idleSocket(b.port), idleSocket(b.port)]);
    await waitFor(() => b.broker.stats().unauthenticated === 2, 2000, "2 unauthenticated");
    expect(await closedWithin(await idleSocket(b.port), 1000)).toBe(true);
    for (const s of idle) s.destroy();
  });

  test("a refused CONNECT frees its place as well", async () => {
    const b = await broker({ limits: { maxUnauthenticated: 1 }, auth: { allowAnonymous: false, users: [{ username: "u", password: "p" }] } });
    for (let i = 0; i < 3; i++) {
      const r = await RawClient.connect(b.port, 5);
      r.send({ cmd: "connect", protocolVersion: 5, clientId: uid("bad"), username: "u", password: Buffer.from("wrong") });
      const ack = await r.next();
      expect(ack.reasonCode).toBe(0x86);
      await r.closedPromise;
      await waitFor(() => b.broker.stats().unauthenticated === 0, 2000, "its place freed");
    }
    expect(b.broker.stats().refusedUnauthenticated).toBe(0);
  });

  test("a listener's own bound is smaller than the broker's and applies to that listener only", async () => {
    const b = await broker({
      listeners: [
        { host: "127.0.0.1", port: 0, maxUnauthenticated: 1 },
        { host: "127.0.0.1", port: 0 },
      ],
    });
    const [l0, l1] = b.listeners;
    const a = await idleSocket(l0!.port);
    await waitFor(() => l0!.unauthenticated === 1, 2000, "one on listener 0");
    expect(await closedWithin(await idleSocket(l0!.port), 1000)).toBe(true);
    expect(l0!.refused).toBe(1);
    const other = await idleSocket(l1!.port);
    expect(await closedWithin(other, 300)).toBe(false);
    a.destroy();
  });
});
