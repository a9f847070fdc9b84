/**
 * The JSON API under /api/v1, used with fetch against a real broker and
 * real MQTT clients (MQTT.js and raw mqtt-packet bytes): clients (fields,
 * paging, search, in-flight and queued counts), one client, kicking one (v5
 * DISCONNECT 0x98 "administrative action", its will published, a persistent
 * session kept), sessions with offline ones (and ending one), subscriptions,
 * retained messages (paged, filtered, whole payload by topic, binary as
 * base64, delete), publish (validation with a reason naming the field,
 * delivery, retain, base64, expiry, 415/413), the event and watch streams
 * (SSE), the rate history, and the answer for wrong methods and paths.
 * Publish under "ack" durability is answered after the commit: a retained
 * message published through the API survives a SIGKILL of the broker.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { liveHub } from "../../lib/http/live.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { portOf, startTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { BrokerProcess } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";

let rb: RunningBroker;
let base: string;
let port: number;
const open: (TestClient | RawClient)[] = [];

beforeAll(async () => {
  rb = await startTestBroker({
    listeners: [{ host: "127.0.0.1", port: 0 }, { protocol: "ws", host: "127.0.0.1", port: 0 }, { protocol: "http", host: "127.0.0.1", port: 0 }],
    limits: { maxPacketSize: 64 * 1024 },
    sys: { interval: 0 },
  });
  port = portOf(rb, "mqtt");
  base = `http://127.0.0.1:${portOf(rb, "http")}/api/v1`;
});
afterAll(async () => {
  for (const c of open) "end" in c ? await c.end(true) : c.destroy();
  await rb.stop();
});

async function get(path: string): Promise<{ status: number; body: any }> {
  const r = await fetch(base + path);
  return { status: r.status, body: await r.json() };
}

async function send(method: string, path: string, body?: unknown, type = "application/json"): Promise<{ status: number; body: any }> {
  const r = await fetch(base + path, { method, headers: body === undefined ? {} : { "Content-Type": type }, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

async function raw(version: 4 | 5, opts: Record<string, unknown>): Promise<RawClient> {
  const c = await RawClient.connected(port, version, opts);
  open.push(c);
  return c;
}

/** An SSE reader over fetch: `next(event)` resolves with the data of the next event of that name. */
async function sse(path: string): Promise<{ next: (event: string, ms?: number) => Promise<any>; close: () => void; status: number }> {
  const ctl = new AbortController();
  const r = await fetch(base + path, { signal: ctl.signal });
  if (r.status !== 200) return { status: r.status, next: async () => Promise.reject(new Error("no stream")), close: () => {} };
  expect(r.headers.get("content-type")).toStartWith("text/event-stream");
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const queue: { event: string; data: any }[] = [];
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev !== undefined && data !== undefined) queue.push({ event: ev, data: JSON.parse(data) });
      }
    }
  })();
  void pump;
  return {
    status: 200,
    close: () => ctl.abort(),
    async next(event, ms = 5000) {
      const end = Date.now() + ms;
      for (;;) {
        const k = queue.findIndex((q) => q.event === event);
        if (k >= 0) return queue.splice(k, 1)[0]!.data;
        if (Date.now() > end) throw new Error(`no ${event} event within ${ms} ms`);
        await Bun.sleep(10);
      }
    },
  };
}

