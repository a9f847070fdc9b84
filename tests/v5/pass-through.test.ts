/**
 * MQTT 5 PUBLISH properties the broker forwards unchanged (CHECKLIST 9f, 9g,
 * 9h): Payload Format Indicator ([MQTT-3.3.2-4]), Content Type
 * ([MQTT-3.3.2-20]), Response Topic ([MQTT-3.3.2-15]), Correlation Data
 * ([MQTT-3.3.2-16]) and User Properties in their original order, repeated
 * and integer-like names included ([MQTT-3.3.2-17], [MQTT-3.3.2-18]).
 *
 * The PUBLISH is built by hand and the raw bytes the subscriber receives are
 * compared: a decoder that turns User Properties into an object (mqtt-packet,
 * MQTT.js) would hide a reordering (CHECKLIST 14.14).
 *
 * Already covered: the decoded values through the parser and MQTT.js
 * (tests/protocol/03-publish.test.ts), the will's properties and their order
 * (07-will), retained properties decoded (04-retain).
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker } from "../helpers/broker.ts";
import { field, frame, u16, u32, varint } from "../helpers/bytes.ts";
import { connectClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";
import type { RawClient } from "../helpers/raw.ts";
import { drop, expectDisconnect, P, parsePublish, propEntries, publishBytes, publishFramesOf, subscribe } from "./util.ts";

const b = useTestBroker();
const pool = usePool();

/** The pass-through properties under test, in a deliberately awkward order. */
const PROPS = Buffer.concat([
  P.user("a", "1"),
  P.pfi(1),
  P.user("b", "2"),
  P.contentType("text/plain; charset=utf-8"),
  P.user("a", "3"),
  P.responseTopic("pt/reply/é"),
  P.user("7", "integer-like name"),
  P.correlation(Buffer.from([0x00, 0x01, 0xff, 0x80])),
  P.user("é", "ü"),
  P.user("a", ""),
  P.user("1", "one"),
]);

/** Wait for `n` PUBLISH packets (completing QoS 1/2 flows) and return the last `n` raw PUBLISH frames. */
async function rawPublishes(c: RawClient, n: number, v5 = true) {
  for (let i = 0; i < n; i++) {
    const m = await c.nextOf("publish");
    if (m.qos === 1) c.send({ cmd: "puback", messageId: m.messageId });
    if (m.qos === 2) c.send({ cmd: "pubrec", messageId: m.messageId });
  }
  return publishFramesOf(c).slice(-n).map((f) => ({ frame: f, ...parsePublish(f, v5) }));
}

let pid = 100;
/** Send a hand-built v5 PUBLISH and wait for its acknowledgement. */
async function sendRaw(p: RawClient, topic: string, qos: 0 | 1 | 2, props: Buffer, payload = "payload", retain = false): Promise<void> {
  const packetId = ++pid;
  p.write(publishBytes({ v5: true, topic, qos, packetId, props, payload, retain }));
  if (qos === 1) expect((await p.nextOf("puback")).messageId).toBe(packetId);
  if (qos === 2) {
    expect((await p.nextOf("pubrec")).messageId).toBe(packetId);
    p.send({ cmd: "pubrel", messageId: packetId });
    await p.nextOf("pubcomp");
  }
}

