/**
 * Takeover across transports: every transport feeds the same sessions, so a
 * Client ID arriving over one transport takes over its live connection on
 * another (3.1.1 [MQTT-3.1.4-2], 5 [MQTT-3.1.4-3]); v5 gets DISCONNECT 0x8E
 * first each time, exactly one connection stays live, and a persistent
 * session carries its subscriptions and queue across transports.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { RawClient } from "../helpers/raw.ts";
import { RawWsClient } from "../helpers/ws-raw.ts";

const certs = testCerts();
warnSkip("tests/transports/takeover.test.ts");

describe.skipIf(certs === null)("takeover across TCP, TLS, WS and WSS", () => {
  let rb: RunningBroker;
  beforeAll(async () => {
    const c = certs!;
    rb = await startTestBroker({
      listeners: [
        { host: "127.0.0.1", port: 0 },
        { host: "127.0.0.1", port: 0, protocol: "mqtts", tls: { cert: c.serverCert, key: c.serverKey } },
        { host: "127.0.0.1", port: 0, protocol: "ws" },
        { host: "127.0.0.1", port: 0, protocol: "wss", tls: { cert: c.serverCert, key: c.serverKey } },
      ],
    });
  });
  afterAll(() => rb.stop());

  type Kind = "tcp" | "tls" | "ws" | "wss";
  async function open(kind: Kind, version: 4 | 5, opts: Record<string, unknown>): Promise<RawClient> {
    const ca = readFileSync(certs!.ca);
    const port = (i: number) => rb.addresses[i]!.port;
    switch (kind) {
      case "tcp":
        return RawClient.connected(port(0), version, opts);
      case "tls":
        return RawClient.handshaken(await RawClient.connectTls(port(1), version, { ca }), opts);
      case "ws":
        return RawWsClient.connectedWs(port(2), version, opts);
      case "wss":
        return RawWsClient.connectedWs(port(3), version, opts, { tls: { ca } });
    }
  }

  const live = (id: string) => [...rb.broker.connections].filter((c) => c.clientId === id && !c.isClosed()).length;

  for (const version of [5, 4] as const) {
    test(`v${version}: TCP -> WSS -> TCP with one Client ID leaves one live connection${version === 5 ? ", and each old one gets DISCONNECT 0x8E" : ""}`, async () => {
      const id = `hop-${version}`;
      const chain: Kind[] = ["tcp", "wss", "tcp"];
      const clients: RawClient[] = [];
      for (const kind of chain) {
        const c = await open(kind, version, { clientId: id, clean: true });
        const prev = clients.at(-1);
        if (prev) {
          if (version === 5) {
            const d = await prev.nextOf("disconnect");
            expect(d.reasonCode).toBe(0x8e);
          }
          expect(await prev.waitClose()).toBe(true);
        }
        clients.push(c);
        await waitFor(() => live(id) === 1, 2000, "one live connection");
      }
      expect(rb.broker.sessions.get(id)?.conn?.listener.protocol).toBe("mqtt");
      // The survivor works.
      const last = clients.at(-1)!;
      last.send({ cmd: "pingreq" });
      expect((await last.nextOf("pingresp")).cmd).toBe("pingresp");
      last.destroy();
    });
  }

  test("v5: a ring through all four transports, each takes over the one before", async () => {
    const id = "ring";
    let prev: RawClient | null = null;
    for (const kind of ["tcp", "tls", "ws", "wss", "tcp"] as Kind[]) {
      const c = await open(kind, 5, { clientId: id });
      if (prev) {
        expect((await prev.nextOf("disconnect")).reasonCode).toBe(0x8e);
        expect(await prev.waitClose()).toBe(true);
      }
      expect(live(id)).toBe(1);
      prev = c;
    }
    prev!.destroy();
  });

  test("a persistent session moves from WS to TLS with its subscription and its queued QoS 1 message [MQTT-3.1.2-4]", async () => {
    const id = "moving-session";
    const first = await open("ws", 4, { clientId: id, clean: false });
    first.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "moving/#", qos: 1 }] });
    await first.nextOf("suback");
    first.send({ cmd: "disconnect" });
    expect(await first.waitClose()).toBe(true);
    const pub = await open("tcp", 4, { clientId: "moving-pub" });
    pub.send({ cmd: "publish", topic: "moving/x", qos: 1, messageId: 5, payload: Buffer.from("queued while away") });
    await pub.nextOf("puback");
    const back = await RawClient.connectTls(rb.addresses[1]!.port, 4, { ca: readFileSync(certs!.ca) });
    const ack = await back.handshake({ clientId: id, clean: false });
    expect(ack.sessionPresent).toBe(true);
    const p = await back.nextOf("publish");
    expect(p.payload.toString()).toBe("queued while away");
    back.destroy();
    pub.destroy();
  });
});