describe("index, methods and paths", () => {
  test("GET /api/v1 lists the endpoints", async () => {
    const { status, body } = await get("");
    expect(status).toBe(200);
    for (const e of ["GET /api/v1/clients", "DELETE /api/v1/clients/:id", "GET /api/v1/sessions", "GET /api/v1/subscriptions", "GET /api/v1/retained", "DELETE /api/v1/retained", "POST /api/v1/publish"]) expect(body.endpoints).toContain(e);
  });

  test("a wrong method gets 405 with Allow; an unknown path 404; both as JSON errors", async () => {
    const r = await fetch(`${base}/clients`, { method: "PUT" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET");
    expect((await r.json()).error).toContain("GET");
    const { status, body } = await get("/nope");
    expect(status).toBe(404);
    expect(typeof body.error).toBe("string");
  });
});

describe("clients", () => {
  test("a connected client with id, user name, address, listener protocol, version, keep alive, connected since", async () => {
    const before = Date.now();
    const c = await connectClient(port, { clientId: "api-alice", username: "alice", protocolVersion: 5, keepalive: 42 });
    open.push(c);
    const { status, body } = await get("/clients/api-alice");
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: "api-alice", username: "alice", protocol: "mqtt", version: 5, keepalive: 42, inflight: 0, queued: 0, subscriptions: 0 });
    expect(body.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(body.address).toBe(`127.0.0.1:${(c.client as any).stream.localPort}`);
    expect(Date.parse(body.connectedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(body.listener).toBe(`mqtt://127.0.0.1:${port}`);
  });

  test("a WebSocket client shows protocol ws; a 3.1.1 client version 4", async () => {
    const ws = await connectClientWs("api-ws");
    const list = (await get("/clients?q=api-ws")).body;
    expect(list.items).toHaveLength(1);
    expect(list.items[0]).toMatchObject({ id: "api-ws", protocol: "ws", version: 4 });
    await ws.end(true);
  });

  test("paging: total, offset and limit; ?q= searches id and user name; bad paging is 400", async () => {
    for (let i = 0; i < 5; i++) await raw(4, { clientId: `api-page-${i}`, username: i === 3 ? "PAGER" : undefined });
    const all = (await get("/clients?q=api-page-")).body;
    expect(all.total).toBe(5);
    expect(all.items.map((x: any) => x.id)).toEqual([0, 1, 2, 3, 4].map((i) => `api-page-${i}`));
    const page = (await get("/clients?q=api-page-&offset=2&limit=2")).body;
    expect(page).toMatchObject({ total: 5, offset: 2, limit: 2 });
    expect(page.items.map((x: any) => x.id)).toEqual(["api-page-2", "api-page-3"]);
    expect((await get("/clients?q=pager")).body.items.map((x: any) => x.id)).toEqual(["api-page-3"]);
    for (const q of ["limit=0", "limit=1001", "offset=-1", "limit=abc"]) {
      const r = await get(`/clients?${q}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(/^(limit|offset):/);
    }
  });

  test("in-flight and queued: a v5 subscriber with Receive Maximum 1 that does not acknowledge", async () => {
    const sub = await raw(5, { clientId: "api-slow", properties: { receiveMaximum: 1 } });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "api/slow", qos: 1 }] });
    await sub.nextOf("suback");
    for (let i = 0; i < 3; i++) expect((await send("POST", "/publish", { topic: "api/slow", payload: `m${i}`, qos: 1 })).status).toBe(200);
    await waitFor(() => (rb.broker.sessions.get("api-slow")?.inflight.count ?? 0) === 1, 3000, "one in flight");
    const body = (await get("/clients/api-slow")).body;
    expect(body).toMatchObject({ inflight: 1, queued: 2, subscriptions: 1 });
    expect(body.subscriptionList).toEqual([{ clientId: "api-slow", filter: "api/slow", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: null, group: null }]);
  });

  test("an unknown or disconnected client is 404", async () => {
    const r = await get("/clients/nobody-here");
    expect(r.status).toBe(404);
    expect(r.body.error).toContain("nobody-here");
  });

  test("DELETE kicks a v5 client with DISCONNECT 0x98 (administrative action); its will is published", async () => {
    const watcher = await connectClient(port, { clientId: "api-will-watch" });
    open.push(watcher);
    await watcher.client.subscribeAsync("api/will", { qos: 1 });
    const c = await raw(5, { clientId: "api-kick-5", will: { topic: "api/will", payload: Buffer.from("kicked"), qos: 1, retain: false } });
    const r = await send("DELETE", "/clients/api-kick-5");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ kicked: "api-kick-5", sessionKept: false });
    const d = await c.nextOf("disconnect", 3000);
    expect(d.reasonCode).toBe(0x98);
    expect(await c.waitClose(3000)).toBe(true);
    await watcher.waitMessages(1, 3000);
    expect(watcher.messages[0]!.payload.toString()).toBe("kicked");
    expect((await get("/clients/api-kick-5")).status).toBe(404);
  });

  test("DELETE kicks a 3.1.1 client by closing its socket; a persistent session stays, offline", async () => {
    const c = await raw(4, { clientId: "api-kick-4", clean: false });
    const r = await send("DELETE", "/clients/api-kick-4");
    expect(r.body).toEqual({ kicked: "api-kick-4", sessionKept: true });
    expect(await c.waitClose(3000)).toBe(true);
    expect(c.pending()).toEqual([]); // 3.1.1 has no server DISCONNECT
    const s = await get("/sessions/api-kick-4");
    expect(s.body).toMatchObject({ id: "api-kick-4", online: false, persistent: true });
    expect((await send("DELETE", "/clients/api-kick-4")).status).toBe(404);
  });
});

async function connectClientWs(clientId: string): Promise<TestClient> {
  const mqtt = (await import("mqtt")).default;
  const { wrap } = await import("../helpers/clients.ts");
  const client = mqtt.connect(`ws://127.0.0.1:${portOf(rb, "ws")}/mqtt`, { clientId, reconnectPeriod: 0 });
  await new Promise<void>((res, rej) => {
    client.once("connect", () => res());
    client.once("error", rej);
  });
  return wrap(client);
}

describe("sessions and subscriptions", () => {
  test("sessions include offline ones, with their expiry; ?state= filters; one session 404 when unknown", async () => {
    const c = await raw(5, { clientId: "api-sess", clean: false, properties: { sessionExpiryInterval: 3600 } });
    c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "api/sess/#", qos: 2, nl: true }] });
    await c.nextOf("suback");
    c.send({ cmd: "disconnect", reasonCode: 0 });
    await c.waitClose();
    await waitFor(() => rb.broker.sessions.get("api-sess")?.conn === null, 2000, "offline");
    const one = (await get("/sessions/api-sess")).body;
    expect(one).toMatchObject({ id: "api-sess", online: false, persistent: true, expiryInterval: 3600, subscriptions: 1, version: 5 });
    const left = Date.parse(one.expiresAt) - Date.now();
    expect(left).toBeGreaterThan(3500_000);
    expect(left).toBeLessThanOrEqual(3600_000);
    expect(one.subscriptionList[0]).toMatchObject({ filter: "api/sess/#", qos: 2, noLocal: true });
    const offline = (await get("/sessions?state=offline&limit=1000")).body.items.map((s: any) => s.id);
    expect(offline).toContain("api-sess");
    expect(offline).not.toContain("api-alice");
    const online = (await get("/sessions?state=online&limit=1000")).body.items.map((s: any) => s.id);
    expect(online).toContain("api-alice");
    expect(online).not.toContain("api-sess");
    expect((await get("/sessions?state=asleep")).status).toBe(400);
    expect((await get("/sessions/none-such")).status).toBe(404);
  });

  test("subscriptions: every session's, ?client= one session's, ?q= by filter; shared groups named", async () => {
    const c = await raw(5, { clientId: "api-subs" });
    c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "$share/g1/api/shared/+", qos: 1 }, { topic: "api/plain", qos: 0 }] });
    await c.nextOf("suback");
    const mine = (await get("/subscriptions?client=api-subs")).body;
    expect(mine.total).toBe(2);
    const byFilter = Object.fromEntries(mine.items.map((s: any) => [s.filter, s]));
    expect(byFilter["$share/g1/api/shared/+"]).toMatchObject({ clientId: "api-subs", qos: 1, group: "g1" });
    expect(byFilter["api/plain"]).toMatchObject({ clientId: "api-subs", qos: 0, group: null });
    const all = (await get("/subscriptions?q=api/&limit=1000")).body.items.map((s: any) => `${s.clientId} ${s.filter}`);
    expect(all).toContain("api-sess api/sess/#"); // an offline session's subscription too
    expect(all).toContain("api-subs api/plain");
  });

  test("DELETE a session ends it: an online client is closed first (v5: 0x98), then its subscriptions are gone", async () => {
    const c = await raw(5, { clientId: "api-end", clean: false, properties: { sessionExpiryInterval: 600 } });
    c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "api/end", qos: 1 }] });
    await c.nextOf("suback");
    expect((await send("DELETE", "/sessions/api-end")).body).toEqual({ ended: "api-end" });
    expect((await c.nextOf("disconnect", 3000)).reasonCode).toBe(0x98);
    expect(rb.broker.sessions.has("api-end")).toBe(false);
    expect((await get("/subscriptions?client=api-end")).body.total).toBe(0);
    // And an offline one.
    expect((await send("DELETE", "/sessions/api-sess")).status).toBe(200);
    expect((await get("/sessions/api-sess")).status).toBe(404);
  });
});

