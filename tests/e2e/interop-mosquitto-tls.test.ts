/**
 * Interop over TLS with a second real client implementation: Debian's
 * mosquitto_pub / mosquitto_sub (libmosquitto on OpenSSL) against `mqtts`
 * listeners (MQTT 3.1.1 §5.4.9 / MQTT 5 §5.4.9 TLS): server authentication
 * with `--cafile`, MQTT 3.1.1 and 5 at QoS 0, 1 and 2; mutual TLS
 * (`requireClientCert` with `ca`): a client certificate signed by the CA is
 * accepted, no certificate or one signed by another CA is refused at the
 * handshake and nothing it sent is delivered; `useIdentityAsUsername`: the
 * certificate's CN is the connection's username whatever `-u` says; and
 * `minVersion: "TLSv1.3"` refuses a TLS 1.2 client.
 *
 * Skipped, with the reason printed, when mosquitto-clients or openssl (for
 * the test certificates) is missing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Connection } from "../../lib/connection.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { type TestCerts, testCerts, warnSkip } from "../helpers/certs.ts";

const FILE = "tests/e2e/interop-mosquitto-tls.test.ts";
const haveTools = Bun.which("mosquitto_pub") !== null && Bun.which("mosquitto_sub") !== null;
if (!haveTools) console.warn(`${FILE}: SKIPPED: mosquitto_pub / mosquitto_sub not found (apt-get install mosquitto-clients)`);
const certs = haveTools ? testCerts() : null;
if (haveTools) warnSkip(FILE);
const run = haveTools && certs !== null;

/** Listener indexes in the broker below. */
const SERVER_ONLY = 0; // TLS, no client certificate asked
const MUTUAL = 1; // requireClientCert with ca
const IDENTITY = 2; // requireClientCert + useIdentityAsUsername
const TLS13 = 3; // minVersion TLSv1.3

let rb: RunningBroker;
let c: TestCerts;
beforeAll(async () => {
  if (!run) return;
  c = certs!;
  const base = { cert: c.serverCert, key: c.serverKey };
  rb = await startTestBroker({
    listeners: [
      { protocol: "mqtts", host: "127.0.0.1", port: 0, tls: base },
      { protocol: "mqtts", host: "127.0.0.1", port: 0, tls: { ...base, ca: c.ca, requireClientCert: true } },
      { protocol: "mqtts", host: "127.0.0.1", port: 0, tls: { ...base, ca: c.ca, requireClientCert: true, useIdentityAsUsername: true } },
      { protocol: "mqtts", host: "127.0.0.1", port: 0, tls: { ...base, minVersion: "TLSv1.3" } },
    ],
  });
});
afterAll(async () => {
  if (run) await rb.stop();
});

const portAt = (i: number): number => rb.addresses[i]!.port;

interface Done {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run to completion; killed (and failing the test) after `ms`. */
async function runTool(cmd: string[], ms = 8000): Promise<Done> {
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(9), ms);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** mosquitto_pub to listener `at` over TLS, trusting the test CA; `args` adds the rest. */
function pub(at: number, args: string[]): Promise<Done> {
  return runTool(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(portAt(at)), "--cafile", c.ca, ...args]);
}

interface Sub {
  /** Everything mosquitto_sub printed, once it has exited (after -C messages, or -W seconds). */
  done: Promise<Done>;
  kill(): void;
}

/**
 * mosquitto_sub on listener `at` over TLS, waiting until its subscription is
 * in the broker. It exits after `count` messages or `waitSeconds`.
 */
async function sub(at: number, args: string[], count = 1, waitSeconds = 6): Promise<Sub> {
  const before = rb.broker.stats().subscriptions;
  const p = Bun.spawn(
    ["mosquitto_sub", "-h", "127.0.0.1", "-p", String(portAt(at)), "--cafile", c.ca, "-C", String(count), "-W", String(waitSeconds), ...args],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const done = Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => ({ code, stdout, stderr }));
  try {
    await waitFor(() => rb.broker.stats().subscriptions > before, 5000, "mosquitto_sub's subscription");
  } catch (err) {
    p.kill(9);
    const d = await done;
    throw new Error(`${(err as Error).message}; mosquitto_sub exited ${d.code}: ${d.stderr}`);
  }
  return { done, kill: () => p.kill(9) };
}

