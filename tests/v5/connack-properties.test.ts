/**
 * MQTT 5 CONNACK properties and server-side information (CHECKLIST 9i, 9g,
 * §4.11): Server Keep Alive and its enforcement, Assigned Client Identifier,
 * Reason Strings under Request Problem Information ([MQTT-3.1.2-29]),
 * Response Information ([MQTT-3.1.2-28]), server redirection (config
 * mqtt.redirect → 0x9C / 0x9D with Server Reference; 3.1.1 → 0x03).
 *
 * Already covered in tests/protocol/01-connect.test.ts: the advertised limits
 * and features, Server Keep Alive for Keep Alive 120 / 0 / 30 with a 60 s
 * limit, two different Assigned Client Identifiers; 08-keepalive: a 1 s
 * Server Keep Alive closing a silent client.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker } from "../helpers/broker.ts";
import { field, frame, u32, varint } from "../helpers/bytes.ts";
import { uid, usePool } from "../helpers/pool.ts";
import type { RawClient } from "../helpers/raw.ts";
import { drop, framesOf, subscribe } from "./util.ts";

let b: RunningBroker; // responseInformation "reply/"
let ka: RunningBroker; // limits.maxKeepalive 2, no responseInformation
let moved: RunningBroker; // redirect, permanent
let away: RunningBroker; // redirect, temporary
beforeAll(async () => {
  [b, ka, moved, away] = await Promise.all([
    startTestBroker({ mqtt: { responseInformation: "reply/" } }),
    startTestBroker({ limits: { maxKeepalive: 2 } }),
    startTestBroker({ mqtt: { redirect: { serverReference: "broker2.example:1883", permanent: true } } }),
    startTestBroker({ mqtt: { redirect: { serverReference: "broker3.example:8883", permanent: false } } }),
  ]);
});
afterAll(async () => {
  await Promise.all([b, ka, moved, away].map((x) => x.stop()));
});

const pool = usePool();

async function connack(rb: RunningBroker, opts: Record<string, unknown>, version: 4 | 5 = 5) {
  const c = await pool.socket(rb, version, (opts.clientId as string | undefined) ?? "");
  const ack = await c.handshake(opts);
  expect(ack.cmd).toBe("connack");
  return { c, ack };
}

/** Frames received after the first `skip` (e.g. after CONNACK), as hex strings. */
const hexFrames = (c: RawClient, skip: number) => framesOf(c).slice(skip).map((f) => f.toString("hex"));

describe("Server Keep Alive (limits.maxKeepalive 2) [MQTT-3.2.2-21] [MQTT-3.2.2-22]", () => {
  test("asked 60 → told 2, and 2 s is enforced at 1.5×: still open at 2.4 s, DISCONNECT 0x8D by 4.5 s; asked 1 (within the limit) → no Server Keep Alive, closed after about 1.5 s", async () => {
    const long = await connack(ka, { clientId: uid("ka-60"), keepalive: 60 });
    expect(long.ack.properties?.serverKeepAlive).toBe(2);
    const short = await connack(ka, { clientId: uid("ka-1"), keepalive: 1 });
    expect(short.ack.properties?.serverKeepAlive).toBeUndefined();
    const t0 = Date.now();
    const closedAt = async (c: RawClient) => {
      const d = await c.next(5000);
      expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x8d]);
      expect(await c.waitClose()).toBe(true);
      return Date.now() - t0;
    };
    const [tLong, tShort] = await Promise.all([closedAt(long.c), closedAt(short.c)]);
    expect(tShort).toBeGreaterThanOrEqual(1200);
    expect(tShort).toBeLessThan(2400);
    expect(tLong).toBeGreaterThanOrEqual(2400); // 1 × 2 s would have closed it by ~2.25 s
    expect(tLong).toBeLessThan(4500);
  }, 10000);

  test("the limit is not a Response Information offer: requested on a broker without mqtt.responseInformation → none [MQTT-3.1.2-28]", async () => {
    const { ack } = await connack(ka, { clientId: uid("ka-ri"), keepalive: 1, properties: { requestResponseInformation: true } });
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.responseInformation).toBeUndefined();
  });
});

