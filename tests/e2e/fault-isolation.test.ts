/**
 * One client's exception never reaches the others. Faults are injected
 * through real seams — a Store that throws for one client, an enhanced
 * authentication method that throws — into a real broker over TCP:
 * - a throw while handling a packet closes that connection only (v5:
 *   DISCONNECT 0x83 Implementation specific error, [MQTT-4.13.1-1]), logs one
 *   line with the stack, and the batch still ends for everyone else;
 * - a throw while a closing connection publishes its will still lets the
 *   connection be torn down and forgotten;
 * - a throw in a housekeeping pass is logged and the timer keeps running.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config.ts";
import type { AuthMethod } from "../../lib/enhanced-auth.ts";
import { setLogLevel } from "../../lib/log.ts";
import { type RunningBroker, startBroker } from "../../lib/server.ts";
import { MemoryStore, type Store } from "../../lib/store.ts";
import { waitFor } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw.ts";

/** A real MemoryStore that throws from the methods `fail` picks (a disk that breaks for one client). */
function faultyStore(fail: (method: string, args: unknown[]) => boolean): Store {
  const inner = new MemoryStore();
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        if (fail(String(prop), args)) throw new Error(`injected fault in ${String(prop)}`);
        return v.apply(target, args);
      };
    },
  });
}

let running: RunningBroker | null = null;
const clients: RawClient[] = [];
let logged: string[] = [];
const realWrite = process.stderr.write.bind(process.stderr);
afterEach(async () => {
  process.stderr.write = realWrite;
  for (const c of clients.splice(0)) c.destroy();
  await running?.stop();
  running = null;
});

async function start(store: Store): Promise<RunningBroker> {
  const config = parseConfig({ listeners: [{ host: "127.0.0.1", port: 0 }], persistence: { path: ":memory:" }, logLevel: "error" });
  running = await startBroker(config, store);
  setLogLevel("error");
  logged = [];
  process.stderr.write = ((chunk: string | Uint8Array) => {
    logged.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  return running;
}

async function client(b: RunningBroker, version: 4 | 5, clientId: string, opts: Record<string, unknown> = {}): Promise<RawClient> {
  const c = await RawClient.connected(b.port, version, { clientId, ...opts });
  clients.push(c);
  return c;
}

describe("a throw while handling one client's packet", () => {
  test("v5: that client gets DISCONNECT 0x83 and is closed; one ERROR line with the stack; a client publishing at the same moment gets its PUBACK", async () => {
    const b = await start(faultyStore((m, a) => m === "saveSubscription" && (a[0] as { clientId: string }).clientId === "boom"));
    const boom = await client(b, 5, "boom", { clean: false, properties: { sessionExpiryInterval: 60 } });
    const other = await client(b, 4, "other");
    // Both in one write each, back to back: handled in the same event-loop turn.
    boom.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "x/#", qos: 1 }] });
    other.send({ cmd: "publish", topic: "o/1", qos: 1, messageId: 5, payload: Buffer.from("still") });
    const d = await boom.nextOf("disconnect");
    expect(d.reasonCode).toBe(0x83);
    expect(await boom.waitClose()).toBe(true);
    expect((await other.nextOf("puback")).messageId).toBe(5);
    const errors = logged.filter((l) => / ERROR /.test(l));
    expect(errors.length).toBe(1);
    expect(errors[0]).toContain("injected fault in saveSubscription");
    expect(errors[0]).toContain("stack=");
    expect(errors[0]!.trimEnd().split("\n").length).toBe(1); // one line, the stack escaped inside it
    // The broker goes on: the other client still subscribes and receives.
    other.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic: "o/#", qos: 0 }] });
    await other.nextOf("suback");
    other.send({ cmd: "publish", topic: "o/2", qos: 0, payload: Buffer.from("x") });
    expect((await other.nextOf("publish")).topic).toBe("o/2");
  });

  test("3.1.1: that client is closed (no DISCONNECT in 3.1.1), the others carry on", async () => {
    const b = await start(faultyStore((m, a) => m === "saveSubscription" && (a[0] as { clientId: string }).clientId === "boom4"));
    const boom = await client(b, 4, "boom4", { clean: false });
    const other = await client(b, 4, "other4");
    boom.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "x/#", qos: 1 }] });
    expect(await boom.waitClose()).toBe(true);
    other.send({ cmd: "pingreq" });
    expect((await other.nextOf("pingresp")).cmd).toBe("pingresp");
  });

  test("an enhanced authentication method that throws: that CONNECT is refused (v5 CONNACK 0x83), others connect", async () => {
    const b = await start(new MemoryStore());
    const boom: AuthMethod = {
      name: "BOOM",
      start: () => ({
        step: () => {
          throw new Error("injected fault in an auth method");
        },
      }),
    };
    b.broker.authMethods.set("BOOM", boom);
    const c = await RawClient.connect(b.port, 5);
    clients.push(c);
    c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: "auth-boom", properties: { authenticationMethod: "BOOM" } });
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x83]);
    expect(await c.waitClose()).toBe(true);
    await client(b, 5, "after-auth-boom");
    expect(logged.filter((l) => / ERROR /.test(l) && l.includes("injected fault in an auth method")).length).toBe(1);
  });
});

