/**
 * MQTT 5 enhanced authentication with AUTH (CHECKLIST area 11): the
 * broker's SCRAM-SHA-256 method over auth.users, driven by an independent
 * client implementation (tests/helpers/scram.ts).
 *
 * First authentication: CONNECT (method, client-first) → AUTH 0x18
 * (server-first) → AUTH 0x18 (client-final) → CONNACK 0x00 carrying the
 * method and the server-final ([MQTT-4.12.0-2], [MQTT-4.12.0-5]); failures
 * end in a CONNACK ≥ 0x80 ([MQTT-4.12.0-4]); only AUTH or DISCONNECT may
 * be sent meanwhile ([MQTT-3.1.2-30]). Re-authentication: AUTH 0x19 → 0x18
 * → 0x18 → 0x00 while traffic continues ([MQTT-4.12.1-1]); failure →
 * DISCONNECT 0x87 ([MQTT-4.12.1-2]).
 *
 * Already covered: unsupported method → CONNACK 0x8C and Authentication Data
 * without method → 0x82 (tests/protocol/01-connect.test.ts), AUTH on a
 * connection without method → DISCONNECT 0x82 and AUTH from a 3.1.1 client
 * (10-malformed).
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker } from "../helpers/broker.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { ScramClient } from "../helpers/scram.ts";
import { encode, type Packet, type RawClient } from "../helpers/raw.ts";
import { expectDisconnect, framesOf, publish, subscribe, text } from "./util.ts";

const METHOD = "SCRAM-SHA-256";
const users = [
  { username: "alice", password: "wonderland" },
  { username: "bob", password: "builder, of=things" },
];

const b = useTestBroker({ auth: { allowAnonymous: true, users } });
const pool = usePool();

function connectPacket(clientId: string, data: Buffer | undefined, extra: Record<string, unknown> = {}, method = METHOD) {
  return {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepalive: 0,
    clientId,
    ...extra,
    properties: { authenticationMethod: method, ...(data ? { authenticationData: data } : {}), ...((extra.properties as object) ?? {}) },
  };
}

/** An AUTH packet; `method` null leaves the Authentication Method out. */
const auth = (reasonCode: number, data?: Buffer, method: string | null = METHOD) => ({
  cmd: "auth",
  reasonCode,
  properties: { ...(method !== null ? { authenticationMethod: method } : {}), ...(data ? { authenticationData: data } : {}) },
});

/** CONNECT with the client-first message; returns the server's first AUTH (checked to be 0x18 with our method). */
async function begin(c: RawClient, sc: ScramClient, clientId: string, extra: Record<string, unknown> = {}): Promise<Packet> {
  c.send(connectPacket(clientId, sc.first(), extra));
  const a = await c.next();
  expect(a.cmd).toBe("auth");
  expect(a.reasonCode).toBe(0x18); // [MQTT-4.12.0-2]
  expect(a.properties?.authenticationMethod).toBe(METHOD); // [MQTT-4.12.0-5]
  expect(Buffer.from(a.properties!.authenticationData).toString()).toStartWith(`r=${sc.nonce}`);
  return a;
}

/** The whole first authentication; returns the CONNACK. */
async function scramConnect(c: RawClient, user: string, password: string, clientId: string, extra: Record<string, unknown> = {}) {
  const sc = new ScramClient(user, password);
  const a = await begin(c, sc, clientId, extra);
  c.send(auth(0x18, sc.final(a.properties!.authenticationData)));
  const ack = await c.next();
  expect(ack.cmd).toBe("connack");
  return { ack, sc };
}

