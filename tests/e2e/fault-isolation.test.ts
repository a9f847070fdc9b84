/**
 * One client's exception never reaches the others. Faults are injected
 * through real seams — an enhanced-authentication method that throws, a
 * Transport that throws, the log sink (stderr) that throws — into a real
 * broker:
 * - a throw while handling a packet closes that connection only (v5:
 *   DISCONNECT 0x83 Implementation specific error, [MQTT-4.13.1-1]), logs one
 *   line with the stack, and the batch still ends for everyone else;
 * - a throw while a closing connection publishes its will still lets the
 *   connection be torn down and forgotten;
 * - a throw in a housekeeping pass is logged and the timer keeps running.
 * (Store failures are not isolated: the broker stops rather than acknowledge
 * what it cannot store, see tests/persistence/store-failure.test.ts.)
 */
import { afterEach, describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config.ts";
import type { AuthExchange, AuthMethod } from "../../lib/enhanced-auth.ts";
import { setLogLevel } from "../../lib/log.ts";
import { type RunningBroker, startBroker } from "../../lib/server.ts";
import { waitFor } from "../helpers/broker.ts";
import { Harness, MemoryTransport, TestClient, settle } from "../helpers/harness.ts";
import { RawClient } from "../helpers/raw.ts";

let running: RunningBroker | null = null;
const clients: RawClient[] = [];
let logged: string[] = [];
/** Throw from the log sink for lines that match (a broken stderr, say). */
let failLog: RegExp | null = null;
const realWrite = process.stderr.write.bind(process.stderr);
afterEach(async () => {
  process.stderr.write = realWrite;
  failLog = null;
  for (const c of clients.splice(0)) c.destroy();
  await running?.stop();
  running = null;
  setLogLevel("error");
});

function captureLog(): void {
  logged = [];
  process.stderr.write = ((chunk: string | Uint8Array) => {
    const line = String(chunk);
    if (failLog !== null && failLog.test(line)) throw new Error(`injected fault in the log sink: ${line.trim()}`);
    logged.push(line);
    return true;
  }) as typeof process.stderr.write;
}

async function start(logLevel: "error" | "debug" = "error"): Promise<RunningBroker> {
  const config = parseConfig({ listeners: [{ host: "127.0.0.1", port: 0 }], persistence: { path: ":memory:" }, logLevel });
  running = await startBroker(config);
  captureLog();
  return running;
}

async function client(b: RunningBroker, version: 4 | 5, clientId: string, opts: Record<string, unknown> = {}): Promise<RawClient> {
  const c = await RawClient.connected(b.port, version, { clientId, ...opts });
  clients.push(c);
  return c;
}

/** An authentication method that accepts the first exchange at once and throws in the next (re-authentication). */
function flaky(): AuthMethod {
  let exchanges = 0;
  return {
    name: "FLAKY",
    start(): AuthExchange {
      const first = exchanges++ === 0;
      return {
        step: () => {
          if (first) return { kind: "success" };
          throw new Error("injected fault in an auth method");
        },
      };
    },
  };
}

describe("a throw while handling one client's packet", () => {
  test("v5: that client gets DISCONNECT 0x83 and is closed; one ERROR line with the stack; a client publishing at the same moment gets its PUBACK", async () => {
    const b = await start();
    b.broker.authMethods.set("FLAKY", flaky());
    const boom = await client(b, 5, "boom", { properties: { authenticationMethod: "FLAKY" } });
    const other = await client(b, 4, "other");
    // Back to back: handled in the same event-loop turn. The second AUTH step throws.
    boom.send({ cmd: "auth", reasonCode: 0x19, properties: { authenticationMethod: "FLAKY" } });
    other.send({ cmd: "publish", topic: "o/1", qos: 1, messageId: 5, payload: Buffer.from("still") });
    const d = await boom.nextOf("disconnect");
    expect(d.reasonCode).toBe(0x83);
    expect(await boom.waitClose()).toBe(true);
    expect((await other.nextOf("puback")).messageId).toBe(5);
    const errors = logged.filter((l) => / ERROR /.test(l));
    expect(errors.length).toBe(1);
    expect(errors[0]).toContain("injected fault in an auth method");
    expect(errors[0]).toContain("stack=");
    expect(errors[0]!.trimEnd().split("\n").length).toBe(1); // one line, the stack escaped inside it
    // The broker goes on: the other client still subscribes and receives.
    other.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic: "o/#", qos: 0 }] });
    await other.nextOf("suback");
    other.send({ cmd: "publish", topic: "o/2", qos: 0, payload: Buffer.from("x") });
    expect((await other.nextOf("publish")).topic).toBe("o/2");
  });

  test("an enhanced authentication method that throws on CONNECT: that CONNECT is refused (v5 CONNACK 0x83), others connect", async () => {
    const b = await start();
    b.broker.authMethods.set("BOOM", {
      name: "BOOM",
      start: () => {
        throw new Error("injected fault in an auth method");
      },
    });
    const c = await RawClient.connect(b.port, 5);
    clients.push(c);
    c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: "auth-boom", properties: { authenticationMethod: "BOOM" } });
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x83]);
    expect(await c.waitClose()).toBe(true);
    await client(b, 5, "after-auth-boom");
    expect(logged.filter((l) => / ERROR /.test(l) && l.includes("injected fault in an auth method")).length).toBe(1);
  });

  test("3.1.1, in process: a publisher whose transport throws when the broker holds it back is closed; the subscriber and the batch are unaffected", async () => {
    const h = new Harness({ config: { limits: { maxQueuedMessages: 2, maxInflight: 1 } } });
    captureLog();
    const sub = await h.connected("sub", 4);
    await sub.subscribe("t", 1);
    // A publisher over a transport whose pauseReading fails (a broken socket, say).
    const pub = new TestClient(h, 4);
    (pub.transport as MemoryTransport).pauseReading = () => {
      throw new Error("injected fault in a transport");
    };
    h.clients.push(pub);
    await pub.connect({ clientId: "pub" });
    const bystander = await h.connected("bystander", 4);
    // 1 in flight + 2 queued fill the subscriber; the 4th message makes the broker hold the publisher back.
    pub.sendMany([1, 2, 3, 4].map((i) => ({ cmd: "publish", topic: "t", qos: 1, messageId: i, payload: Buffer.from(`m${i}`) })));
    bystander.send({ cmd: "pingreq" });
    await settle();
    expect(pub.conn.isClosed()).toBe(true);
    expect(bystander.take().map((p) => p.cmd)).toEqual(["pingresp"]);
    expect(sub.take().filter((p) => p.cmd === "publish").map((p) => p.payload.toString())).toEqual(["m1"]);
    expect(logged.filter((l) => / ERROR /.test(l) && l.includes("injected fault in a transport")).length).toBe(1);
  });
});