function connOf(clientId: string): Connection | undefined {
  for (const conn of rb.broker.connections) if (conn.clientId === clientId && !conn.isClosed()) return conn;
  return undefined;
}

const clientCert = (which: "alice" | "bob" | "mallory" | "noCn"): string[] => {
  const map = { alice: [c.aliceCert, c.aliceKey], bob: [c.bobCert, c.bobKey], mallory: [c.malloryCert, c.malloryKey], noCn: [c.noCnCert, c.noCnKey] };
  const [cert, key] = map[which];
  return ["--cert", cert!, "--key", key!];
};

describe.skipIf(!run)("mosquitto clients over TLS (MQTT 3.1.1 §5.4.9 / MQTT 5 §5.4.9 TLS)", () => {
  for (const v of ["mqttv311", "mqttv5"]) {
    for (const q of ["0", "1", "2"]) {
      test(`${v} QoS ${q}: mosquitto_pub --cafile reaches mosquitto_sub --cafile over mqtts`, async () => {
        const topic = `tls/${v}/${q}`;
        const s = await sub(SERVER_ONLY, ["-V", v, "-q", q, "-t", topic, "-v"]);
        const r = await pub(SERVER_ONLY, ["-V", v, "-q", q, "-t", topic, "-m", `over tls ${v} ${q}`]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const d = await s.done;
        expect(d.code).toBe(0);
        expect(d.stdout.trim()).toBe(`${topic} over tls ${v} ${q}`);
      });
    }
  }

  test("a client trusting another CA (--cafile other-ca) refuses the server's certificate: it really is verified", async () => {
    const r = await runTool(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(portAt(SERVER_ONLY)), "--cafile", c.otherCa, "-t", "tls/untrusted", "-m", "x"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate verify failed|TLS/i);
  });

  test("plain MQTT (no TLS) to the mqtts port fails and the listener keeps serving TLS clients", async () => {
    const r = await runTool(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(portAt(SERVER_ONLY)), "-t", "tls/plain", "-m", "x"]);
    expect(r.code).not.toBe(0);
    const s = await sub(SERVER_ONLY, ["-t", "tls/after-plain"]);
    expect((await pub(SERVER_ONLY, ["-t", "tls/after-plain", "-m", "still serving"])).code).toBe(0);
    expect((await s.done).stdout.trim()).toBe("still serving");
  });
});

describe.skipIf(!run)("mutual TLS: requireClientCert with ca", () => {
  for (const v of ["mqttv311", "mqttv5"]) {
    test(`${v}: a client certificate signed by the CA (--cert/--key) is accepted, QoS 1 both ways`, async () => {
      const topic = `mtls/${v}`;
      const s = await sub(MUTUAL, ["-V", v, "-q", "1", "-t", topic, "-v", ...clientCert("bob")]);
      const r = await pub(MUTUAL, ["-V", v, "-q", "1", "-t", topic, "-m", "mutual", ...clientCert("alice")]);
      expect(r.code).toBe(0);
      expect((await s.done).stdout.trim()).toBe(`${topic} mutual`);
    });
  }

  test("mosquitto_pub without a client certificate fails (non-zero exit) and nothing it sent is delivered", async () => {
    const topic = "mtls/no-cert";
    const s = await sub(SERVER_ONLY, ["-q", "1", "-t", topic]);
    try {
      const refused = await pub(MUTUAL, ["-q", "1", "-t", topic, "-m", "must not arrive"]);
      expect(refused.code).not.toBe(0);
      // mosquitto_sub takes the first message it gets: that must be the marker published afterwards.
      const ok = await pub(MUTUAL, ["-q", "1", "-t", topic, "-m", "marker", ...clientCert("alice")]);
      expect(ok.code).toBe(0);
      expect((await s.done).stdout.trim()).toBe("marker");
    } finally {
      s.kill();
    }
  });

  test("a client certificate signed by another CA (mallory) is refused and nothing it sent is delivered", async () => {
    const topic = "mtls/untrusted-cert";
    const s = await sub(SERVER_ONLY, ["-q", "1", "-t", topic]);
    try {
      const refused = await pub(MUTUAL, ["-q", "1", "-t", topic, "-m", "must not arrive", ...clientCert("mallory")]);
      expect(refused.code).not.toBe(0);
      const ok = await pub(MUTUAL, ["-q", "1", "-t", topic, "-m", "marker", ...clientCert("bob")]);
      expect(ok.code).toBe(0);
      expect((await s.done).stdout.trim()).toBe("marker");
    } finally {
      s.kill();
    }
  });

  test("a refused mosquitto_sub without a certificate never gets a subscription in", async () => {
    const before = rb.broker.stats().subscriptions;
    const r = await runTool(["mosquitto_sub", "-h", "127.0.0.1", "-p", String(portAt(MUTUAL)), "--cafile", c.ca, "-t", "mtls/#", "-C", "1", "-W", "3"]);
    expect(r.code).not.toBe(0);
    expect(rb.broker.stats().subscriptions).toBe(before);
  });
});