describe("first authentication (v5 §4.12)", () => {
  test("CONNECT(method, client-first) → AUTH 0x18 (server-first) → AUTH 0x18 (client-final) → CONNACK 0x00 with the method and a server-final that proves the password; then the connection works", async () => {
    const id = uid("au-ok");
    const c = await pool.socket(b, 5, id);
    const { ack, sc } = await scramConnect(c, "alice", "wonderland", id);
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.authenticationMethod).toBe(METHOD); // [MQTT-4.12.0-5]
    expect(sc.verifyServer(Buffer.from(ack.properties!.authenticationData))).toBe(true);
    await subscribe(c, [{ topic: "au/ok", qos: 1 }]);
    const p = await pool.raw(b, 5, "au-ok-pub");
    await publish(p, "au/ok", "hello", 1);
    expect(text(await c.nextOf("publish"))).toBe("hello");
  });

  test("a user name with ',' and '=' (saslname escaping) and a password with them authenticates", async () => {
    const c = await pool.socket(b, 5, "");
    const { ack } = await scramConnect(c, "bob", "builder, of=things", uid("au-bob"));
    expect(ack.reasonCode).toBe(0);
  });

  for (const [what, user, password] of [
    ["wrong password", "alice", "wrong"],
    ["unknown user (the exchange still runs to the end)", "mallory", "whatever"],
  ] as const) {
    test(`${what} → CONNACK 0x86 and close; no session is created [MQTT-4.12.0-4]`, async () => {
      const id = uid("au-bad");
      const c = await pool.socket(b, 5, id);
      const { ack } = await scramConnect(c, user, password, id);
      expect(ack.reasonCode).toBe(0x86);
      expect(ack.properties?.authenticationData).toBeUndefined();
      expect(await c.waitClose()).toBe(true);
      expect(c.pending()).toEqual([]);
      expect(b.broker.sessions.has(id)).toBe(false);
    });
  }

  test("unknown method → CONNACK 0x8C without any AUTH first, and close [MQTT-4.12.0-1]", async () => {
    const id = uid("au-method");
    const c = await pool.socket(b, 5, id);
    c.send(connectPacket(id, Buffer.from("n,,n=alice,r=abc"), {}, "SCRAM-SHA-1"));
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x8c]);
    expect(await c.waitClose()).toBe(true);
    expect(framesOf(c).length).toBe(1);
  });

  test("a client-first message that is not SCRAM (no gs2 header) → CONNACK 0x87 [MQTT-4.12.0-4]", async () => {
    const c = await pool.socket(b, 5, "");
    c.send(connectPacket(uid("au-garbage"), Buffer.from("hello")));
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x87]);
    expect(await c.waitClose()).toBe(true);
  });

  for (const [name, pkt] of [
    ["PUBLISH", { cmd: "publish", topic: "au/sneak", payload: Buffer.from("x"), qos: 1, messageId: 1 }],
    ["SUBSCRIBE", { cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "au/#", qos: 0 }] }],
    ["PINGREQ", { cmd: "pingreq" }],
  ] as const) {
    test(`${name} instead of AUTH during authentication → CONNACK 0x82 and close [MQTT-3.1.2-30]; nothing of it is processed`, async () => {
      const w = await pool.raw(b, 5, "au-sneak-watch");
      await subscribe(w, [{ topic: "au/sneak", qos: 1 }]);
      const id = uid("au-sneak");
      const c = await pool.socket(b, 5, id);
      await begin(c, new ScramClient("alice", "wonderland"), id);
      c.send(pkt as Record<string, unknown>);
      const ack = await c.next();
      expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x82]);
      expect(await c.waitClose()).toBe(true);
      expect(c.pending()).toEqual([]);
      const p = await pool.raw(b, 5, "au-sneak-marker");
      await publish(p, "au/sneak", "marker", 1);
      expect(text(await w.nextOf("publish"))).toBe("marker"); // the sneaked PUBLISH was not routed
    });
  }

  for (const [what, method] of [
    ["another method", "PLAIN"],
    ["no method", null],
  ] as const) {
    test(`AUTH with ${what} during authentication → CONNACK 0x82 and close (v5 §3.15.2.2.2, [MQTT-4.12.0-5])`, async () => {
      const c = await pool.socket(b, 5, "");
      const sc = new ScramClient("alice", "wonderland");
      const a = await begin(c, sc, uid("au-other"));
      c.send(auth(0x18, sc.final(a.properties!.authenticationData), method));
      const ack = await c.next();
      expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x82]);
      expect(await c.waitClose()).toBe(true);
    });
  }

  test("AUTH 0x19 (Re-authenticate) before CONNACK → CONNACK 0x82 [MQTT-4.12.0-3]", async () => {
    const c = await pool.socket(b, 5, "");
    const sc = new ScramClient("alice", "wonderland");
    const a = await begin(c, sc, uid("au-19early"));
    c.send(auth(0x19, sc.final(a.properties!.authenticationData)));
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x82]);
    expect(await c.waitClose()).toBe(true);
  });

  test("the client gives up with DISCONNECT during authentication: closed, no CONNACK, no session, no will", async () => {
    const w = await pool.raw(b, 5, "au-quit-watch");
    await subscribe(w, [{ topic: "au/quit/will", qos: 1 }]);
    const id = uid("au-quit");
    const c = await pool.socket(b, 5, id);
    await begin(c, new ScramClient("alice", "wonderland"), id, {
      will: { topic: "au/quit/will", payload: Buffer.from("must not"), qos: 1, retain: false },
    });
    c.send({ cmd: "disconnect", reasonCode: 0 });
    expect(await c.waitClose()).toBe(true);
    expect(framesOf(c).map((f) => f[0])).toEqual([0xf0]); // only the server's AUTH
    expect(b.broker.sessions.has(id)).toBe(false);
    const p = await pool.raw(b, 5, "au-quit-marker");
    await publish(p, "au/quit/will", "marker", 1);
    expect(text(await w.nextOf("publish"))).toBe("marker");
  });
});

