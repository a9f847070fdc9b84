/**
 * CONNECT / CONNACK for MQTT 3.1 (MQIsdp, level 3), 3.1.1 (level 4) and 5.
 * CHECKLIST area 1 (and the CONNECT rows of 11 and 12). Everything here goes
 * over real sockets; malformed CONNECTs are built byte by byte, since no
 * client library will send them.
 *
 * How refusals must look:
 *  - 3.1.1: a CONNECT that breaks the packet format is closed WITHOUT a
 *    CONNACK ([MQTT-3.1.4-1]); a well-formed one that is refused gets a
 *    CONNACK 0x01..0x05 and then the close ([MQTT-3.2.2-5]).
 *  - 5: a CONNACK >= 0x80 (optional for malformed input) then the close; never
 *    a DISCONNECT before a successful CONNACK ([MQTT-3.14.0-1]).
 *  - A refusing CONNACK has Session Present 0 (3.1.1 [MQTT-3.2.2-4], 5 [MQTT-3.2.2-6]).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectBytes, field, frame, prop, u16, u32, varint } from "../helpers/bytes.ts";
import { connectClient } from "../helpers/clients.ts";
import { encode, type Packet, RawClient } from "../helpers/raw.ts";

// ---- reply helpers -----------------------------------------------------------

const bytesOf = (c: RawClient) => Buffer.concat(c.received);
const hex = (c: RawClient) => bytesOf(c).toString("hex");
let seq = 0;
const uid = (p: string) => `${p}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

/** Send raw bytes as the first thing on a fresh socket. */
async function rawOpen(port: number, version: 3 | 4 | 5, bytes: Buffer): Promise<RawClient> {
  const c = await RawClient.connect(port, version);
  c.write(bytes);
  return c;
}

/** The socket is closed and the broker sent nothing at all. */
async function expectSilentClose(c: RawClient): Promise<void> {
  expect(await c.waitClose(3000)).toBe(true);
  expect(hex(c)).toBe("");
}

/** 3.1.x: exactly one 4-byte CONNACK with `rc` (Session Present 0), then the close. */
async function expectV3Refusal(c: RawClient, rc: number): Promise<void> {
  expect(await c.waitClose(3000)).toBe(true);
  expect(hex(c)).toBe(Buffer.from([0x20, 0x02, 0x00, rc]).toString("hex"));
}

/** v5: exactly one CONNACK with reason `rc` and Session Present 0, then the close. */
async function expectV5Refusal(c: RawClient, rc: number): Promise<Packet> {
  const ack = await c.next(3000);
  expect(ack.cmd).toBe("connack");
  expect(ack.reasonCode).toBe(rc);
  expect(ack.sessionPresent).toBe(false);
  // Acknowledge Flags byte: all bits 0 on a refusal ([MQTT-3.2.2-1], [MQTT-3.2.2-6]).
  expect(bytesOf(c)[2]).toBe(0);
  expect(await c.waitClose(3000)).toBe(true);
  expect(c.pending()).toEqual([]);
  expect(c.parseError).toBeNull();
  return ack;
}

/** v5 malformed CONNECT: the close, optionally preceded by CONNACK 0x81 (and nothing else). */
async function expectV5MalformedClose(c: RawClient): Promise<void> {
  expect(await c.waitClose(3000)).toBe(true);
  const got = c.pending();
  if (got.length > 0) {
    expect(got.length).toBe(1);
    expect(got[0]!.cmd).toBe("connack");
    expect(got[0]!.reasonCode).toBe(0x81);
  }
}

/** The connection works: PINGREQ gets PINGRESP. */
async function expectAlive(c: RawClient): Promise<void> {
  expect(c.closed).toBe(false);
  c.send({ cmd: "pingreq" });
  expect((await c.next()).cmd).toBe("pingresp");
}

function connOf(b: RunningBroker, clientId: string) {
  for (const c of b.broker.connections) if (c.clientId === clientId && !c.isClosed()) return c;
  return undefined;
}

// ---- the broker under test ---------------------------------------------------

const b = useTestBroker({
  limits: { maxSessionExpiry: 3600, receiveMaximum: 100, topicAliasMaximum: 10, maxPacketSize: 65536, maxClientIdLength: 64 },
});

describe("the first packet must be CONNECT [MQTT-3.1.0-1]", () => {
  test("PINGREQ first: closed, zero bytes received", async () => {
    const c = await rawOpen(b.port, 4, Buffer.from([0xc0, 0x00]));
    await expectSilentClose(c);
  });

  test("PUBLISH first: closed, zero bytes received, and the message is not routed or retained", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("first/pub", { qos: 1 });
    const c = await rawOpen(b.port, 4, encode({ cmd: "publish", topic: "first/pub", payload: Buffer.from("x"), qos: 0, retain: true }));
    await expectSilentClose(c);
    await Bun.sleep(100);
    expect(w.messages.length).toBe(0);
    expect(b.broker.retainedMessage("first/pub")).toBeNull();
    await w.end();
  });

  test("SUBSCRIBE first: closed, zero bytes received", async () => {
    const c = await rawOpen(b.port, 4, encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "a", qos: 0 }] }));
    await expectSilentClose(c);
  });

  test("v5 AUTH first: closed, zero bytes received (no DISCONNECT before CONNACK [MQTT-3.14.0-1])", async () => {
    const c = await rawOpen(b.port, 5, encode({ cmd: "auth", reasonCode: 0x18, properties: { authenticationMethod: "X" } }, 5));
    await expectSilentClose(c);
  });
});