describe("v5 → v5: the property bytes arrive unchanged", () => {
  test("QoS 0, 1 and 2: PFI, Content Type, Response Topic, Correlation Data and User Properties a=1, b=2, a=3, 7=…, é=ü, a=\"\", 1=one — byte for byte, in the original order", async () => {
    const s = await pool.raw(b, 5, "pt-sub");
    await subscribe(s, [{ topic: "pt/t", qos: 2 }]);
    const p = await pool.raw(b, 5, "pt-pub");
    for (const qos of [0, 1, 2] as const) await sendRaw(p, "pt/t", qos, PROPS, `q${qos}`);
    const got = await rawPublishes(s, 3);
    for (const [i, g] of got.entries()) {
      expect(g.qos).toBe(i);
      expect(g.payload.toString()).toBe(`q${i}`);
      expect(g.props!.equals(PROPS)).toBe(true);
    }
  });

  test("per-hop properties are handled around them: Message Expiry (sent in the middle) re-encoded with the time left, the publisher's Topic Alias removed, the subscriber's Subscription Identifier added — every other entry keeps its bytes and relative order", async () => {
    const s = await pool.raw(b, 5, "pt-hop");
    await subscribe(s, [{ topic: "pt/hop", qos: 1 }], { subscriptionIdentifier: 9 });
    const p = await pool.raw(b, 5, "pt-hop-pub");
    const keep = [P.user("a", "1"), P.contentType("ct"), P.user("b", "2"), P.user("a", "3")];
    const sent = Buffer.concat([keep[0]!, P.expiry(100), keep[1]!, P.alias(5), keep[2]!, keep[3]!]);
    await sendRaw(p, "pt/hop", 1, sent);
    const [g] = await rawPublishes(s, 1);
    const entries = propEntries(g!.props!);
    expect(g!.topic.toString()).toBe("pt/hop");
    expect(entries.filter((e) => e.id === 0x23)).toEqual([]);
    expect(entries.filter((e) => e.id === 0x0b).map((e) => [...e.bytes])).toEqual([[0x0b, 9]]);
    const exp = entries.filter((e) => e.id === 0x02);
    expect(exp.length).toBe(1);
    const left = exp[0]!.bytes.readUInt32BE(1);
    expect(left).toBeGreaterThanOrEqual(99);
    expect(left).toBeLessThanOrEqual(100);
    const rest = entries.filter((e) => e.id !== 0x02 && e.id !== 0x0b);
    expect(Buffer.concat(rest.map((e) => e.bytes)).equals(Buffer.concat(keep))).toBe(true);
  });

  test("explicit defaults and empty values are forwarded as sent: PFI 0 (01 00), empty Content Type, empty Correlation Data, a user property with empty name and value", async () => {
    const s = await pool.raw(b, 5, "pt-empty");
    await subscribe(s, [{ topic: "pt/empty", qos: 0 }]);
    const p = await pool.raw(b, 5, "pt-empty-pub");
    const props = Buffer.concat([P.pfi(0), P.contentType(""), P.correlation(Buffer.alloc(0)), P.user("", "")]);
    await sendRaw(p, "pt/empty", 0, props);
    const [g] = await rawPublishes(s, 1);
    expect([...g!.props!]).toEqual([...props]);
  });

  test("a retained message and a message queued for an offline session keep the same bytes", async () => {
    const p = await pool.raw(b, 5, "pt-stored-pub");
    const id = uid("pt-offline");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const off = await pool.raw(b, 5, "x", opts);
    await subscribe(off, [{ topic: "pt/stored", qos: 1, rh: 2 }]);
    await drop(b, off, id);
    await sendRaw(p, "pt/stored", 1, PROPS, "stored", true);

    const late = await pool.raw(b, 5, "pt-retained");
    await subscribe(late, [{ topic: "pt/stored", qos: 1 }]);
    const [r] = await rawPublishes(late, 1);
    expect([r!.retain, r!.payload.toString()]).toEqual([true, "stored"]);
    expect(r!.props!.equals(PROPS)).toBe(true);

    const back = await pool.raw(b, 5, "x", opts);
    const [q] = await rawPublishes(back, 1);
    expect(q!.payload.toString()).toBe("stored");
    expect(q!.props!.equals(PROPS)).toBe(true);
    back.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await sendRaw(p, "pt/stored", 1, Buffer.alloc(0), "", true);
  });
});