describe.skipIf(!run)("useIdentityAsUsername: the certificate's CN is the username", () => {
  for (const v of ["mqttv311", "mqttv5"]) {
    test(`${v}: mosquitto_sub with alice's certificate and -u bob -P x is connected as "alice"; mosquitto_pub with it delivers`, async () => {
      const id = `ident-sub-${v}`;
      const topic = `ident/${v}`;
      const s = await sub(IDENTITY, ["-V", v, "-i", id, "-q", "1", "-t", topic, ...clientCert("alice"), "-u", "bob", "-P", "x"]);
      try {
        const conn = connOf(id);
        expect(conn).toBeDefined();
        expect(conn!.clientId).toBe(id);
        expect(conn!.username).toBe("alice");
        expect(conn!.listener.index).toBe(IDENTITY);
        const r = await pub(IDENTITY, ["-V", v, "-i", `ident-pub-${v}`, "-q", "1", "-t", topic, "-m", "from alice", ...clientCert("alice")]);
        expect(r.code).toBe(0);
        expect((await s.done).stdout.trim()).toBe("from alice");
      } finally {
        s.kill();
      }
    });
  }

  test('bob\'s certificate with -u alice is connected as "bob"', async () => {
    const id = "ident-bob";
    const s = await sub(IDENTITY, ["-i", id, "-t", "ident/bob", ...clientCert("bob"), "-u", "alice"], 1, 3);
    try {
      expect(connOf(id)?.username).toBe("bob");
    } finally {
      s.kill();
    }
  });

  test("a certificate signed by the CA but without a CN is refused (CONNACK not authorized): mosquitto_pub fails", async () => {
    const r = await pub(IDENTITY, ["-V", "mqttv5", "-t", "ident/nocn", "-m", "x", ...clientCert("noCn")]);
    expect(r.code).not.toBe(0);
    const r311 = await pub(IDENTITY, ["-V", "mqttv311", "-t", "ident/nocn", "-m", "x", ...clientCert("noCn")]);
    expect(r311.code).not.toBe(0);
  });

  test("no client certificate on the identity listener: refused at the handshake", async () => {
    const r = await pub(IDENTITY, ["-t", "ident/none", "-m", "x", "-u", "alice", "-P", "x"]);
    expect(r.code).not.toBe(0);
  });
});

describe.skipIf(!run)('minVersion "TLSv1.3"', () => {
  // (libmosquitto's --tls-version tlsv1.2 is a minimum, not a maximum: that client still
  // negotiates 1.3. A client limited to 1.2 is openssl s_client -tls1_2.)
  test("a client limited to TLS 1.2 (openssl s_client -tls1_2) is refused; mosquitto_pub --tls-version tlsv1.3 is accepted", async () => {
    const s12 = Bun.spawn(["openssl", "s_client", "-tls1_2", "-connect", `127.0.0.1:${portAt(TLS13)}`, "-CAfile", c.ca], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out12, err12] = await Promise.all([new Response(s12.stdout).text(), new Response(s12.stderr).text()]);
    await s12.exited;
    expect(`${out12}\n${err12}`).toMatch(/alert protocol version|no protocols available|wrong version/i);
    expect(out12).toContain("Cipher is (NONE)"); // no session was set up
    const s = await sub(SERVER_ONLY, ["-t", "tls13/x"]);
    const ok = await pub(TLS13, ["--tls-version", "tlsv1.3", "-t", "tls13/x", "-m", "tls 1.3"]);
    expect(ok.code).toBe(0);
    expect((await s.done).stdout.trim()).toBe("tls 1.3");
  });
});
