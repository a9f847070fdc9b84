/**
 * GET /metrics on an http listener: Prometheus text that a strict parser
 * accepts (tests/helpers/prom.ts), with values that follow what real clients
 * did — connections by listener and protocol version, sessions online and
 * offline, messages and bytes by QoS, drops by cause, takeovers, auth
 * failures, queue depth, in-flight messages, the store's commit histogram,
 * event-loop lag and RSS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, urlOf, waitFor } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { parsePrometheus, value } from "../helpers/prom.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-metrics-"));
let rb: RunningBroker;
let http: string;
let mqttPort: number;

beforeAll(async () => {
  rb = await startTestBroker({
    listeners: [
      { host: "127.0.0.1", port: 0 },
      { host: "127.0.0.1", port: 0, protocol: "http" },
    ],
    persistence: { path: join(dir, "m.db") },
    auth: { users: [{ username: "alice", password: "secret" }], acl: [
      { user: "alice", topic: "#", action: "all", allow: true },
      { user: "$anonymous", topic: "open/#", action: "all", allow: true },
      { topic: "$SYS/#", action: "subscribe", allow: true },
    ] },
  });
  http = urlOf(rb, "http").replace(/\/$/, "");
  mqttPort = rb.port;
});
afterAll(async () => {
  await rb.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function scrape() {
  const r = await fetch(`${http}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  return parsePrometheus(await r.text());
}

describe("GET /metrics", () => {
  test("is valid Prometheus text with HELP and TYPE for every family, and the families the issue asks for", async () => {
    const f = await scrape();
    for (const name of [
      "bunmq_connections",
      "bunmq_sessions",
      "bunmq_subscriptions",
      "bunmq_retained_messages",
      "bunmq_messages_received_total",
      "bunmq_messages_sent_total",
      "bunmq_payload_bytes_received_total",
      "bunmq_payload_bytes_sent_total",
      "bunmq_dropped_messages_total",
      "bunmq_takeovers_total",
      "bunmq_auth_failures_total",
      "bunmq_queued_messages",
      "bunmq_queued_messages_max",
      "bunmq_inflight_messages",
      "bunmq_store_commit_duration_seconds",
      "bunmq_event_loop_lag_seconds",
      "process_resident_memory_bytes",
    ]) {
      const fam = f.get(name);
      expect({ name, declared: fam !== undefined && fam.help.length > 0 }).toEqual({ name, declared: true });
    }
    expect(f.get("bunmq_store_commit_duration_seconds")!.type).toBe("histogram");
    expect(f.get("bunmq_messages_received_total")!.type).toBe("counter");
    expect(value(f, "process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
    expect(value(f, "bunmq_event_loop_lag_seconds")).toBeGreaterThanOrEqual(0);
  });

  test("connections are counted by listener and protocol version; sessions online and offline", async () => {
    const a = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-v4", username: "alice", password: "secret" });
    const b = await connectClient(mqttPort, { protocolVersion: 5, clientId: "m-v5", username: "alice", password: "secret" });
    const c = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-offline", clean: false });
    await c.end();
    await waitFor(() => rb.broker.clients === 2, 3000, "two clients");
    const f = await scrape();
    const listener = `mqtt://127.0.0.1:${mqttPort}`;
    expect(value(f, "bunmq_connections", { listener, protocol_version: "4" })).toBe(1);
    expect(value(f, "bunmq_connections", { listener, protocol_version: "5" })).toBe(1);
    expect(value(f, "bunmq_connections", { listener, protocol_version: "3" })).toBe(0);
    expect(value(f, "bunmq_sessions", { state: "online" })).toBe(2);
    expect(value(f, "bunmq_sessions", { state: "offline" })).toBe(1);
    await a.end();
    await b.end();
  });

  test("messages and payload bytes in and out are counted by QoS; a QoS 1 message queued for an offline session shows as queue depth", async () => {
    const before = await scrape();
    const sub = await connectClient(mqttPort, { protocolVersion: 5, clientId: "m-sub", username: "alice", password: "secret" });
    await sub.client.subscribeAsync("q/#", { qos: 2 });
    const offline = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-queue", clean: false, username: "alice", password: "secret" });
    await offline.client.subscribeAsync("q/#", { qos: 1 });
    await offline.end();
    const pub = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-pub", username: "alice", password: "secret" });
    for (const qos of [0, 1, 1, 2, 2, 2] as const) await pub.client.publishAsync(`q/${qos}`, Buffer.alloc(10 + qos), { qos });
    await sub.waitMessages(6);
    await waitFor(() => rb.broker.sessions.get("m-queue")!.queue.length === 5, 3000, "queued");
    const f = await scrape();
    const d = (name: string, qos: string) => value(f, name, { qos }) - value(before, name, { qos });
    expect([d("bunmq_messages_received_total", "0"), d("bunmq_messages_received_total", "1"), d("bunmq_messages_received_total", "2")]).toEqual([1, 2, 3]);
    expect([d("bunmq_payload_bytes_received_total", "0"), d("bunmq_payload_bytes_received_total", "1"), d("bunmq_payload_bytes_received_total", "2")]).toEqual([10, 22, 36]);
    // The live subscriber got each at its own QoS; the offline one's QoS 1 copies wait (QoS 0 is not queued).
    expect([d("bunmq_messages_sent_total", "0"), d("bunmq_messages_sent_total", "1"), d("bunmq_messages_sent_total", "2")]).toEqual([1, 2, 3]);
    expect(value(f, "bunmq_queued_messages")).toBeGreaterThanOrEqual(5);
    expect(value(f, "bunmq_queued_messages_max")).toBe(5);
    expect(value(f, "bunmq_network_bytes_received_total")).toBeGreaterThan(value(before, "bunmq_network_bytes_received_total"));
    await sub.end();
    await pub.end();
  });

  test("unacknowledged deliveries show as in-flight messages", async () => {
    const sub = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-noack", username: "alice", password: "secret" });
    // MQTT.js acknowledges once handleMessage calls back: a handler that never does keeps every PUBACK back.
    (sub.client as unknown as { handleMessage: (p: unknown, cb: (e?: Error) => void) => void }).handleMessage = () => {};
    await sub.client.subscribeAsync("inflight/#", { qos: 1 });
    const pub = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-pub2", username: "alice", password: "secret" });
    for (let i = 0; i < 3; i++) await pub.client.publishAsync("inflight/x", "x", { qos: 1 });
    await waitFor(() => rb.broker.sessions.get("m-noack")!.inflight.count === 3, 3000, "in flight");
    const f = await scrape();
    expect(value(f, "bunmq_inflight_messages")).toBeGreaterThanOrEqual(3);
    await sub.end(true);
    await pub.end();
  });

  test("takeovers, auth failures and ACL drops are counted", async () => {
    const before = await scrape();
    const first = await connectClient(mqttPort, { protocolVersion: 5, clientId: "m-twice", username: "alice", password: "secret" });
    const second = await connectClient(mqttPort, { protocolVersion: 5, clientId: "m-twice", username: "alice", password: "secret" });
    await expect(connectClient(mqttPort, { protocolVersion: 5, clientId: "m-bad", username: "alice", password: "wrong" })).rejects.toThrow();
    const anon = await connectClient(mqttPort, { protocolVersion: 4, clientId: "m-anon" });
    await anon.client.publishAsync("closed/topic", "denied", { qos: 1 }); // 3.1.1: acknowledged and dropped
    const f = await scrape();
    expect(value(f, "bunmq_takeovers_total") - value(before, "bunmq_takeovers_total")).toBe(1);
    expect(value(f, "bunmq_auth_failures_total") - value(before, "bunmq_auth_failures_total")).toBe(1);
    expect(value(f, "bunmq_dropped_messages_total", { cause: "acl" }) - value(before, "bunmq_dropped_messages_total", { cause: "acl" })).toBe(1);
    await first.end(true);
    await second.end();
    await anon.end();
  });

  test("store commits of a file store are observed in the histogram (cumulative buckets, +Inf = count)", async () => {
    const f = await scrape();
    const count = value(f, "bunmq_store_commit_duration_seconds_count");
    expect(count).toBeGreaterThan(0);
    expect(value(f, "bunmq_store_commit_duration_seconds_bucket", { le: "+Inf" })).toBe(count);
    expect(value(f, "bunmq_store_commit_duration_seconds_sum")).toBeGreaterThan(0);
  });
});