describe("a second CONNECT is a protocol violation [MQTT-3.1.0-2]", () => {
  test("3.1.1: the connection is closed, nothing is sent after CONNACK, and the will is published", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("second/will311", { qos: 1 });
    const id = uid("second311");
    const c = await RawClient.connected(b.port, 4, { clientId: id, will: { topic: "second/will311", payload: Buffer.from("bye"), qos: 1, retain: false } });
    const afterAck = bytesOf(c).length;
    c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: id });
    expect(await c.waitClose()).toBe(true);
    expect(bytesOf(c).length).toBe(afterAck); // 3.1.1 has no server DISCONNECT, and no second CONNACK
    await w.waitMessages(1);
    expect(w.messages[0]!.payload.toString()).toBe("bye");
    expect(b.broker.sessions.has(id)).toBe(false);
    await w.end();
  });

  test("3.1 (MQIsdp): the connection is closed without any reply", async () => {
    const c = await RawClient.connected(b.port, 3, { clientId: uid("s31").slice(0, 23) });
    const afterAck = bytesOf(c).length;
    c.send({ cmd: "connect", protocolId: "MQIsdp", protocolVersion: 3, clean: true, keepalive: 0, clientId: "other" });
    expect(await c.waitClose()).toBe(true);
    expect(bytesOf(c).length).toBe(afterAck);
  });

  test("5: DISCONNECT 0x82 then close; no second CONNACK", async () => {
    const id = uid("second5");
    const c = await RawClient.connected(b.port, 5, { clientId: id });
    c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: id });
    const d = await c.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x82);
    expect(await c.waitClose()).toBe(true);
    expect(c.pending()).toEqual([]);
  });

  test("5: a second CONNECT with a different version byte is still just a Protocol Error (DISCONNECT 0x82)", async () => {
    const c = await RawClient.connected(b.port, 5, { clientId: uid("second5b") });
    c.write(connectBytes({ level: 4, payload: [field("other")] }));
    const d = await c.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x82);
    expect(await c.waitClose()).toBe(true);
  });
});

describe("protocol name and level", () => {
  for (const level of [0, 1, 2, 6, 7, 255]) {
    test(`level ${level} with name "MQTT": CONNACK 0x01 in 3.1.1 form (20 02 00 01), then close [MQTT-3.1.2-2]`, async () => {
      const c = await rawOpen(b.port, 4, connectBytes({ level, payload: [field("lvl")] }));
      await expectV3Refusal(c, 0x01);
    });
  }

  test("level 6 sent with a v5-style body: still the 4-byte 3.1.1 CONNACK 0x01 [MQTT-3.1.2-2]", async () => {
    const bytes = frame(0x10, field("MQTT"), Buffer.from([6, 0x02]), u16(0), varint(0), field("lvl6"));
    const c = await rawOpen(b.port, 4, bytes);
    await expectV3Refusal(c, 0x01);
  });

  test('name "MQTT" with level 3 (3.1 wants "MQIsdp"): CONNACK 0x01 then close (policy; 3.1.1 [MQTT-3.1.2-1] allows a plain close)', async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ name: "MQTT", level: 3, payload: [field("mix1")] }));
    await expectV3Refusal(c, 0x01);
  });

  test('name "MQIsdp" with level 4: CONNACK 0x01 then close (policy)', async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ name: "MQIsdp", level: 4, payload: [field("mix2")] }));
    await expectV3Refusal(c, 0x01);
  });

  test('name "MQIsdp" with level 5: CONNACK 0x01 then close (policy)', async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ name: "MQIsdp", level: 5, payload: [field("mix3")] }));
    await expectV3Refusal(c, 0x01);
  });

  test('unknown name "MQTX" level 4: closed without CONNACK [MQTT-3.1.2-1] 3.1.1', async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ name: "MQTX", level: 4, payload: [field("name")] }));
    await expectSilentClose(c);
  });

  test('unknown name "mqtt" (lower case) level 5: closed, at most CONNACK 0x84 [MQTT-3.1.2-1] 5', async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ name: "mqtt", level: 5, payload: [field("name")] }));
    expect(await c.waitClose(3000)).toBe(true);
    const got = c.pending();
    expect(got.length).toBeLessThanOrEqual(1);
    if (got.length === 1) expect(got[0]!.reasonCode).toBe(0x84);
  });

  test("3.1 (MQIsdp, level 3) is accepted and works: subscribe, publish, receive", async () => {
    const c = await RawClient.connect(b.port, 3);
    const ack = await c.handshake({ clientId: "v31client" });
    expect(ack.cmd).toBe("connack");
    expect(ack.returnCode).toBe(0);
    expect(hex(c)).toBe("20020000");
    c.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "v31/t", qos: 1 }] });
    const sa = await c.nextOf("suback");
    expect(sa.messageId).toBe(3);
    expect(sa.granted).toEqual([1]);
    c.send({ cmd: "publish", topic: "v31/t", payload: Buffer.from("hi31"), qos: 1, messageId: 9 });
    const seen: Packet[] = [];
    const pub = await c.nextOf("publish", 2000, seen);
    expect(pub.payload.toString()).toBe("hi31");
    c.destroy();
  });

  test("level byte 0x86 (bridge bit + unsupported level 6): CONNACK 0x01", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ level: 0x86, payload: [field("bridge6")] }));
    await expectV3Refusal(c, 0x01);
  });

  test("level byte 0x84 (mosquitto bridge bit + 4) is accepted as 3.1.1 (policy: the codec strips the bit)", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ level: 0x84, payload: [field(uid("bridge4"))] }));
    const ack = await c.next();
    expect(ack.cmd).toBe("connack");
    expect(ack.returnCode).toBe(0);
    await expectAlive(c);
    c.destroy();
  });
});