describe("a throw while a closing connection publishes its will", () => {
  test("the connection is still torn down and forgotten, the client count is right, the others keep working", async () => {
    const b = await start("debug");
    const sub = await client(b, 4, "will-sub");
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "will/#", qos: 1 }] });
    await sub.nextOf("suback");
    const w = await client(b, 4, "will-owner", { will: { topic: "will/boom", payload: Buffer.from("bye"), qos: 1, retain: false } });
    const clientsBefore = b.broker.clients;
    const connsBefore = b.broker.connections.size;
    failLog = /^\S+ DEBUG publishing will/; // the will's publication fails part way
    w.destroy();
    await waitFor(() => b.broker.connections.size === connsBefore - 1, 3000, "the closed connection to be forgotten");
    failLog = null;
    expect(b.broker.clients).toBe(clientsBefore - 1);
    expect(b.broker.sessions.has("will-owner")).toBe(false);
    expect(logged.some((l) => / ERROR detaching a closed connection failed/.test(l) && l.includes("injected fault in the log sink"))).toBe(true);
    const p = await client(b, 4, "after-will");
    p.send({ cmd: "publish", topic: "will/ok", qos: 1, messageId: 3, payload: Buffer.from("ok") });
    expect((await p.nextOf("puback")).messageId).toBe(3);
    expect((await sub.nextOf("publish")).topic).toBe("will/ok");
  });
});

describe("a throw in a housekeeping pass", () => {
  test("is logged and the timer keeps running: a later keep-alive timeout still closes a silent client", async () => {
    const b = await start("debug");
    const d = await client(b, 5, "delayed", {
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: { topic: "w/delayed", payload: Buffer.from("late"), qos: 0, retain: false, properties: { willDelayInterval: 1 } },
    });
    d.destroy();
    await waitFor(() => b.broker.sessions.get("delayed")?.conn === null, 3000, "the delayed-will session offline");
    failLog = /^\S+ DEBUG publishing will/; // firing the delayed will fails inside the housekeeping pass
    await waitFor(() => logged.some((l) => / ERROR /.test(l) && l.includes("injected fault in the log sink")), 5000, "the housekeeping failure to be logged");
    failLog = null;
    setLogLevel("error");
    // The timer is still alive: a client with keep alive 1 s that stays silent is closed (1.5 x).
    const silent = await client(b, 4, "silent", { keepalive: 1 });
    expect(await silent.waitClose(5000)).toBe(true);
  }, 15_000);
});