describe("other receivers", () => {
  test("a 3.1.1 subscriber gets the message without any property, as exact 3.1.1 bytes (QoS 0 and QoS 1)", async () => {
    const s = await pool.raw(b, 4, "pt-v4");
    await subscribe(s, [{ topic: "pt/v4", qos: 1 }]);
    const p = await pool.raw(b, 5, "pt-v4-pub");
    await sendRaw(p, "pt/v4", 0, PROPS, "zero");
    await sendRaw(p, "pt/v4", 1, PROPS, "one");
    const got = await rawPublishes(s, 2, false);
    expect([...got[0]!.frame]).toEqual([...frame(0x30, field("pt/v4"), Buffer.from("zero"))]);
    expect([...got[1]!.frame]).toEqual([...frame(0x32, field("pt/v4"), u16(got[1]!.packetId), Buffer.from("one"))]);
  });

  test("MQTT.js v5 decodes the forwarded properties: a repeated name becomes the list of its values in order", async () => {
    const s = await connectClient(b.port, { protocolVersion: 5 });
    await s.client.subscribeAsync("pt/js", { qos: 1 });
    const p = await pool.raw(b, 5, "pt-js-pub");
    await sendRaw(p, "pt/js", 1, PROPS);
    await s.waitMessages(1);
    const pr = s.messages[0]!.properties!;
    expect(pr.payloadFormatIndicator).toBe(true);
    expect(pr.contentType).toBe("text/plain; charset=utf-8");
    expect(pr.responseTopic).toBe("pt/reply/é");
    expect([...(pr.correlationData as Buffer)]).toEqual([0x00, 0x01, 0xff, 0x80]);
    expect({ ...(pr.userProperties as object) }).toEqual({ a: ["1", "3", ""], b: "2", 7: "integer-like name", "é": "ü", 1: "one" });
    await s.end();
  });
});

describe("what is forwarded must be valid (v5 §2.2.2.2, CHECKLIST 9f, 9g)", () => {
  const bad: [string, Buffer, number][] = [
    ["Payload Format Indicator 2 (only 0 and 1 are defined)", P.pfi(2), 0x81],
    ["Content Type that is not UTF-8 (C3 28) [MQTT-3.3.2-19]", Buffer.concat([Buffer.from([0x03]), field([0xc3, 0x28])]), 0x81],
    ["Response Topic that is not UTF-8 (ED A0 80) [MQTT-3.3.2-13]", Buffer.concat([Buffer.from([0x08]), field([0x61, 0xed, 0xa0, 0x80])]), 0x81],
    ["Correlation Data twice", Buffer.concat([P.correlation(Buffer.from("a")), P.correlation(Buffer.from("b"))]), 0x82],
  ];
  for (const [what, props, code] of bad) {
    test(`PUBLISH with ${what} → DISCONNECT 0x${code.toString(16)}, and nothing is forwarded`, async () => {
      const s = await pool.raw(b, 5, "pt-bad-sub");
      await subscribe(s, [{ topic: "pt/bad", qos: 0 }]);
      const c = await pool.raw(b, 5, "pt-bad");
      c.write(publishBytes({ v5: true, topic: "pt/bad", qos: 0, props }));
      await expectDisconnect(c, code);
      expect(await s.drain(150)).toEqual([]);
    });
  }

  /** A v5 CONNECT with a will whose property section is `willProps` (raw bytes). */
  const connectWithWill = (clientId: string, willProps: Buffer) =>
    frame(0x10, field("MQTT"), Buffer.from([5, 0x02 | 0x04 | 0x08, 0, 0]), varint(0), field(clientId), varint(willProps.length), willProps, field("pt/will"), field("w"));

  const badWill: [string, Buffer][] = [
    ["Will Delay Interval twice", Buffer.concat([Buffer.from([0x18]), u32(5), Buffer.from([0x18]), u32(5)])],
    ["Message Expiry Interval twice", Buffer.concat([P.expiry(10), P.expiry(20)])],
    ["Content Type twice", Buffer.concat([P.contentType("a"), P.contentType("b")])],
    ["Payload Format Indicator twice (0, 0)", Buffer.concat([P.pfi(0), P.pfi(0)])],
  ];
  for (const [what, props] of badWill) {
    test(`will properties with ${what} → CONNACK 0x82 and close, no session (§3.1.3.2)`, async () => {
      const id = uid("pt-will");
      const c = await pool.socket(b, 5, id);
      c.write(connectWithWill(id, props));
      const ack = await c.next();
      expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x82]);
      expect(await c.waitClose()).toBe(true);
      expect(b.broker.sessions.has(id)).toBe(false);
    });
  }

  test("the same hand-built CONNECT with valid will properties is accepted (the builder is right)", async () => {
    const id = uid("pt-will-ok");
    const c = await pool.socket(b, 5, id);
    c.write(connectWithWill(id, Buffer.concat([Buffer.from([0x18]), u32(5), P.contentType("a"), P.user("k", "v"), P.user("k", "w")])));
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0]);
  });
});