describe("connect flags", () => {
  test("3.1.1: reserved flag bit 0 set → closed without CONNACK [MQTT-3.1.2-3]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x03, payload: [field("rsv")] }));
    await expectSilentClose(c);
  });

  test("5: reserved flag bit 0 set → closed, at most CONNACK 0x81 [MQTT-3.1.2-3]", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: 0x03, payload: [field("rsv5")] }));
    await expectV5MalformedClose(c);
  });

  test("3.1.1: Will QoS 3 → closed without CONNACK [MQTT-3.1.2-14]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x04 | 0x18, payload: [field("wq3"), field("will/t"), field("p")] }));
    await expectSilentClose(c);
  });

  test("5: Will QoS 3 → CONNACK 0x81 then close [MQTT-3.1.2-12]", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: 0x02 | 0x04 | 0x18, payload: [field("wq3v5"), varint(0), field("will/t"), field("p")] }));
    await expectV5Refusal(c, 0x81);
  });

  test("3.1.1: Will Flag 0 with Will QoS 1 → closed without CONNACK [MQTT-3.1.2-13]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x08, payload: [field("wq-nowill")] }));
    await expectSilentClose(c);
  });

  test("3.1.1: Will Flag 0 with Will Retain 1 → closed without CONNACK [MQTT-3.1.2-15]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x20, payload: [field("wr-nowill")] }));
    await expectSilentClose(c);
  });

  test("3.1.1: Password Flag without User Name Flag → closed without CONNACK [MQTT-3.1.2-22]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x40, payload: [field("pwonly"), field("secret")] }));
    await expectSilentClose(c);
  });

  test("5: a password without a user name is legal (not 0x81/0x82); an open broker with no users accepts it (policy, as mosquitto)", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: 0x02 | 0x40, payload: [field("pwonly5"), field("token")] }));
    const ack = await c.next();
    expect(ack.cmd).toBe("connack");
    expect(ack.reasonCode).toBe(0);
    c.destroy();
  });

  test("3.1.1: User Name Flag set but the field is missing → closed without CONNACK [MQTT-3.1.2-19]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x80, payload: [field("nouser")] }));
    await expectSilentClose(c);
  });

  test("3.1.1: Will Flag set but Will Topic / Payload missing → closed without CONNACK [MQTT-3.1.2-9]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x04, payload: [field("nowilltopic")] }));
    await expectSilentClose(c);
  });

  test("3.1.1: client id length running past the end of the packet → closed without CONNACK", async () => {
    const c = await rawOpen(b.port, 4, frame(0x10, field("MQTT"), Buffer.from([4, 0x02]), u16(0), u16(40), Buffer.from("short")));
    await expectSilentClose(c);
  });

  test("leftover bytes after the last CONNECT field → closed (3.1.1 without CONNACK)", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ payload: [field("leftover")], trailing: Buffer.from([0x00]) }));
    await expectSilentClose(c);
  });

  test("5: leftover bytes after the last CONNECT field → closed, at most CONNACK 0x81", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, payload: [field("leftover5")], trailing: Buffer.from([0x41, 0x42]) }));
    await expectV5MalformedClose(c);
  });

  test("3.1.1: Will Topic with a wildcard → closed without CONNACK [MQTT-3.1.2-9] / [MQTT-4.7.1-1]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x04, payload: [field("wildwill"), field("a/#"), field("p")] }));
    await expectSilentClose(c);
  });

  test("5: Will Topic with a wildcard → CONNACK 0x90 (Topic Name invalid) then close", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: 0x02 | 0x04, payload: [field("wildwill5"), varint(0), field("a/+"), field("p")] }));
    await expectV5Refusal(c, 0x90);
  });
});