describe("Assigned Client Identifier [MQTT-3.2.2-16] and Response Information [MQTT-3.1.2-28]", () => {
  test("the Assigned Client Identifier names a real session: resuming with it (Clean Start 0) gives Session Present 1", async () => {
    // Empty Client ID with Clean Start 0 (legal in v5, [MQTT-3.1.3-7]); mqtt-packet refuses to encode it, so by hand:
    // "MQTT", level 5, flags 00, keep alive 0, properties { Session Expiry 60 }, Client ID "".
    const props = Buffer.concat([Buffer.from([0x11]), u32(60)]);
    const c = await pool.socket(b, 5);
    c.write(frame(0x10, field("MQTT"), Buffer.from([5, 0x00, 0, 0]), varint(props.length), props, field("")));
    const first = { c, ack: await c.next() };
    expect([first.ack.cmd, first.ack.reasonCode, first.ack.sessionPresent]).toEqual(["connack", 0, false]);
    const id = first.ack.properties?.assignedClientIdentifier as string;
    expect(typeof id).toBe("string");
    expect(id.length).toBeGreaterThan(0);
    await subscribe(first.c, [{ topic: "ca/assigned", qos: 1 }]);
    await drop(b, first.c, id);
    const again = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    expect(again.ack.sessionPresent).toBe(true);
    expect(again.ack.properties?.assignedClientIdentifier).toBeUndefined();
    expect(b.broker.sessions.get(id)?.subs.has("ca/assigned")).toBe(true);
  });

  test("Response Information: requested → the configured prefix + client id (also for an assigned id); not requested or Request Response Information 0 → none", async () => {
    const id = uid("ca-ri");
    const asked = await connack(b, { clientId: id, properties: { requestResponseInformation: true } });
    expect(asked.ack.properties?.responseInformation).toBe(`reply/${id}`);
    const assigned = await connack(b, { clientId: "", properties: { requestResponseInformation: true } });
    expect(assigned.ack.properties?.responseInformation).toBe(`reply/${assigned.ack.properties?.assignedClientIdentifier}`);
    const zero = await connack(b, { clientId: uid("ca-ri0"), properties: { requestResponseInformation: false } });
    expect(zero.ack.properties?.responseInformation).toBeUndefined();
    const absent = await connack(b, { clientId: uid("ca-rin") });
    expect(absent.ack.properties?.responseInformation).toBeUndefined();
  });
});