describe("retained messages", () => {
  beforeAll(async () => {
    const pub = await connectClient(port, { clientId: "api-retainer" });
    for (const t of ["ret/a", "ret/b/1", "ret/b/2", "ret/c", "other/x"]) await pub.client.publishAsync(t, `value of ${t}`, { qos: 1, retain: true });
    await pub.client.publishAsync("ret/bin", Buffer.from([0xff, 0x00, 0xfe]), { qos: 0, retain: true });
    await pub.client.publishAsync("ret/big", "x".repeat(5000), { qos: 0, retain: true });
    await pub.end();
  });

  test("paged and filtered by a topic filter, sorted by topic", async () => {
    const r = (await get("/retained?filter=ret/%23")).body;
    expect(r.filter).toBe("ret/#");
    expect(r.total).toBe(6);
    expect(r.items.map((m: any) => m.topic)).toEqual(["ret/a", "ret/b/1", "ret/b/2", "ret/big", "ret/bin", "ret/c"].sort());
    expect(r.items.find((m: any) => m.topic === "ret/a")).toEqual({ topic: "ret/a", qos: 1, retain: true, expiresAt: null, payload: "value of ret/a", encoding: "utf8", size: 14, truncated: false });
    const p = (await get("/retained?filter=ret/b/%2B&limit=1&offset=1")).body;
    expect(p).toMatchObject({ total: 2, offset: 1, limit: 1 });
    expect(p.items.map((m: any) => m.topic)).toEqual(["ret/b/2"]);
  });

  test("a binary payload comes as base64; a long one is cut in lists and whole by ?topic=", async () => {
    const list = (await get("/retained?filter=ret/%2B")).body.items;
    expect(list.find((m: any) => m.topic === "ret/bin")).toMatchObject({ encoding: "base64", payload: Buffer.from([0xff, 0x00, 0xfe]).toString("base64"), size: 3 });
    const big = list.find((m: any) => m.topic === "ret/big");
    expect(big).toMatchObject({ size: 5000, truncated: true });
    expect(big.payload.length).toBe(1024);
    const whole = (await get("/retained?topic=ret/big")).body;
    expect(whole).toMatchObject({ topic: "ret/big", size: 5000, truncated: false });
    expect(whole.payload).toBe("x".repeat(5000));
    expect((await get("/retained?topic=ret/none")).status).toBe(404);
  });

  test("an invalid filter is 400 (wildcards misplaced, shared subscription)", async () => {
    for (const f of ["ret/#/x", "a+", "$share/g/ret/#", ""]) {
      const r = await get(`/retained?filter=${encodeURIComponent(f)}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toStartWith("filter:");
    }
  });

  test("DELETE ?topic= removes it: a new subscriber no longer gets it; 404 when there is none; 400 without ?topic=", async () => {
    expect((await send("DELETE", "/retained?topic=ret/c")).body).toEqual({ deleted: "ret/c" });
    expect((await send("DELETE", "/retained?topic=ret/c")).status).toBe(404);
    expect((await send("DELETE", "/retained")).status).toBe(400);
    const sub = await connectClient(port, { clientId: "api-ret-check" });
    await sub.client.subscribeAsync("ret/+", { qos: 1 });
    await Bun.sleep(300);
    expect(sub.messages.map((m) => m.topic).sort()).toEqual(["ret/a", "ret/big", "ret/bin"]);
    await sub.end();
  });
});

describe("POST /api/v1/publish", () => {
  test("delivers to subscribers with topic, payload, QoS and retain; counted as a received message", async () => {
    const sub = await connectClient(port, { clientId: "api-pub-sub", protocolVersion: 5 });
    open.push(sub);
    await sub.client.subscribeAsync("api/pub/#", { qos: 2 });
    const inBefore = rb.broker.stats().messagesIn;
    const r = await send("POST", "/publish", { topic: "api/pub/1", payload: "from http", qos: 2 });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ topic: "api/pub/1", qos: 2, retain: false, size: 9, routed: "delivered" });
    await sub.waitMessages(1, 3000);
    expect(sub.messages[0]).toMatchObject({ topic: "api/pub/1", qos: 2, retain: false });
    expect(sub.messages[0]!.payload.toString()).toBe("from http");
    expect(rb.broker.stats().messagesIn).toBe(inBefore + 1);
    const b64 = await send("POST", "/publish", { topic: "api/pub/bin", payload: Buffer.from([1, 2, 3]).toString("base64"), encoding: "base64" });
    expect(b64.body.size).toBe(3);
    await sub.waitMessages(2, 3000);
    expect([...sub.messages[1]!.payload]).toEqual([1, 2, 3]);
  });

  test("retain: true keeps it; messageExpiryInterval reaches v5 subscribers as Message Expiry", async () => {
    await send("POST", "/publish", { topic: "api/kept", payload: "kept", retain: true, qos: 1, messageExpiryInterval: 300 });
    const r = (await get("/retained?topic=api/kept")).body;
    expect(r).toMatchObject({ topic: "api/kept", payload: "kept", qos: 1, retain: true });
    expect(Date.parse(r.expiresAt) - Date.now()).toBeGreaterThan(290_000);
    const sub = await connectClient(port, { clientId: "api-kept-sub", protocolVersion: 5 });
    await sub.client.subscribeAsync("api/kept", { qos: 1 });
    await sub.waitMessages(1, 3000);
    expect(sub.messages[0]!.retain).toBe(true);
    const mei = sub.messages[0]!.properties?.messageExpiryInterval as number;
    expect(mei).toBeGreaterThan(290);
    expect(mei).toBeLessThanOrEqual(300);
    await sub.end();
  });

  test("refused with a reason naming the field: wildcards, $ topics, bad QoS, unknown keys, bad base64, no topic", async () => {
    const cases: [unknown, RegExp][] = [
      [{ topic: "a/+/b" }, /^topic:/],
      [{ topic: "a/#" }, /^topic:/],
      [{ topic: "$SYS/broker/fake" }, /^topic:/],
      [{ topic: "" }, /^topic:/],
      [{ payload: "x" }, /^topic:/],
      [{ topic: "a", qos: 3 }, /^qos:/],
      [{ topic: "a", retain: "yes" }, /^retain:/],
      [{ topic: "a", colour: "red" }, /colour/],
      [{ topic: "a", payload: "not base64!", encoding: "base64" }, /^payload:/],
      [{ topic: "a", messageExpiryInterval: 0 }, /^messageExpiryInterval:/],
    ];
    for (const [body, re] of cases) {
      const r = await send("POST", "/publish", body);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(re);
    }
    const bad = await send("POST", "/publish", "{not json");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("JSON");
  });

  test("415 unless application/json; 413 over limits.maxPacketSize", async () => {
    expect((await send("POST", "/publish", "topic=a", "application/x-www-form-urlencoded")).status).toBe(415);
    expect((await send("POST", "/publish", JSON.stringify({ topic: "a" }), "text/plain")).status).toBe(415);
    const big = await send("POST", "/publish", { topic: "api/big", payload: "x".repeat(65 * 1024) });
    expect(big.status).toBe(413);
    expect(big.body.error).toContain("limits.maxPacketSize");
  });

  test("a cross-origin browser POST is refused (403)", async () => {
    const r = await fetch(`${base}/publish`, { method: "POST", headers: { "Content-Type": "application/json", Origin: "http://evil.example" }, body: JSON.stringify({ topic: "a" }) });
    expect(r.status).toBe(403);
  });
});

describe("streams and history", () => {
  test("GET /api/v1/events: hello with recent events and stats, then connect/disconnect events and stats each second", async () => {
    const s = await sse("/events");
    const hello = await s.next("hello");
    expect(typeof hello.version).toBe("string");
    expect(Array.isArray(hello.events)).toBe(true);
    expect(hello.stats.clients).toBe(rb.broker.stats().clients);
    const c = await RawClient.connected(port, 5, { clientId: "api-sse" });
    const ev = await s.next("event");
    expect(ev).toMatchObject({ type: "connected", client: "api-sse", version: 5, resumed: false });
    c.send({ cmd: "disconnect", reasonCode: 0x04 }); // Disconnect with Will Message
    const gone = await s.next("event");
    expect(gone).toMatchObject({ type: "disconnected", client: "api-sse" });
    const st = await s.next("stats", 3000);
    expect(typeof st.messagesIn).toBe("number");
    s.close();
    c.destroy();
  });

  test("GET /api/v1/watch?filter=: matching messages only; an invalid filter is 400", async () => {
    expect((await sse("/watch?filter=a/%23/b")).status).toBe(400);
    const s = await sse("/watch?filter=watch/%2B");
    expect(await s.next("watching")).toEqual({ filter: "watch/+" });
    await send("POST", "/publish", { topic: "watch/no/deeper", payload: "no" });
    await send("POST", "/publish", { topic: "watch/yes", payload: "yes", qos: 1 });
    const m = await s.next("message");
    expect(m).toMatchObject({ topic: "watch/yes", payload: "yes", qos: 1, encoding: "utf8" });
    s.close();
    // Once every stream is closed the broker stops tapping messages.
    await waitFor(() => rb.broker.tap === null, 3000, "tap off");
  });

  test("at most 64 streams are open at once: the next gets 503 with Retry-After; closing one makes room", async () => {
    const streams = [];
    for (let i = 0; i < 64; i++) streams.push(await sse(i % 2 === 0 ? "/events" : "/watch?filter=%23"));
    expect(streams.every((s) => s.status === 200)).toBe(true);
    const over = await fetch(`${base}/events`);
    expect(over.status).toBe(503);
    expect(over.headers.get("retry-after")).toBe("5");
    expect((await fetch(`${base}/watch?filter=a`)).status).toBe(503);
    streams.pop()!.close();
    await waitFor(() => !liveHub(rb.broker).full, 3000, "a stream closed");
    const again = await sse("/events");
    expect(again.status).toBe(200);
    again.close();
    for (const s of streams) s.close();
    await waitFor(() => rb.broker.tap === null, 3000, "every stream closed");
  });

  test("GET /api/v1/history: one sample a second with message and byte rates", async () => {
    await Bun.sleep(1100);
    const h = (await get("/history")).body;
    expect(h.seconds).toBe(900);
    expect(h.samples.length).toBeGreaterThan(0);
    const last = h.samples.at(-1);
    for (const k of ["t", "msgsIn", "msgsOut", "bytesIn", "bytesOut", "clients"]) expect(typeof last[k]).toBe("number");
    expect(h.samples.reduce((n: number, s: any) => n + s.msgsIn, 0)).toBeGreaterThan(0);
  });
});

describe("publish under ack durability", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "bunmq-api-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a retained QoS 1 message answered 200 survives a SIGKILL of the broker", async () => {
    const db = join(dir, "state.db");
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, JSON.stringify({ listeners: [{ port: 0 }, { protocol: "http", port: 0 }], persistence: { path: db, durability: "ack" }, sys: { interval: 0 } }));
    const p = BrokerProcess.start(["--config", cfg]);
    let httpPort = 0;
    try {
      await p.port();
      httpPort = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(p.stdout)![1]);
      const r = await fetch(`http://127.0.0.1:${httpPort}/api/v1/publish`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ topic: "durable/api", payload: "committed", qos: 1, retain: true }) });
      expect(r.status).toBe(200);
    } finally {
      await p.kill(); // SIGKILL right after the answer
    }
    const again = BrokerProcess.start(["--config", cfg]);
    try {
      const mqttPort = await again.port();
      const sub = await connectClient(mqttPort, { clientId: "api-durable-check" });
      await sub.client.subscribeAsync("durable/api", { qos: 1 });
      await sub.waitMessages(1, 3000);
      expect(sub.messages[0]!.payload.toString()).toBe("committed");
      await sub.end();
    } finally {
      await again.kill();
    }
  }, 20_000);
});
