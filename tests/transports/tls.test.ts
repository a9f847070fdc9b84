/**
 * MQTT over TLS (`mqtts` listeners; MQTT 3.1.1 §5.4.9, MQTT 5 §5.4.9):
 * MQTT.js v3.1.1 and v5 over TLS with a CA it verifies, mutual TLS
 * (`requireClientCert`: no certificate and an untrusted certificate are both
 * refused at the handshake), the certificate's CN as username
 * (`useIdentityAsUsername`, Mosquitto's use_identity_as_username), the
 * minimum TLS version, a handshake that never finishes and plain MQTT bytes
 * on a TLS port (each closes that socket only), and per-listener
 * `maxConnections` and `allowAnonymous`. Certificates are made at run time
 * with openssl (tests/helpers/certs.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import mqtt from "mqtt";
import type { Connection } from "../../lib/connection.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { portOf, startTestBroker, urlOf, waitFor } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { encode, RawClient } from "../helpers/raw.ts";

const certs = testCerts();
warnSkip("tests/transports/tls.test.ts");
const read = (p: string) => readFileSync(p);

function connOf(rb: RunningBroker, clientId: string): Connection | undefined {
  for (const c of rb.broker.connections) if (c.clientId === clientId && !c.isClosed()) return c;
  return undefined;
}

/** MQTT.js over TLS; resolves with the client or rejects with the error MQTT.js reports. */
async function tlsClient(url: string, opts: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, ca: read(certs!.ca), ...opts });
}

/**
 * How an MQTT.js connection attempt ends: "connected", the error message, or
 * "closed" (a TLS 1.3 client learns of a refused certificate only when the
 * server closes, after its own handshake is done; connectAsync would wait).
 */
function attempt(url: string, opts: mqtt.IClientOptions): Promise<string> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, ca: read(certs!.ca), ...opts });
    const done = (r: string) => {
      c.end(true);
      resolve(r);
    };
    c.once("connect", () => done("connected"));
    c.once("error", (e) => done(e.message));
    c.once("close", () => done("closed"));
  });
}

/** Opens a TLS connection and resolves once it ends: "handshake" if it completed, else the error. */
function handshakeOutcome(port: number, opts: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: read(certs!.ca), ...opts }, () => {
      // TLS 1.3: a refused client certificate is reported after the client's handshake completes.
      s.once("data", () => {});
      setTimeout(() => {
        resolve(s.destroyed ? "closed" : "handshake");
        s.destroy();
      }, 300);
    });
    s.once("error", (e) => resolve(`error: ${e.message}`));
  });
}