describe("Reason Strings and Request Problem Information [MQTT-3.1.2-29]", () => {
  test("a refused CONNECT gets a CONNACK with a Reason String (allowed on CONNACK even with Request Problem Information 0)", async () => {
    for (const rpi of [true, false]) {
      const { c, ack } = await connack(b, { clientId: uid("ca-rs"), properties: { receiveMaximum: 0, requestProblemInformation: rpi } });
      expect(ack.reasonCode).toBe(0x82);
      expect(typeof ack.properties?.reasonString).toBe("string");
      expect(ack.properties?.serverReference).toBeUndefined(); // only with 0x9C / 0x9D (§3.2.2.3.16)
      expect(await c.waitClose()).toBe(true);
    }
  });

  test("the Reason String is left out of a refusing CONNACK when it would exceed the client's Maximum Packet Size (20) [MQTT-3.2.2-19]", async () => {
    const { c, ack } = await connack(b, { clientId: uid("ca-rs-small"), properties: { receiveMaximum: 0, maximumPacketSize: 20 } });
    expect(ack.reasonCode).toBe(0x82);
    expect(await c.waitClose()).toBe(true);
    const frames = framesOf(c);
    expect(frames.length).toBe(1);
    expect(frames[0]!.length).toBeLessThanOrEqual(20);
  });

  test("Request Problem Information 0: PUBACK 0x10, PUBREC 0x87, PUBREL 0x92, PUBCOMP 0x92, SUBACK 0x8F, UNSUBACK 0x11 carry no Reason String or User Property (exact bytes); a DISCONNECT may", async () => {
    const { c } = await connack(b, { clientId: uid("ca-rpi0"), properties: { requestProblemInformation: false } });
    const skip = framesOf(c).length;
    c.send({ cmd: "publish", topic: "ca/nobody", payload: Buffer.from("x"), qos: 1, messageId: 1 });
    expect((await c.next()).cmd).toBe("puback");
    c.send({ cmd: "publish", topic: "$SYS/ca", payload: Buffer.from("x"), qos: 2, messageId: 2 });
    expect((await c.next()).cmd).toBe("pubrec");
    c.send({ cmd: "pubrec", messageId: 3 });
    expect((await c.next()).cmd).toBe("pubrel");
    c.send({ cmd: "pubrel", messageId: 4 });
    expect((await c.next()).cmd).toBe("pubcomp");
    c.send({ cmd: "subscribe", messageId: 5, subscriptions: [{ topic: "ca/#/bad", qos: 0 }] });
    expect((await c.next()).cmd).toBe("suback");
    c.send({ cmd: "unsubscribe", messageId: 6, unsubscriptions: ["ca/none"] });
    expect((await c.next()).cmd).toBe("unsuback");
    expect(hexFrames(c, skip)).toEqual([
      "4003000110", // PUBACK id 1, 0x10, no properties
      "5003000287", // PUBREC id 2, 0x87
      "6203000392", // PUBREL id 3, 0x92
      "7003000492", // PUBCOMP id 4, 0x92
      "90040005008f", // SUBACK id 5, property length 0, 0x8F
      "b00400060011", // UNSUBACK id 6, property length 0, 0x11
    ]);
    // A DISCONNECT is one of the packets that may still carry a Reason String.
    c.send({ cmd: "publish", topic: "ca/+/bad", payload: Buffer.from("x"), qos: 0 });
    const d = await c.next();
    expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x82]);
    expect(d.properties?.userProperties).toBeUndefined();
  });

  test("Request Problem Information 1 (the default): the server's DISCONNECT for a protocol error carries a Reason String, and no Server Reference", async () => {
    const { c } = await connack(b, { clientId: uid("ca-rpi1") });
    c.send({ cmd: "publish", topic: "ca/+/bad", payload: Buffer.from("x"), qos: 0 });
    const d = await c.next();
    expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x82]);
    expect(typeof d.properties?.reasonString).toBe("string");
    expect((d.properties?.reasonString as string).length).toBeGreaterThan(0);
    expect(d.properties?.serverReference).toBeUndefined(); // §3.14.2.2.5
  });
});

describe("server redirection (config mqtt.redirect, v5 §4.11)", () => {
  test("permanent: v5 CONNACK 0x9D (Server moved) with the Server Reference, then close; no session is created", async () => {
    const id = uid("rd-moved");
    const { c, ack } = await connack(moved, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(ack.reasonCode).toBe(0x9d);
    expect(ack.sessionPresent).toBe(false);
    expect(ack.properties?.serverReference).toBe("broker2.example:1883");
    expect(await c.waitClose()).toBe(true);
    expect(moved.broker.sessions.has(id)).toBe(false);
  });

  test("temporary: v5 CONNACK 0x9C (Use another server) with the Server Reference, then close", async () => {
    const { c, ack } = await connack(away, { clientId: uid("rd-away") });
    expect(ack.reasonCode).toBe(0x9c);
    expect(ack.properties?.serverReference).toBe("broker3.example:8883");
    expect(await c.waitClose()).toBe(true);
  });

  test("3.1.1 clients cannot be redirected: CONNACK 0x03 (server unavailable), exactly 20 02 00 03, then close", async () => {
    for (const rb of [moved, away]) {
      const { c, ack } = await connack(rb, { clientId: uid("rd-311") }, 4);
      expect(ack.returnCode).toBe(3);
      expect(await c.waitClose()).toBe(true);
      expect(Buffer.concat(c.received).toString("hex")).toBe("20020003");
    }
  });
});