describe("client identifier", () => {
  test("3.1.1: empty id with Clean Session 1 is accepted, and two such clients get distinct ids [MQTT-3.1.3-6]", async () => {
    const before = b.broker.clients;
    const c1 = await RawClient.connect(b.port, 4);
    const a1 = await c1.handshake({ clientId: "", clean: true });
    expect(hex(c1)).toBe("20020000");
    expect(a1.returnCode).toBe(0);
    const c2 = await RawClient.connect(b.port, 4);
    await c2.handshake({ clientId: "", clean: true });
    expect(hex(c2)).toBe("20020000");
    // Neither took the other over: both are live, under different ids.
    await expectAlive(c1);
    await expectAlive(c2);
    expect(b.broker.clients).toBe(before + 2);
    const ids = [...b.broker.connections].filter((x) => !x.isClosed() && x.session !== null).map((x) => x.clientId);
    expect(new Set(ids).size).toBe(ids.length);
    c1.destroy();
    c2.destroy();
    await waitFor(() => b.broker.clients === before, 3000, "clients released");
  });

  test("3.1.1: empty id with Clean Session 0 → CONNACK 0x02 (20 02 00 02) then close [MQTT-3.1.3-8]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x00, payload: [field("")] }));
    await expectV3Refusal(c, 0x02);
  });

  test("3.1: empty id → CONNACK 0x02 then close (3.1 requires 1–23 characters)", async () => {
    const c = await rawOpen(b.port, 3, connectBytes({ level: 3, payload: [field("")] }));
    await expectV3Refusal(c, 0x02);
  });

  for (const clean of [true, false]) {
    test(`5: empty id with Clean Start ${clean ? 1 : 0} → CONNACK carries an Assigned Client Identifier that is a live session's key [MQTT-3.1.3-6], [MQTT-3.2.2-16]`, async () => {
      // Hand-built: mqtt-packet refuses to encode an empty id with Clean Start 0.
      const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: clean ? 0x02 : 0x00, props: prop(0x11, u32(30)), payload: [field("")] }));
      const ack = await c.next();
      expect(ack.cmd).toBe("connack");
      expect(ack.reasonCode).toBe(0);
      expect(ack.sessionPresent).toBe(false);
      const assigned = ack.properties?.assignedClientIdentifier as string;
      expect(typeof assigned).toBe("string");
      expect(assigned.length).toBeGreaterThan(0);
      expect(b.broker.sessions.get(assigned)?.conn).not.toBeNull();
      c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "assigned/t", qos: 1 }] });
      await c.nextOf("suback");
      c.destroy();
      // The assigned id is a real session key: reconnecting with it resumes the session.
      await waitFor(() => b.broker.sessions.get(assigned)?.conn === null, 3000, "detached");
      const r = await RawClient.connect(b.port, 5);
      const ack2 = await r.handshake({ clientId: assigned, clean: false, properties: { sessionExpiryInterval: 0 } });
      expect(ack2.reasonCode).toBe(0);
      expect(ack2.sessionPresent).toBe(true);
      expect(ack2.properties?.assignedClientIdentifier).toBeUndefined();
      r.destroy();
    });
  }

  test("5: two clients with empty ids get different Assigned Client Identifiers, and both stay connected [MQTT-3.2.2-16]", async () => {
    const c1 = await RawClient.connect(b.port, 5);
    const c2 = await RawClient.connect(b.port, 5);
    const [a1, a2] = await Promise.all([c1.handshake({ clientId: "" }), c2.handshake({ clientId: "" })]);
    const id1 = a1.properties?.assignedClientIdentifier;
    const id2 = a2.properties?.assignedClientIdentifier;
    expect(id1).toBeTruthy();
    expect(id2).toBeTruthy();
    expect(id1).not.toBe(id2);
    await expectAlive(c1);
    await expectAlive(c2);
    c1.destroy();
    c2.destroy();
  });

  for (const version of [3, 4, 5] as const) {
    test(`v${version}: a 23-character [0-9a-zA-Z] id is accepted [MQTT-3.1.3-5]`, async () => {
      const id = `Az09${version}bcdefghijklmnopqrsT`.slice(0, 23);
      expect(id.length).toBe(23);
      const c = await RawClient.connect(b.port, version);
      const ack = await c.handshake({ clientId: id });
      expect(ack.cmd).toBe("connack");
      expect(version === 5 ? ack.reasonCode : ack.returnCode).toBe(0);
      expect(b.broker.sessions.get(id)?.conn).not.toBeNull();
      await expectAlive(c);
      c.destroy();
    });
  }

  test("an id of exactly limits.maxClientIdLength bytes (64) is accepted", async () => {
    const id = "m".repeat(64);
    const c = await RawClient.connected(b.port, 4, { clientId: id });
    await expectAlive(c);
    c.destroy();
  });

  test("3.1.1: an id one byte over limits.maxClientIdLength → CONNACK 0x02 then close [MQTT-3.1.3-9]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ payload: [field("x".repeat(65))] }));
    await expectV3Refusal(c, 0x02);
  });

  test("3.1: an id over limits.maxClientIdLength → CONNACK 0x02 then close", async () => {
    const c = await rawOpen(b.port, 3, connectBytes({ level: 3, payload: [field("y".repeat(65))] }));
    await expectV3Refusal(c, 0x02);
  });

  test("5: an id over limits.maxClientIdLength → CONNACK 0x85 then close [MQTT-3.1.3-8] 5", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, payload: [field("z".repeat(65))] }));
    await expectV5Refusal(c, 0x85);
  });

  test("5: the limit counts UTF-8 bytes: 33 × 'é' (66 bytes) → 0x85", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, payload: [field("é".repeat(33))] }));
    await expectV5Refusal(c, 0x85);
  });

  const badUtf8: [string, number[]][] = [
    ["C3 28 (bad continuation)", [0x61, 0xc3, 0x28]],
    ["ED A0 80 (encoded surrogate U+D800)", [0x61, 0xed, 0xa0, 0x80]],
    ["C0 80 (over-long U+0000)", [0x61, 0xc0, 0x80]],
    ["F4 90 80 80 (above U+10FFFF)", [0x61, 0xf4, 0x90, 0x80, 0x80]],
    ["lone continuation byte 80", [0x61, 0x80, 0x62]],
  ];
  for (const [what, bytes] of badUtf8) {
    test(`5: client id with ${what} → CONNACK 0x81 then close [MQTT-1.5.4-1], [MQTT-3.1.3-4]`, async () => {
      const c = await rawOpen(b.port, 5, connectBytes({ level: 5, payload: [field(bytes)] }));
      await expectV5Refusal(c, 0x81);
    });
    test(`3.1.1: client id with ${what} → closed without CONNACK [MQTT-1.5.3-1], [MQTT-3.1.4-1]`, async () => {
      const c = await rawOpen(b.port, 4, connectBytes({ payload: [field(bytes)] }));
      await expectSilentClose(c);
    });
  }

  test("5: client id containing U+0000 → CONNACK 0x81 then close [MQTT-1.5.4-2]", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, payload: [field([0x61, 0x00, 0x62])] }));
    await expectV5Refusal(c, 0x81);
  });

  test("3.1.1: client id containing U+0000 → closed without CONNACK [MQTT-1.5.3-2]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ payload: [field([0x61, 0x00, 0x62])] }));
    await expectSilentClose(c);
  });

  test("a well-formed non-ASCII id (Cyrillic, emoji) is accepted and kept exactly", async () => {
    const id = "клиент-😀";
    const c = await RawClient.connected(b.port, 5, { clientId: id });
    expect(b.broker.sessions.get(id)?.conn).not.toBeNull();
    c.destroy();
  });

  test("EF BB BF (U+FEFF) at the start of an id is kept, not stripped [MQTT-1.5.3-3]", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ payload: [field([0xef, 0xbb, 0xbf, 0x62, 0x6f, 0x6d])] }));
    const ack = await c.next();
    expect(ack.returnCode).toBe(0);
    expect(b.broker.sessions.has("\uFEFFbom")).toBe(true);
    expect(b.broker.sessions.has("bom")).toBe(false);
    c.destroy();
  });

  test("5: user name with invalid UTF-8 → CONNACK 0x81 [MQTT-3.1.3-12] 5", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: 0x02 | 0x80, payload: [field("baduser"), field([0x75, 0xed, 0xa0, 0x80])] }));
    await expectV5Refusal(c, 0x81);
  });

  test("3.1.1: user name with U+0000 → closed without CONNACK [MQTT-3.1.3-11] 3.1.1", async () => {
    const c = await rawOpen(b.port, 4, connectBytes({ flags: 0x02 | 0x80, payload: [field("nuluser"), field([0x75, 0x00])] }));
    await expectSilentClose(c);
  });

  test("5: will topic with invalid UTF-8 → CONNACK 0x81 [MQTT-3.1.3-11] 5", async () => {
    const c = await rawOpen(b.port, 5, connectBytes({ level: 5, flags: 0x02 | 0x04, payload: [field("badwill"), varint(0), field([0x77, 0xc3, 0x28]), field("p")] }));
    await expectV5Refusal(c, 0x81);
  });
});