describe("a throw while a closing connection publishes its will", () => {
  test("the connection is still torn down and forgotten, the client count is right, the subscriber keeps working", async () => {
    // The will reaches a persistent QoS 1 subscriber, whose delivery row cannot be written.
    const b = await start(faultyStore((m, a) => m === "addMessage" && (a[0] as { topic: string }).topic === "will/boom"));
    const sub = await client(b, 4, "will-sub", { clean: false });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "will/#", qos: 1 }] });
    await sub.nextOf("suback");
    const w = await client(b, 4, "will-owner", { will: { topic: "will/boom", payload: Buffer.from("bye"), qos: 1, retain: false } });
    const clientsBefore = b.broker.clients;
    const connsBefore = b.broker.connections.size;
    w.destroy();
    await waitFor(() => b.broker.connections.size === connsBefore - 1, 3000, "the closed connection to be forgotten");
    expect(b.broker.clients).toBe(clientsBefore - 1);
    expect(b.broker.sessions.has("will-owner")).toBe(false);
    expect(logged.some((l) => / ERROR /.test(l) && l.includes("injected fault in addMessage"))).toBe(true);
    // The subscriber and new clients still work.
    const p = await client(b, 4, "after-will");
    p.send({ cmd: "publish", topic: "will/ok", qos: 1, messageId: 3, payload: Buffer.from("ok") });
    expect((await p.nextOf("puback")).messageId).toBe(3);
    expect((await sub.nextOf("publish")).topic).toBe("will/ok");
  });
});

describe("a throw in a housekeeping pass", () => {
  test("is logged and the timer keeps running: a later keep-alive timeout still closes a silent client", async () => {
    let armed = false;
    // Firing a delayed will writes the session row: that write fails once armed.
    const b = await start(faultyStore((m, a) => armed && m === "saveSession" && (a[0] as { clientId: string }).clientId === "delayed"));
    const d = await client(b, 5, "delayed", {
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: { topic: "w/delayed", payload: Buffer.from("late"), qos: 0, retain: false, properties: { willDelayInterval: 1 } },
    });
    d.destroy();
    await waitFor(() => b.broker.sessions.get("delayed")?.conn === null, 3000, "the delayed-will session offline");
    armed = true;
    await waitFor(() => logged.some((l) => l.includes("injected fault in saveSession")), 5000, "the housekeeping failure to be logged");
    // The timer is still alive: a client with keep alive 1 s that stays silent is closed (1.5 x).
    const silent = await client(b, 4, "silent", { keepalive: 1 });
    expect(await silent.waitClose(5000)).toBe(true);
  }, 15_000);
});