describe.skipIf(certs === null)("MQTT over TLS (mqtts)", () => {
  let rb: RunningBroker;
  beforeAll(async () => {
    const c = certs!;
    rb = await startTestBroker({
      limits: { connectTimeoutMs: 400 },
      auth: { allowAnonymous: false, users: [{ username: "carol", password: "secret" }] },
      listeners: [
        { host: "127.0.0.1", port: 0 },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", allowAnonymous: true, tls: { cert: c.serverCert, key: c.serverKey } },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca, requireClientCert: true } },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca, requireClientCert: true, useIdentityAsUsername: true } },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", allowAnonymous: true, tls: { cert: c.serverCert, key: c.serverKey, minVersion: "TLSv1.3" } },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", allowAnonymous: true, maxConnections: 2, tls: { cert: c.serverCert, key: c.serverKey } },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", allowAnonymous: true, tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca, requireClientCert: true, crl: c.crl } },
      ],
    });
  });
  afterAll(() => rb.stop());
  const url = (i: number) => rb.addresses[i]!.url;
  const port = (i: number) => rb.addresses[i]!.port;

  test("the start-up addresses name every listener as a URL", () => {
    expect(rb.addresses.map((a) => a.url.replace(/:\d+$/, ":P"))).toEqual([
      "mqtt://127.0.0.1:P",
      "mqtts://127.0.0.1:P",
      "mqtts://127.0.0.1:P",
      "mqtts://127.0.0.1:P",
      "mqtts://127.0.0.1:P",
      "mqtts://127.0.0.1:P",
      "mqtts://127.0.0.1:P",
    ]);
    expect(urlOf(rb, "mqtts")).toBe(`mqtts://127.0.0.1:${portOf(rb, "mqtts")}`);
  });

  for (const v of [4, 5] as const) {
    test(`MQTT.js v${v === 4 ? "3.1.1" : "5"} over TLS: QoS 0, 1 and 2 reach a TCP subscriber and come back over TLS`, async () => {
      const sub = await mqtt.connectAsync(url(0), { reconnectPeriod: 0, protocolVersion: v, username: "carol", password: "secret" });
      const tlsc = await tlsClient(url(1), { protocolVersion: v, clientId: `tls-v${v}` });
      await sub.subscribeAsync(`tls/v${v}/#`, { qos: 2 });
      await tlsc.subscribeAsync(`tls/v${v}/#`, { qos: 2 });
      const atSub: string[] = [];
      const atTls: string[] = [];
      sub.on("message", (_t, p) => atSub.push(p.toString()));
      tlsc.on("message", (_t, p) => atTls.push(p.toString()));
      for (const qos of [0, 1, 2] as const) await tlsc.publishAsync(`tls/v${v}/x`, `q${qos}`, { qos });
      await waitFor(() => atSub.length === 3 && atTls.length === 3, 3000, "both subscribers");
      expect(atSub.sort()).toEqual(["q0", "q1", "q2"]);
      expect(atTls.sort()).toEqual(["q0", "q1", "q2"]);
      // The broker sees the TLS connection on the mqtts listener.
      expect(connOf(rb, `tls-v${v}`)!.listener.protocol).toBe("mqtts");
      await Promise.all([sub.endAsync(), tlsc.endAsync()]);
    });
  }

  test("the client verifies the broker's certificate against the CA (a client trusting another CA is refused by its own check)", async () => {
    const err = await tlsClient(url(1), { ca: read(certs!.otherCa) }).then(
      (c) => {
        c.end(true);
        return "connected";
      },
      (e: Error) => e.message,
    );
    expect(err).not.toBe("connected");
    expect(await handshakeOutcome(port(1), {})).toBe("handshake");
  });

  describe("mutual TLS: requireClientCert", () => {
    test("a client with a certificate signed by the listener's CA connects", async () => {
      const c = await tlsClient(url(2), { cert: read(certs!.aliceCert), key: read(certs!.aliceKey), username: "carol", password: "secret", clientId: "mtls-ok" });
      expect(c.connected).toBe(true);
      expect(connOf(rb, "mtls-ok")!.transport.peerCertificate()!.subject.CN).toBe("alice");
      await c.endAsync();
    });

    test("a client without a certificate is refused at the handshake; others are untouched", async () => {
      const other = await tlsClient(url(1), { clientId: "bystander-1" });
      const before = rb.broker.clients;
      const r = await attempt(url(2), { username: "carol", password: "secret" });
      expect(r).not.toBe("connected");
      expect(r).toMatch(/certificate|alert|handshake|socket|closed/i);
      expect(await handshakeOutcome(port(2), {})).not.toBe("handshake");
      expect(rb.broker.clients).toBe(before);
      await other.publishAsync("bystander", "still here", { qos: 1 });
      await other.endAsync();
    });

    test("a client with a certificate from an untrusted CA is refused", async () => {
      const before = rb.broker.connections.size;
      expect(await attempt(url(2), { cert: read(certs!.malloryCert), key: read(certs!.malloryKey), username: "carol", password: "secret", clientId: "mallory" })).not.toBe("connected");
      expect(connOf(rb, "mallory")).toBeUndefined();
      // A raw TLS client that sends its CONNECT right after its handshake gets no CONNACK.
      const raw = await RawClient.connectTls(port(2), 4, { ca: read(certs!.ca), cert: read(certs!.malloryCert), key: read(certs!.malloryKey) });
      raw.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: "mallory-raw", username: "carol", password: Buffer.from("secret") });
      expect(await raw.waitClose(3000)).toBe(true);
      expect(raw.pending().filter((p) => p.cmd === "connack")).toEqual([]);
      await waitFor(() => rb.broker.connections.size === before, 2000, "the refused sockets to be forgotten");
      expect(await handshakeOutcome(port(2), { cert: read(certs!.malloryCert), key: read(certs!.malloryKey) })).not.toBe("handshake");
    });
  });

  test("tls.crl: a client certificate the CA revoked is refused; one it did not revoke connects", async () => {
    expect(await attempt(url(6), { cert: read(certs!.revokedCert), key: read(certs!.revokedKey), clientId: "revoked" })).not.toBe("connected");
    expect(connOf(rb, "revoked")).toBeUndefined();
    expect(await attempt(url(6), { cert: read(certs!.aliceCert), key: read(certs!.aliceKey), clientId: "not-revoked" })).toBe("connected");
    // Without the CRL the same certificate is fine: it is the list that refuses it.
    expect(await attempt(url(2), { cert: read(certs!.revokedCert), key: read(certs!.revokedKey), username: "carol", password: "secret" })).toBe("connected");
  });

  describe("useIdentityAsUsername: the certificate's CN is the username", () => {
    test("CN alice connects without credentials although anonymous access is off, as user alice", async () => {
      const c = await tlsClient(url(3), { cert: read(certs!.aliceCert), key: read(certs!.aliceKey), clientId: "cn-alice" });
      expect(connOf(rb, "cn-alice")!.username).toBe("alice");
      await c.endAsync();
    });

    test("the CONNECT's user name and password are not used: CN bob with -u carol is user bob, a wrong password does not matter", async () => {
      for (const v of [4, 5] as const) {
        const c = await tlsClient(url(3), { protocolVersion: v, cert: read(certs!.bobCert), key: read(certs!.bobKey), clientId: `cn-bob-${v}`, username: "carol", password: "wrong" });
        expect(connOf(rb, `cn-bob-${v}`)!.username).toBe("bob");
        await c.endAsync();
      }
    });

    test("on a listener without it, the same certificate does not make a user: the CONNECT's credentials are checked", async () => {
      const r = await tlsClient(url(2), { cert: read(certs!.aliceCert), key: read(certs!.aliceKey), protocolVersion: 5 }).then(
        (c) => {
          c.end(true);
          return 0;
        },
        (e: Error & { code?: number }) => e.code,
      );
      expect(r).toBe(0x87); // anonymous (no user name) on a listener that does not allow it
    });

    test("a certificate without a CN is refused: v5 CONNACK 0x87, 3.1.1 return code 5", async () => {
      for (const [v, code] of [
        [5, 0x87],
        [4, 5],
      ] as const) {
        const c = await RawClient.connectTls(port(3), v, { ca: read(certs!.ca), cert: read(certs!.noCnCert), key: read(certs!.noCnKey) });
        const ack = await c.handshake({ clientId: `nocn-${v}` });
        expect(ack.cmd).toBe("connack");
        expect(v === 5 ? ack.reasonCode : ack.returnCode).toBe(code);
        expect(await c.waitClose()).toBe(true);
      }
    });
  });

  test("minVersion TLSv1.3: a TLS 1.2 client is refused, a TLS 1.3 client connects; the default listener takes TLS 1.2", async () => {
    expect(await handshakeOutcome(port(4), { maxVersion: "TLSv1.2" })).toMatch(/^error/);
    expect(await handshakeOutcome(port(4), { minVersion: "TLSv1.3" })).toBe("handshake");
    expect(await handshakeOutcome(port(1), { maxVersion: "TLSv1.2" })).toBe("handshake");
  });

  test("a TLS handshake that never finishes is closed after connectTimeoutMs; that socket only", async () => {
    const other = await tlsClient(url(1), { clientId: "bystander-2", keepalive: 0 });
    const before = rb.broker.connections.size;
    // A TCP connection that sends the first bytes of a ClientHello and then nothing.
    const s = net.connect({ host: "127.0.0.1", port: port(1) });
    let closed = false;
    s.on("close", () => (closed = true));
    s.on("error", () => {});
    s.on("connect", () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    await waitFor(() => rb.broker.connections.size === before + 1, 2000, "the socket to be accepted");
    // connectTimeoutMs 400, then at most the lingering close (2 s) and a housekeeping tick.
    await waitFor(() => closed, 4000, "the broker to close the stalled handshake");
    await waitFor(() => rb.broker.connections.size === before, 2000, "the connection to be forgotten");
    expect(other.connected).toBe(true);
    await other.publishAsync("bystander", "ok", { qos: 1 });
    await other.endAsync();
  });

  test("plain MQTT bytes on a TLS port close that socket without an MQTT answer; the TLS client beside it carries on", async () => {
    const other = await tlsClient(url(1), { clientId: "bystander-3" });
    const raw = await RawClient.connect(port(1), 4);
    raw.write(encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: "plain-on-tls" }));
    expect(await raw.waitClose(3000)).toBe(true);
    expect(raw.pending().filter((p) => p.cmd === "connack")).toEqual([]);
    expect(connOf(rb, "plain-on-tls")).toBeUndefined();
    await other.subscribeAsync("after-plain", { qos: 1 });
    await other.endAsync();
  });

  test("a raw TLS socket that completes the handshake but sends no CONNECT is closed after connectTimeoutMs", async () => {
    const c = await RawClient.connectTls(port(1), 4, { ca: read(certs!.ca) });
    expect(await c.waitClose(4000)).toBe(true);
  });

  test("per-listener maxConnections: the third socket on a listener of 2 is closed at accept; other listeners still accept", async () => {
    const refusedBefore = rb.listeners[5]!.refused;
    const a = await tlsClient(url(5), { clientId: "cap-1" });
    const b = await tlsClient(url(5), { clientId: "cap-2" });
    const third = await tlsClient(url(5), { clientId: "cap-3" }).then(
      (c) => {
        c.end(true);
        return "connected";
      },
      () => "refused",
    );
    expect(third).toBe("refused");
    expect(rb.listeners[5]!.refused).toBe(refusedBefore + 1);
    const elsewhere = await tlsClient(url(1), { clientId: "cap-elsewhere" });
    expect(elsewhere.connected).toBe(true);
    await Promise.all([a.endAsync(), b.endAsync(), elsewhere.endAsync()]);
    await waitFor(() => rb.listeners[5]!.connections === 0, 3000, "the listener's count to drop");
  });

  test("per-listener allowAnonymous overrides auth.allowAnonymous (off globally, on for this TLS listener)", async () => {
    const anon = await tlsClient(url(1), { clientId: "anon-tls", protocolVersion: 5 });
    expect(anon.connected).toBe(true);
    await anon.endAsync();
    const refused = await mqtt.connectAsync(url(0), { reconnectPeriod: 0, protocolVersion: 5 }).then(
      (c) => {
        c.end(true);
        return 0;
      },
      (e: Error & { code?: number }) => e.code,
    );
    expect(refused).toBe(0x87);
  });
});