describe("v5 CONNECT properties", () => {
  const v5connect = (props: Buffer, id = uid("p5")) => connectBytes({ level: 5, props, payload: [field(id)] });

  test("Receive Maximum 0 → CONNACK 0x82 (v5 §3.1.2.11.3)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x21, u16(0))));
    await expectV5Refusal(c, 0x82);
  });

  test("Maximum Packet Size 0 → CONNACK 0x82 (v5 §3.1.2.11.4)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x27, u32(0))));
    await expectV5Refusal(c, 0x82);
  });

  test("Topic Alias (not a CONNECT property) → CONNACK 0x81 (v5 §2.2.2.2)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x23, u16(3))));
    await expectV5Refusal(c, 0x81);
  });

  test("Subscription Identifier in CONNECT → CONNACK 0x81 (v5 §2.2.2.2)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x0b, 5)));
    await expectV5Refusal(c, 0x81);
  });

  test("Authentication Data without Authentication Method → CONNACK 0x82 (v5 §3.1.2.11.10)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x16, field("data"))));
    await expectV5Refusal(c, 0x82);
  });

  test("unsupported Authentication Method → CONNACK 0x8C then close [MQTT-4.12.0-1]", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x15, field("NOPE"))));
    await expectV5Refusal(c, 0x8c);
  });

  test("Session Expiry Interval twice (10, 20) → CONNACK 0x82 (v5 §3.1.2.11.2)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(Buffer.concat([prop(0x11, u32(10)), prop(0x11, u32(20))])));
    await expectV5Refusal(c, 0x82);
  });

  test("Session Expiry Interval twice, first value 0 (0, 0) → CONNACK 0x82 (v5 §3.1.2.11.2)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(Buffer.concat([prop(0x11, u32(0)), prop(0x11, u32(0))])));
    await expectV5Refusal(c, 0x82);
  });

  test("Receive Maximum twice → CONNACK 0x82 (v5 §3.1.2.11.3)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(Buffer.concat([prop(0x21, u16(5)), prop(0x21, u16(6))])));
    await expectV5Refusal(c, 0x82);
  });

  test("Request Problem Information 2 → CONNACK 0x82 (v5 §3.1.2.11.7)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x17, 2)));
    await expectV5Refusal(c, 0x82);
  });

  test("Request Response Information 2 → CONNACK 0x82 (v5 §3.1.2.11.6)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x19, 2)));
    await expectV5Refusal(c, 0x82);
  });

  test("unknown property identifier 0x7F → closed, at most CONNACK 0x81 (v5 §2.2.2.2)", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x7f, 0)));
    await expectV5MalformedClose(c);
  });

  test("user property with invalid UTF-8 → CONNACK 0x81 [MQTT-1.5.7-1]", async () => {
    const c = await rawOpen(b.port, 5, v5connect(prop(0x26, field("k"), field([0xed, 0xa0, 0x80]))));
    await expectV5Refusal(c, 0x81);
  });

  test("Topic Alias in the Will Properties → CONNACK 0x81 (v5 §2.2.2.2)", async () => {
    const willProps = prop(0x23, u16(1));
    const bytes = connectBytes({ level: 5, flags: 0x02 | 0x04, payload: [field(uid("wp")), varint(willProps.length), willProps, field("w/t"), field("p")] });
    const c = await rawOpen(b.port, 5, bytes);
    await expectV5Refusal(c, 0x81);
  });

  test("valid properties are accepted: CONNACK 0x00", async () => {
    const props = Buffer.concat([prop(0x11, u32(10)), prop(0x21, u16(20)), prop(0x27, u32(5000)), prop(0x22, u16(5)), prop(0x17, 0), prop(0x19, 1), prop(0x26, field("k"), field("v"))]);
    const c = await rawOpen(b.port, 5, v5connect(props));
    const ack = await c.next();
    expect(ack.cmd).toBe("connack");
    expect(ack.reasonCode).toBe(0);
    await expectAlive(c);
    c.destroy();
  });
});

describe("CONNACK contents", () => {
  test("3.1.1: exactly 20 02 00 00 for a new clean session [MQTT-3.2.2-1..3], [MQTT-3.1.4-4]", async () => {
    const c = await RawClient.connect(b.port, 4);
    await c.handshake({ clientId: uid("ack311") });
    expect(hex(c)).toBe("20020000");
    c.destroy();
  });

  test("5: CONNACK advertises the configured limits and features (v5 §3.2.2.3)", async () => {
    const id = uid("ack5");
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: id, keepalive: 30, properties: { sessionExpiryInterval: 100 } });
    expect(ack.cmd).toBe("connack");
    expect(ack.reasonCode).toBe(0);
    expect(ack.sessionPresent).toBe(false);
    expect(bytesOf(c)[2]).toBe(0); // Acknowledge Flags: bits 7-1 reserved 0 [MQTT-3.2.2-1]
    const p = ack.properties ?? {};
    expect(p.receiveMaximum).toBe(100);
    expect(p.maximumPacketSize).toBe(65536);
    expect(p.topicAliasMaximum).toBe(10);
    expect(p.retainAvailable).toBe(true);
    expect(p.wildcardSubscriptionAvailable).toBe(true);
    expect(p.subscriptionIdentifiersAvailable).toBe(true);
    expect(p.sharedSubscriptionAvailable).toBe(true);
    // Not sent when not applicable:
    expect(p.assignedClientIdentifier).toBeUndefined(); // the client gave an id
    expect(p.serverKeepAlive).toBeUndefined(); // 30 s is within the limit
    expect(p.sessionExpiryInterval).toBeUndefined(); // 100 s is within the cap
    expect(p.authenticationMethod).toBeUndefined(); // [MQTT-4.12.0-6]
    expect(p.responseInformation).toBeUndefined(); // not requested [MQTT-3.1.2-28]
    expect(p.maximumQoS).toBeUndefined(); // QoS 2 is supported
    expect(b.broker.sessions.get(id)?.expiryInterval).toBe(100);
    c.destroy();
  });

  test("5: Session Expiry Interval above limits.maxSessionExpiry is capped and the cap is told in CONNACK (v5 §3.2.2.3.2)", async () => {
    const id = uid("cap");
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: id, properties: { sessionExpiryInterval: 7200 } });
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.sessionExpiryInterval).toBe(3600);
    expect(b.broker.sessions.get(id)?.expiryInterval).toBe(3600);
    c.destroy();
  });

  test("5: Session Expiry Interval 0xFFFFFFFF (never) is capped to limits.maxSessionExpiry too", async () => {
    const id = uid("capmax");
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: id, properties: { sessionExpiryInterval: 0xffffffff } });
    expect(ack.properties?.sessionExpiryInterval).toBe(3600);
    expect(b.broker.sessions.get(id)?.expiryInterval).toBe(3600);
    c.destroy();
  });

  test("5: Session Expiry Interval absent → 0, no property in CONNACK; the session ends with the connection", async () => {
    const id = uid("noexp");
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: id });
    expect(ack.properties?.sessionExpiryInterval).toBeUndefined();
    c.destroy();
    await waitFor(() => !b.broker.sessions.has(id), 3000, "session gone");
  });

  test("5: Session Present 1 when resuming a stored session, 0 after Clean Start 1 [MQTT-3.2.2-2], [MQTT-3.2.2-3]", async () => {
    const id = uid("resume");
    const a = await RawClient.connected(b.port, 5, { clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } });
    a.destroy();
    await waitFor(() => b.broker.sessions.get(id)?.conn === null, 3000, "detached");
    const r = await RawClient.connect(b.port, 5);
    expect((await r.handshake({ clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })).sessionPresent).toBe(true);
    r.destroy();
    await waitFor(() => b.broker.sessions.get(id)?.conn === null, 3000, "detached");
    const n = await RawClient.connect(b.port, 5);
    expect((await n.handshake({ clientId: id, clean: true })).sessionPresent).toBe(false);
    n.destroy();
  });
});