describe("takeover only after a successful authentication (§3.1.4)", () => {
  test("a CONNECT with the id of a live connection neither kicks it during the exchange nor when the exchange fails; a successful one does (DISCONNECT 0x8E)", async () => {
    const id = uid("au-victim");
    const live = await pool.raw(b, 5, "x", { clientId: id });
    await subscribe(live, [{ topic: "au/victim", qos: 1 }]);
    const p = await pool.raw(b, 5, "au-victim-pub");

    const bad = await pool.socket(b, 5, "");
    const sc = new ScramClient("alice", "nope");
    const a = await begin(bad, sc, id);
    await publish(p, "au/victim", "during", 1);
    expect(text(await live.nextOf("publish"))).toBe("during");
    bad.send(auth(0x18, sc.final(a.properties!.authenticationData)));
    expect((await bad.next()).reasonCode).toBe(0x86);
    expect(await bad.waitClose()).toBe(true);
    await publish(p, "au/victim", "after refusal", 1);
    expect(text(await live.nextOf("publish"))).toBe("after refusal");
    expect(live.closed).toBe(false);

    const good = await pool.socket(b, 5, id);
    const { ack } = await scramConnect(good, "alice", "wonderland", id);
    expect(ack.reasonCode).toBe(0);
    await expectDisconnect(live, 0x8e);
  });
});

