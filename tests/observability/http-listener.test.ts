/**
 * The `http` listener (off by default): /healthz, a port shared with a ws
 * listener, HTTPS with `tls`, the bearer token (required off loopback,
 * config.ts), and the checks that keep a web page the user opens from
 * driving a token-less broker on loopback (Host header, cross-origin
 * requests). The API and the dashboard have their own tests (tests/http,
 * tests/dashboard); /metrics its own (metrics.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig } from "../../lib/config.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { portOf, startTestBroker, urlOf } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { connectClient } from "../helpers/clients.ts";
import mqtt from "mqtt";

const TOKEN = "s3cret-token-for-tests-0123";

/** One HTTP/1.1 request over a raw socket (headers exactly as given; fetch would set Host itself). */
async function rawHttp(port: number, request: string): Promise<string> {
  const s = net.connect({ host: "127.0.0.1", port });
  await new Promise((r) => s.once("connect", r));
  let data = "";
  s.on("data", (d) => (data += d));
  const closed = new Promise((r) => s.once("close", r));
  s.write(request);
  await Promise.race([closed, Bun.sleep(1000)]);
  s.destroy();
  return data;
}

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

describe("GET /healthz", () => {
  let rb: RunningBroker;
  beforeAll(async () => {
    rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 0, protocol: "http" }] });
  });
  afterAll(() => rb.stop());

  test('200 {"status":"ok"} while accepting, as JSON; the listener URL is http://127.0.0.1:PORT/', async () => {
    expect(urlOf(rb, "http")).toBe(`http://127.0.0.1:${portOf(rb, "http")}/`);
    const r = await fetch(`${urlOf(rb, "http")}healthz`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("application/json");
    expect(await r.json()).toEqual({ status: "ok" });
  });

  test("an unknown path is a JSON 404", async () => {
    const r = await fetch(`${urlOf(rb, "http")}nothing-here`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: string }).error).toBe("not found");
  });

  test("503 while the broker shuts down (a request on an open connection during stop())", async () => {
    const other = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 0, protocol: "http" }] });
    const s = net.connect({ host: "127.0.0.1", port: portOf(other, "http") });
    await new Promise((r) => s.once("connect", r));
    let data = "";
    s.on("data", (d) => (data += d));
    const stopping = other.stop();
    s.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await stopping;
    s.destroy();
    expect(data).toStartWith("HTTP/1.1 503");
    expect(data).toContain('{"status":"shutting down"}');
  });
});

describe("an http listener sharing a port with a ws listener", () => {
  test("MQTT over WebSocket at /mqtt and /healthz on the same port", async () => {
    const port = await freePort();
    const rb = await startTestBroker({
      listeners: [
        { host: "127.0.0.1", port: 0 },
        { host: "127.0.0.1", port, protocol: "ws" },
        { host: "127.0.0.1", port, protocol: "http" },
      ],
    });
    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${port}/mqtt`, { reconnectPeriod: 0, clientId: "shared-ws" });
    expect(ws.connected).toBe(true);
    const r = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(await r.json()).toEqual({ status: "ok" });
    await ws.endAsync();
    await rb.stop();
  });

  test("config: two http listeners on one port, or http beside mqtt on one port, are refused naming the field", () => {
    expect(() => parseConfig({ listeners: [{ port: 5001, protocol: "http" }, { port: 5001, protocol: "http" }] })).toThrow("listeners.1.port: 127.0.0.1:5001 is already used by listeners.0");
    expect(() => parseConfig({ listeners: [{ port: 5002 }, { port: 5002, protocol: "http" }] })).toThrow("listeners.1.port");
    expect(() => parseConfig({ listeners: [{ port: 5003, protocol: "http", maxConnections: 5 }] })).toThrow("listeners.0.maxConnections: only for MQTT listeners");
    expect(parseConfig({ listeners: [{ protocol: "http" }] }).listeners[0]!.port).toBe(8080);
  });
});

describe("access: http.token", () => {
  test("an http listener on a non-loopback address needs http.token (the config names the field); with one it is valid", () => {
    let err: unknown;
    try {
      parseConfig({ listeners: [{ host: "0.0.0.0", port: 8080, protocol: "http" }] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("listeners.0.host: an http listener on 0.0.0.0 (not loopback) needs http.token");
    expect(parseConfig({ listeners: [{ host: "0.0.0.0", port: 8080, protocol: "http" }], http: { token: TOKEN } }).http.token).toBe(TOKEN);
    expect(() => parseConfig({ http: { token: "short" } })).toThrow("http.token: at least 16 characters");
  });

  test("with a token: /metrics and /api/v1 say 401 without it or with a wrong one, 200 with Bearer, cookie or ?token=; /healthz stays open", async () => {
    const rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 0, protocol: "http" }], http: { token: TOKEN } });
    const base = urlOf(rb, "http");
    const none = await fetch(`${base}metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect((await fetch(`${base}metrics`, { headers: { Authorization: "Bearer wrong-token-wrong-token" } })).status).toBe(401);
    expect((await fetch(`${base}api/v1/clients`)).status).toBe(401);
    expect((await fetch(`${base}metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${base}metrics`, { headers: { Cookie: `bunmq_token=${encodeURIComponent(TOKEN)}` } })).status).toBe(200);
    expect((await fetch(`${base}metrics?token=${encodeURIComponent(TOKEN)}`)).status).toBe(200);
    expect((await fetch(`${base}healthz`)).status).toBe(200);
    await rb.stop();
  });

  test("without a token on loopback: a Host header naming another site is refused (421; DNS rebinding), a cross-origin POST is refused (403)", async () => {
    const rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 0, protocol: "http" }] });
    const port = portOf(rb, "http");
    const rebound = await rawHttp(port, "GET /metrics HTTP/1.1\r\nHost: attacker.example:8080\r\nConnection: close\r\n\r\n");
    expect(rebound).toStartWith("HTTP/1.1 421");
    const local = await rawHttp(port, `GET /metrics HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
    expect(local).toStartWith("HTTP/1.1 200");
    const cross = await fetch(`http://127.0.0.1:${port}/api/v1/publish`, {
      method: "POST",
      headers: { Origin: "http://attacker.example", "Content-Type": "application/json" },
      body: JSON.stringify({ topic: "x", payload: "y" }),
    });
    expect(cross.status).toBe(403);
    await rb.stop();
  });
});

describe("HTTPS: an http listener with tls", () => {
  const certs = testCerts();
  warnSkip("http-listener.test.ts");
  test.skipIf(certs === null)("serves /healthz over TLS with its certificate (https://… URL)", async () => {
    const c = certs!;
    const rb = await startTestBroker({
      listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 0, protocol: "http", tls: { cert: c.serverCert, key: c.serverKey } }],
    });
    const url = urlOf(rb, "http");
    expect(url).toStartWith("https://127.0.0.1:");
    const r = await fetch(`${url}healthz`, { tls: { ca: readFileSync(c.ca, "utf8") } } as RequestInit);
    expect(await r.json()).toEqual({ status: "ok" });
    await rb.stop();
  });
});

describe("the MQTT listeners are unaffected", () => {
  test("an MQTT client on the same broker connects and publishes while the http listener serves", async () => {
    const rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 0, protocol: "http" }] });
    const c = await connectClient(rb.port, { clientId: "beside-http" });
    await c.client.subscribeAsync("t", { qos: 1 });
    await c.client.publishAsync("t", "m", { qos: 1 });
    await c.waitMessages(1);
    expect((await fetch(`${urlOf(rb, "http")}healthz`)).status).toBe(200);
    await c.end();
    await rb.stop();
  });
});