describe("limits.maxKeepalive (60 s)", () => {
  const k = useTestBroker({ limits: { maxKeepalive: 60 } });

  test("5: Keep Alive 120 → CONNACK Server Keep Alive 60, and 60 is what the broker enforces [MQTT-3.2.2-21]", async () => {
    const id = uid("ka120");
    const c = await RawClient.connect(k.port, 5);
    const ack = await c.handshake({ clientId: id, keepalive: 120 });
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.serverKeepAlive).toBe(60);
    expect(connOf(k, id)?.keepalive).toBe(60);
    c.destroy();
  });

  test("5: Keep Alive 0 (off) → Server Keep Alive 60 [MQTT-3.2.2-21]", async () => {
    const id = uid("ka0");
    const c = await RawClient.connect(k.port, 5);
    const ack = await c.handshake({ clientId: id, keepalive: 0 });
    expect(ack.properties?.serverKeepAlive).toBe(60);
    expect(connOf(k, id)?.keepalive).toBe(60);
    c.destroy();
  });

  test("5: Keep Alive 30 (within the limit) → no Server Keep Alive, the client's 30 applies [MQTT-3.2.2-22]", async () => {
    const id = uid("ka30");
    const c = await RawClient.connect(k.port, 5);
    const ack = await c.handshake({ clientId: id, keepalive: 30 });
    expect(ack.properties?.serverKeepAlive).toBeUndefined();
    expect(connOf(k, id)?.keepalive).toBe(30);
    c.destroy();
  });

  test("3.1.1: Keep Alive 120 above the limit → CONNACK 0x02 then close (policy: 3.1.1 has no Server Keep Alive)", async () => {
    const c = await rawOpen(k.port, 4, connectBytes({ keepalive: 120, payload: [field("ka311")] }));
    await expectV3Refusal(c, 0x02);
  });

  test("3.1.1: Keep Alive 0 with a limit set → CONNACK 0x02 then close (policy)", async () => {
    const c = await rawOpen(k.port, 4, connectBytes({ keepalive: 0, payload: [field("ka311z")] }));
    await expectV3Refusal(c, 0x02);
  });

  test("3.1.1: Keep Alive 60 (at the limit) is accepted", async () => {
    const c = await rawOpen(k.port, 4, connectBytes({ keepalive: 60, payload: [field("ka311ok")] }));
    expect((await c.next()).returnCode).toBe(0);
    c.destroy();
  });
});

describe("pipelining after CONNECT [MQTT-3.1.4-5] 3.1.1 / [MQTT-3.1.4-6] 5", () => {
  for (const version of [4, 5] as const) {
    test(`v${version}: SUBSCRIBE, PUBLISH, PINGREQ in the same write as CONNECT are processed after CONNACK`, async () => {
      const id = uid(`pipe${version}`);
      const c = await RawClient.connect(b.port, version);
      c.write(
        Buffer.concat([
          encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: version, clean: true, keepalive: 0, clientId: id }, version),
          encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "pipe/t", qos: 1 }] }, version),
          encode({ cmd: "publish", topic: "pipe/t", payload: Buffer.from("piped"), qos: 1, messageId: 2 }, version),
          encode({ cmd: "pingreq" }, version),
        ]),
      );
      const got: Packet[] = [];
      for (let i = 0; i < 5; i++) got.push(await c.next());
      expect(got[0]!.cmd).toBe("connack"); // CONNACK is the first packet sent [MQTT-3.2.0-1]
      expect(version === 5 ? got[0]!.reasonCode : got[0]!.returnCode).toBe(0);
      const cmds = got.map((p) => p.cmd);
      expect(cmds.indexOf("suback")).toBeLessThan(cmds.indexOf("publish"));
      expect(cmds.slice().sort()).toEqual(["connack", "pingresp", "puback", "publish", "suback"]);
      expect(cmds[4]).toBe("pingresp"); // PINGREQ was last, so is its answer
      expect(got.find((p) => p.cmd === "suback")!.messageId).toBe(1);
      expect(got.find((p) => p.cmd === "puback")!.messageId).toBe(2);
      expect(got.find((p) => p.cmd === "publish")!.payload.toString()).toBe("piped");
      c.destroy();
    });
  }

  test("3.1.1: after a refused CONNECT (empty id, Clean Session 0) the pipelined SUBSCRIBE/PUBLISH are not processed", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("refused/t", { qos: 1 });
    const c = await RawClient.connect(b.port, 4);
    c.write(
      Buffer.concat([
        connectBytes({ flags: 0x00, payload: [field("")] }),
        encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "refused/#", qos: 1 }] }),
        encode({ cmd: "publish", topic: "refused/t", payload: Buffer.from("must not"), qos: 1, messageId: 2, retain: true }),
        encode({ cmd: "pingreq" }),
      ]),
    );
    await expectV3Refusal(c, 0x02);
    await Bun.sleep(100);
    expect(w.messages.length).toBe(0);
    expect(b.broker.retainedMessage("refused/t")).toBeNull();
    await w.end();
  });

  test("5: after a refused CONNECT (Receive Maximum 0) the pipelined PUBLISH is not processed", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("refused5/t", { qos: 1 });
    const c = await RawClient.connect(b.port, 5);
    c.write(
      Buffer.concat([
        connectBytes({ level: 5, props: prop(0x21, u16(0)), payload: [field(uid("r5"))] }),
        encode({ cmd: "publish", topic: "refused5/t", payload: Buffer.from("must not"), qos: 0, retain: true }, 5),
        encode({ cmd: "pingreq" }, 5),
      ]),
    );
    await expectV5Refusal(c, 0x82);
    await Bun.sleep(100);
    expect(w.messages.length).toBe(0);
    expect(b.broker.retainedMessage("refused5/t")).toBeNull();
    await w.end();
  });

  test("after a CONNECT with an unsupported level the pipelined PUBLISH is not processed", async () => {
    const w = await connectClient(b.port, {});
    await w.client.subscribeAsync("refusedlvl/t", { qos: 1 });
    const c = await RawClient.connect(b.port, 4);
    c.write(Buffer.concat([connectBytes({ level: 6, payload: [field("lvl")] }), encode({ cmd: "publish", topic: "refusedlvl/t", payload: Buffer.from("no"), qos: 0, retain: true })]));
    await expectV3Refusal(c, 0x01);
    await Bun.sleep(100);
    expect(w.messages.length).toBe(0);
    expect(b.broker.retainedMessage("refusedlvl/t")).toBeNull();
    await w.end();
  });
});

