/**
 * Certificate renewal without dropping anyone: `reloadTls()` (what SIGHUP
 * runs) re-reads each TLS listener's files. A changed certificate serves
 * every new connection, on mqtts and on wss; connections opened before keep
 * working; unchanged files change nothing; files that fail to load leave the
 * old certificate in force. The port stays the broker's alone throughout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import mqtt from "mqtt";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { testCerts, warnSkip } from "../helpers/certs.ts";
import { RawWsClient } from "../helpers/ws-raw.ts";

const certs = testCerts();
warnSkip("tests/transports/tls-reload.test.ts");

/** The CN of the certificate a new TLS connection to `port` is served. */
function servedCn(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: readFileSync(certs!.ca) }, () => {
      const cn = s.getPeerCertificate().subject.CN as string;
      s.destroy();
      resolve(cn);
    });
    s.once("error", reject);
  });
}

describe.skipIf(certs === null)("certificate reload", () => {
  let rb: RunningBroker;
  let dir: string;
  let cert: string;
  let key: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "bunmq-reload-"));
    cert = join(dir, "server.crt");
    key = join(dir, "server.key");
    copyFileSync(certs!.serverCert, cert);
    copyFileSync(certs!.serverKey, key);
    rb = await startTestBroker({
      listeners: [
        { host: "127.0.0.1", port: 0, protocol: "mqtts", tls: { cert, key } },
        { host: "127.0.0.1", port: 0, protocol: "wss", tls: { cert, key } },
      ],
    });
  });
  afterAll(() => rb.stop());
  const mqtts = () => rb.addresses[0]!;
  const wss = () => rb.addresses[1]!;

  test("unchanged files: nothing is replaced", async () => {
    const r = rb.reloadTls();
    expect(r.map((x) => x.result)).toEqual(["unchanged", "unchanged"]);
    expect(await servedCn(mqtts().port)).toBe("localhost");
  });

  test("renewed certificate: new mqtts and wss connections get it, connections opened before keep working", async () => {
    const ca = readFileSync(certs!.ca);
    const oldTls = await mqtt.connectAsync(mqtts().url, { reconnectPeriod: 0, ca, clientId: "before-tls" });
    const oldWss = await mqtt.connectAsync(wss().url, { reconnectPeriod: 0, ca, clientId: "before-wss" });
    copyFileSync(certs!.renewedCert, cert);
    copyFileSync(certs!.renewedKey, key);
    const r = rb.reloadTls();
    expect(r.map((x) => x.result)).toEqual(["reloaded", "reloaded"]);
    expect(r[0]!.detail).toContain("CN=renewed");
    expect(await servedCn(mqtts().port)).toBe("renewed");
    expect(await servedCn(wss().port)).toBe("renewed");
    // A new wss client speaks MQTT on the new certificate.
    const fresh = await RawWsClient.connectedWs(wss().port, 5, { clientId: "after-wss" }, { tls: { ca } });
    fresh.destroy();
    // The old connections were not dropped: a round trip through both.
    await oldWss.subscribeAsync("reload/#", { qos: 1 });
    const got = new Promise<string>((res) => oldWss.once("message", (_t, p) => res(p.toString())));
    await oldTls.publishAsync("reload/x", "across the reload", { qos: 1 });
    expect(await got).toBe("across the reload");
    expect(oldTls.connected && oldWss.connected).toBe(true);
    await Promise.all([oldTls.endAsync(), oldWss.endAsync()]);
  });

  test("a file that fails to load leaves the old certificate in force, and says why", async () => {
    writeFileSync(key, "not a key\n");
    const r = rb.reloadTls();
    expect(r.map((x) => x.result)).toEqual(["failed", "failed"]);
    expect(r[0]!.detail).toContain(key);
    expect(await servedCn(mqtts().port)).toBe("renewed");
    // A key that is a key, but of another certificate.
    copyFileSync(certs!.serverKey, key);
    const mismatch = rb.reloadTls();
    expect(mismatch[0]!.result).toBe("failed");
    expect(mismatch[0]!.detail).toMatch(/does not belong/);
    expect(await servedCn(wss().port)).toBe("renewed");
    copyFileSync(certs!.renewedKey, key);
  });

  test("after reloads the port is still exclusive: a plain bind on it fails", () => {
    for (const a of [mqtts(), wss()]) {
      expect(() => Bun.listen({ hostname: "127.0.0.1", port: a.port, socket: { data() {} } })).toThrow();
    }
  });

  test("a connection opened on a listener that a reload then replaced is still served", async () => {
    const c = await mqtt.connectAsync(mqtts().url, { reconnectPeriod: 0, ca: readFileSync(certs!.ca), clientId: "on-current" });
    copyFileSync(certs!.serverCert, cert);
    copyFileSync(certs!.serverKey, key);
    expect(rb.reloadTls()[0]!.result).toBe("reloaded");
    // `c` now lives on a replaced listener; the broker still counts and serves it.
    await waitFor(() => rb.broker.clients >= 1, 1000, "the client");
    await c.publishAsync("still", "served", { qos: 1 });
    await c.endAsync();
  });
});