describe("re-authentication [MQTT-4.12.1-1] [MQTT-4.12.1-2]", () => {
  async function authed(tag: string, extra: Record<string, unknown> = {}): Promise<RawClient & { id: string }> {
    const id = uid(tag);
    const c = (await pool.socket(b, 5, id)) as RawClient & { id: string };
    c.id = id;
    const { ack } = await scramConnect(c, "alice", "wonderland", id, extra);
    expect(ack.reasonCode).toBe(0);
    return c;
  }

  test("AUTH 0x19 → AUTH 0x18 → AUTH 0x18 → AUTH 0x00 with a verifying server-final, while messages keep flowing both ways between the steps", async () => {
    const c = await authed("au-re");
    await subscribe(c, [{ topic: "au/re", qos: 1 }]);
    const p = await pool.raw(b, 5, "au-re-pub");
    let n = 0;
    /** One message each way; the next AUTH step must not be in the way. */
    const traffic = async () => {
      const tag = `live${++n}`;
      await publish(p, "au/re", tag, 1);
      const m = await c.nextOf("publish");
      expect(text(m)).toBe(tag);
      c.send({ cmd: "puback", messageId: m.messageId });
      c.send({ cmd: "publish", topic: "au/re/out", payload: Buffer.from("x"), qos: 1, messageId: 900 + n });
      expect((await c.nextOf("puback")).messageId).toBe(900 + n);
    };
    const sc = new ScramClient("alice", "wonderland");
    c.send(auth(0x19, sc.first()));
    const a1 = await c.next();
    expect([a1.cmd, a1.reasonCode, a1.properties?.authenticationMethod]).toEqual(["auth", 0x18, METHOD]);
    await traffic();
    c.send(auth(0x18, sc.final(a1.properties!.authenticationData)));
    const a2 = await c.next();
    expect([a2.cmd, a2.reasonCode, a2.properties?.authenticationMethod]).toEqual(["auth", 0x00, METHOD]);
    expect(sc.verifyServer(Buffer.from(a2.properties!.authenticationData))).toBe(true);
    await traffic();
    // A second re-authentication works as well.
    const sc2 = new ScramClient("alice", "wonderland");
    c.send(auth(0x19, sc2.first()));
    const b1 = await c.next();
    c.send(auth(0x18, sc2.final(b1.properties!.authenticationData)));
    expect((await c.next()).reasonCode).toBe(0x00);
    expect(c.closed).toBe(false);
  });

  test("failed re-authentication (wrong password) → DISCONNECT 0x87 and close; the will is published", async () => {
    const w = await pool.raw(b, 5, "au-refail-watch");
    await subscribe(w, [{ topic: "au/refail/will", qos: 1 }]);
    const c = await authed("au-refail", { will: { topic: "au/refail/will", payload: Buffer.from("reauth failed"), qos: 1, retain: false } });
    const sc = new ScramClient("alice", "not-the-password");
    c.send(auth(0x19, sc.first()));
    const a1 = await c.next();
    c.send(auth(0x18, sc.final(a1.properties!.authenticationData)));
    const d = await expectDisconnect(c, 0x87);
    expect(d.properties?.sessionExpiryInterval).toBeUndefined();
    expect(text(await w.nextOf("publish"))).toBe("reauth failed");
  });

  test("re-authentication with another method → DISCONNECT 0x82", async () => {
    const c = await authed("au-remethod");
    c.send(auth(0x19, Buffer.from("n,,n=alice,r=xyz"), "PLAIN"));
    await expectDisconnect(c, 0x82);
  });

  test("AUTH 0x18 on a live connection with no re-authentication in progress → DISCONNECT 0x82", async () => {
    const c = await authed("au-stray");
    c.send(auth(0x18, Buffer.from("c=biws,r=x,p=eA==")));
    await expectDisconnect(c, 0x82);
  });

  test("AUTH with reason 0x00 (Success is for the server only) from the client → DISCONNECT 0x82 [MQTT-3.15.2-1]", async () => {
    const c = await authed("au-rc0");
    c.send(auth(0x00, Buffer.from("x")));
    await expectDisconnect(c, 0x82);
  });

  test("AUTH with an undefined reason code 0x05 → DISCONNECT 0x81 [MQTT-3.15.2-1]", async () => {
    const c = await authed("au-rc5");
    // F0 | RL | reason 05 | property length 10 | 15 00 0D "SCRAM-SHA-256"
    c.write(Buffer.concat([Buffer.from([0xf0, 0x12, 0x05, 0x10, 0x15, 0x00, 0x0d]), Buffer.from(METHOD)]));
    await expectDisconnect(c, 0x81);
  });

  test("AUTH with fixed-header flags 0001 → DISCONNECT 0x81 after CONNACK, CONNACK 0x81 during authentication [MQTT-3.15.1-1]", async () => {
    const live = await authed("au-flags");
    const bytes = encode(auth(0x19, new ScramClient("alice", "wonderland").first()), 5);
    bytes[0] = 0xf1;
    live.write(bytes);
    await expectDisconnect(live, 0x81);

    const c = await pool.socket(b, 5, "");
    const sc = new ScramClient("alice", "wonderland");
    const a = await begin(c, sc, uid("au-flags-early"));
    const cont = encode(auth(0x18, sc.final(a.properties!.authenticationData)), 5);
    cont[0] = 0xf1;
    c.write(cont);
    expect(await c.waitClose()).toBe(true);
    const frames = framesOf(c);
    expect(frames.map((f) => f[0])).not.toContain(0xe0); // never a DISCONNECT before CONNACK [MQTT-3.14.0-1]
    const last = frames.at(-1)!;
    if (last[0] === 0x20) expect(last[3]).toBe(0x81); // a CONNACK, if any, says Malformed
    expect(frames.filter((f) => f[0] === 0x20 && f[3] === 0x00)).toEqual([]);
  });

  test("a connection that authenticated without a method cannot start a re-authentication: AUTH 0x19 → DISCONNECT 0x82 [MQTT-4.12.0-7]", async () => {
    const c = await pool.raw(b, 5, "au-nomethod");
    c.send(auth(0x19, Buffer.from("n,,n=alice,r=abc")));
    await expectDisconnect(c, 0x82);
  });
});

describe("an unfinished exchange is bounded by limits.connectTimeoutMs (300 ms)", () => {
  const k = useTestBroker({ auth: { users }, limits: { connectTimeoutMs: 300 } });

  test("no answer to the server-first message: closed within 2 s, without CONNACK or DISCONNECT", async () => {
    const c = await pool.socket(k, 5, "");
    await begin(c, new ScramClient("alice", "wonderland"), uid("au-slow"));
    expect(await c.waitClose(2000)).toBe(true);
    expect(framesOf(c).map((f) => f[0])).toEqual([0xf0]);
  });
});