describe("connect timeout (limits.connectTimeoutMs 300; §3.1.4 step 1)", () => {
  const t = useTestBroker({ limits: { connectTimeoutMs: 300 } });

  test("a socket that sends nothing is closed, with zero bytes sent", async () => {
    const c = await RawClient.connect(t.port, 4);
    expect(await c.waitClose(3000)).toBe(true);
    expect(hex(c)).toBe("");
    await waitFor(() => t.broker.connections.size === 0, 3000, "connection forgotten");
  });

  test("a socket that sends only part of a CONNECT is closed too", async () => {
    const c = await RawClient.connect(t.port, 4);
    c.write(encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: "slow" }).subarray(0, 6));
    expect(await c.waitClose(3000)).toBe(true);
    expect(hex(c)).toBe("");
  });

  test("a connected client (Keep Alive 0) is not affected by the connect timeout", async () => {
    const c = await RawClient.connected(t.port, 4, { clientId: "patient", keepalive: 0 });
    await Bun.sleep(800);
    await expectAlive(c);
    c.destroy();
  });
});

describe("authentication (auth.users, allowAnonymous false)", () => {
  let a: RunningBroker;
  beforeAll(async () => {
    const hash = await Bun.password.hash("hunter2", { algorithm: "bcrypt", cost: 4 });
    a = await startTestBroker({
      auth: {
        allowAnonymous: false,
        users: [
          { username: "alice", password: "secret" },
          { username: "bob", password: hash },
        ],
      },
    });
  });
  afterAll(() => a.stop());

  const login = (level: 3 | 4 | 5, id: string, user?: string, pass?: string) =>
    connectBytes({
      level,
      flags: 0x02 | (user !== undefined ? 0x80 : 0) | (pass !== undefined ? 0x40 : 0),
      payload: [field(id), ...(user !== undefined ? [field(user)] : []), ...(pass !== undefined ? [field(pass)] : [])],
    });

  test("3.1.1: right user name and password → CONNACK 0x00", async () => {
    const c = await rawOpen(a.port, 4, login(4, "alice1", "alice", "secret"));
    expect((await c.next()).returnCode).toBe(0);
    expect(hex(c)).toBe("20020000");
    c.destroy();
  });

  test("3.1.1: wrong password → CONNACK 0x04, close, no session created (§3.1.4 step 3)", async () => {
    const c = await rawOpen(a.port, 4, login(4, "alice2", "alice", "wrong"));
    await expectV3Refusal(c, 0x04);
    expect(a.broker.sessions.has("alice2")).toBe(false);
  });

  test("3.1.1: unknown user → CONNACK 0x04", async () => {
    const c = await rawOpen(a.port, 4, login(4, "mallory1", "mallory", "secret"));
    await expectV3Refusal(c, 0x04);
  });

  test("3.1.1: known user without a password → CONNACK 0x04", async () => {
    const c = await rawOpen(a.port, 4, login(4, "alice3", "alice"));
    await expectV3Refusal(c, 0x04);
  });

  test("3.1.1: no credentials while anonymous access is off → CONNACK 0x05", async () => {
    const c = await rawOpen(a.port, 4, login(4, "anon1"));
    await expectV3Refusal(c, 0x05);
  });

  test("3.1: wrong password → CONNACK 0x04; right one → 0x00", async () => {
    const bad = await rawOpen(a.port, 3, login(3, "alice31a", "alice", "nope"));
    await expectV3Refusal(bad, 0x04);
    const good = await rawOpen(a.port, 3, login(3, "alice31b", "alice", "secret"));
    expect((await good.next()).returnCode).toBe(0);
    good.destroy();
  });

  test("5: wrong password → CONNACK 0x86 [MQTT-3.1.4-2] 5", async () => {
    const c = await rawOpen(a.port, 5, login(5, "alice5a", "alice", "wrong"));
    await expectV5Refusal(c, 0x86);
  });

  test("5: no credentials → CONNACK 0x87", async () => {
    const c = await rawOpen(a.port, 5, login(5, "anon5"));
    await expectV5Refusal(c, 0x87);
  });

  test("5: right credentials → CONNACK 0x00", async () => {
    const c = await rawOpen(a.port, 5, login(5, "alice5b", "alice", "secret"));
    const ack = await c.next();
    expect(ack.reasonCode).toBe(0);
    await expectAlive(c);
    c.destroy();
  });

  test("hashed password (Bun.password, verified asynchronously): right one → 3.1.1 0x00 and v5 0x00", async () => {
    const c4 = await rawOpen(a.port, 4, login(4, "bob4", "bob", "hunter2"));
    expect((await c4.next(5000)).returnCode).toBe(0);
    await expectAlive(c4);
    const c5 = await rawOpen(a.port, 5, login(5, "bob5", "bob", "hunter2"));
    expect((await c5.next(5000)).reasonCode).toBe(0);
    await expectAlive(c5);
    c4.destroy();
    c5.destroy();
  });

  test("hashed password: wrong one → 3.1.1 CONNACK 0x04, v5 CONNACK 0x86", async () => {
    const c4 = await rawOpen(a.port, 4, login(4, "bob4w", "bob", "hunter3"));
    await expectV3Refusal(c4, 0x04);
    const c5 = await rawOpen(a.port, 5, login(5, "bob5w", "bob", "hunter3"));
    await expectV5Refusal(c5, 0x86);
    expect(a.broker.sessions.has("bob4w")).toBe(false);
    expect(a.broker.sessions.has("bob5w")).toBe(false);
  });

  for (const version of [4, 5] as const) {
    test(`v${version} hashed password: packets pipelined behind the CONNECT are processed after CONNACK, in order [MQTT-3.1.4-5]`, async () => {
      const c = await RawClient.connect(a.port, version);
      c.write(
        Buffer.concat([
          login(version, `bobpipe${version}`, "bob", "hunter2"),
          encode({ cmd: "subscribe", messageId: 5, subscriptions: [{ topic: "hash/t", qos: 1 }] }, version),
          encode({ cmd: "publish", topic: "hash/t", payload: Buffer.from("after auth"), qos: 1, messageId: 6 }, version),
          encode({ cmd: "pingreq" }, version),
        ]),
      );
      const got: Packet[] = [];
      for (let i = 0; i < 5; i++) got.push(await c.next(5000));
      expect(got[0]!.cmd).toBe("connack");
      expect(version === 5 ? got[0]!.reasonCode : got[0]!.returnCode).toBe(0);
      const cmds = got.map((p) => p.cmd);
      expect(cmds[1]).toBe("suback");
      expect(cmds.slice().sort()).toEqual(["connack", "pingresp", "puback", "publish", "suback"]);
      expect(cmds[4]).toBe("pingresp");
      expect(got.find((p) => p.cmd === "publish")!.payload.toString()).toBe("after auth");
      c.destroy();
    });
  }

  test("hashed password, wrong: packets pipelined behind the CONNECT are dropped [MQTT-3.1.4-5]", async () => {
    const w = await RawClient.connected(a.port, 4, { clientId: "watcher", username: "alice", password: Buffer.from("secret") });
    w.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "hashbad/t", qos: 1 }] });
    await w.nextOf("suback");
    const c = await RawClient.connect(a.port, 4);
    c.write(
      Buffer.concat([
        login(4, "bobbad", "bob", "wrong"),
        encode({ cmd: "publish", topic: "hashbad/t", payload: Buffer.from("must not"), qos: 1, messageId: 1, retain: true }),
        encode({ cmd: "pingreq" }),
      ]),
    );
    await expectV3Refusal(c, 0x04);
    await Bun.sleep(100);
    expect(w.pending()).toEqual([]);
    expect(a.broker.retainedMessage("hashbad/t")).toBeNull();
    w.destroy();
  });

  test("v5 hashed password: a second CONNECT pipelined behind the first → CONNACK 0x00, then DISCONNECT 0x82 [MQTT-3.1.0-2]", async () => {
    const c = await RawClient.connect(a.port, 5);
    c.write(Buffer.concat([login(5, "bobtwice", "bob", "hunter2"), login(5, "bobtwice", "bob", "hunter2")]));
    const ack = await c.next(5000);
    expect(ack.cmd).toBe("connack");
    expect(ack.reasonCode).toBe(0);
    const d = await c.next(3000);
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x82);
    expect(await c.waitClose()).toBe(true);
  });

  test("a socket that closes while its hashed password is being verified leaves no session or client behind", async () => {
    const before = a.broker.clients;
    const c = await RawClient.connect(a.port, 4);
    c.write(login(4, "bobgone", "bob", "hunter2"));
    await Bun.sleep(1);
    c.destroy();
    await Bun.sleep(300);
    expect(a.broker.clients).toBe(before);
    expect(a.broker.sessions.has("bobgone")).toBe(false);
    // The broker still serves new clients.
    const n = await rawOpen(a.port, 4, login(4, "alice-after", "alice", "secret"));
    expect((await n.next()).returnCode).toBe(0);
    n.destroy();
  });

  test("a refused CONNECT for an id with a stored session: CONNACK 0x04 with Session Present 0, and the session survives [MQTT-3.2.2-4]", async () => {
    const first = await rawOpen(a.port, 4, connectBytes({ flags: 0xc0, payload: [field("alicekeep"), field("alice"), field("secret")] }));
    expect((await first.next()).returnCode).toBe(0);
    first.destroy();
    await waitFor(() => a.broker.sessions.get("alicekeep")?.conn === null, 3000, "detached");
    const bad = await rawOpen(a.port, 4, connectBytes({ flags: 0xc0, payload: [field("alicekeep"), field("alice"), field("wrong")] }));
    await expectV3Refusal(bad, 0x04); // 20 02 00 04: Session Present 0 on a refusal
    const again = await rawOpen(a.port, 4, connectBytes({ flags: 0xc0, payload: [field("alicekeep"), field("alice"), field("secret")] }));
    const ack = await again.next();
    expect(ack.returnCode).toBe(0);
    expect(ack.sessionPresent).toBe(true);
    again.destroy();
  });

  test("5: the password is binary data, not UTF-8: bytes FF FE ED A0 80 are just a wrong password (0x86, not 0x81)", async () => {
    const c = await rawOpen(a.port, 5, connectBytes({ level: 5, flags: 0xc2, payload: [field("alicebin"), field("alice"), field([0xff, 0xfe, 0xed, 0xa0, 0x80])] }));
    await expectV5Refusal(c, 0x86);
  });

  test("hashed password: 100 packets pipelined behind the CONNECT are all processed after CONNACK, in order [MQTT-3.1.4-5]", async () => {
    const c = await RawClient.connect(a.port, 4);
    const pings = Buffer.alloc(200);
    for (let i = 0; i < 100; i++) pings[i * 2] = 0xc0;
    c.write(Buffer.concat([login(4, "bobflood", "bob", "hunter2"), pings]));
    const ack = await c.next(5000);
    expect(ack.cmd).toBe("connack");
    expect(ack.returnCode).toBe(0);
    for (let i = 0; i < 100; i++) expect((await c.next(5000)).cmd).toBe("pingresp");
    c.destroy();
  });

  test("a refused CONNECT does not take over the live connection with the same id (hashed password)", async () => {
    const live = await rawOpen(a.port, 4, login(4, "bobshared", "bob", "hunter2"));
    expect((await live.next(5000)).returnCode).toBe(0);
    const c = await rawOpen(a.port, 4, login(4, "bobshared", "bob", "nope"));
    await expectV3Refusal(c, 0x04);
    await expectAlive(live);
    live.destroy();
  });
});
