/**
 * Malformed packets and protocol errors (CHECKLIST areas 10 and 12, the
 * PUBLISH rows of 5a, and the "Test ideas" of area 12). Every bad input must
 * get a clear reaction — 3.1.1: close, with nothing sent (3.1.1 has no server
 * DISCONNECT); 5: DISCONNECT with the reason code, then close ([MQTT-4.13.1-1])
 * — and must harm no one else: a healthy MQTT.js client stays connected
 * through the whole file and is checked at the end of every test, together
 * with a brand-new connection.
 *
 * The broker runs with limits.maxPacketSize 1024.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { field, frame, prop, publishBytes, u16, u32, varint } from "../helpers/bytes.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { usePool } from "../helpers/pool.ts";
import { encode, type Packet, RawClient } from "../helpers/raw.ts";

// ---- broker, healthy client, helpers -----------------------------------------

let b: RunningBroker;
let healthy: TestClient;
let pings = 0;

beforeAll(async () => {
  b = await startTestBroker({ limits: { maxPacketSize: 1024 } });
  healthy = await connectClient(b.port, { protocolVersion: 5, clientId: "healthy", keepalive: 0 });
  await healthy.client.subscribeAsync("healthy/#", { qos: 1 });
});
afterAll(async () => {
  await healthy.end(true);
  await b.stop();
});

const onTopic = (prefix: string) => healthy.messages.filter((m) => m.topic.startsWith(prefix));
const bytesLen = (c: RawClient) => c.received.reduce((n, x) => n + x.length, 0);
let seq = 0;
const uid = (p: string) => `${p}-${++seq}`;

/**
 * The damage check, run at the end of every test: the healthy client is still
 * connected and its QoS 1 round trip works, no malformed message leaked to it
 * (anything published under healthy/bad/ was carried by a bad packet), a new
 * client is served, and the broker's connection count is back to just the
 * healthy client.
 */
async function stillHealthy(): Promise<void> {
  expect(healthy.client.connected).toBe(true);
  const n = ++pings;
  await healthy.client.publishAsync(`healthy/ping/${n}`, `ping ${n}`, { qos: 1 });
  await waitFor(() => onTopic(`healthy/ping/${n}`).length === 1, 3000, `ping ${n} back`);
  expect(onTopic("healthy/bad/")).toEqual([]);
  const fresh = await rawConnected(4, { clientId: uid("fresh") });
  fresh.send({ cmd: "pingreq" });
  expect((await fresh.next()).cmd).toBe("pingresp");
  fresh.destroy();
  await waitFor(() => b.broker.clients === 1, 3000, "only the healthy client attached");
  await waitFor(() => b.broker.connections.size === 1, 3000, "only the healthy connection open");
}

/** Raw clients opened by the current test; destroyed after it, so a failed test leaves nothing behind for the next. */
const pool = usePool();
const rawConnect = (version: 3 | 4 | 5) => pool.socket(b, version);
async function rawConnected(version: 3 | 4 | 5, opts: Record<string, unknown>): Promise<RawClient> {
  const c = await rawConnect(version);
  const ack = await c.handshake(opts);
  expect(ack.cmd).toBe("connack");
  expect(ack.returnCode ?? ack.reasonCode).toBe(0);
  return c;
}

async function open(version: 4 | 5, id = uid(`m${version}`)): Promise<RawClient> {
  const c = await rawConnected(version, { clientId: id });
  c.socket.setNoDelay(true);
  return c;
}

/** v5: the next packet is DISCONNECT with `code`, then the socket closes and nothing else arrives. */
async function expectDisconnect(c: RawClient, code: number): Promise<void> {
  const d = await c.next(3000);
  expect(d.cmd).toBe("disconnect");
  expect(d.reasonCode).toBe(code);
  expect(await c.waitClose(3000)).toBe(true);
  expect(c.pending()).toEqual([]); // nothing after DISCONNECT [MQTT-3.14.4-1]
}

/** 3.1.1: the socket closes and not one byte arrives after `mark`. */
async function expectSilentClose(c: RawClient, mark: number): Promise<void> {
  expect(await c.waitClose(3000)).toBe(true);
  expect(bytesLen(c)).toBe(mark);
}

/**
 * Send `bytes` on a fresh connected client of each version and check the
 * reaction: v5 DISCONNECT `v5code`; 3.1.1 a silent close.
 */
async function rejectBoth(v5bytes: Buffer, v4bytes: Buffer | null, v5code: number): Promise<void> {
  const c5 = await open(5);
  c5.write(v5bytes);
  await expectDisconnect(c5, v5code);
  if (v4bytes !== null) {
    const c4 = await open(4);
    const mark = bytesLen(c4);
    c4.write(v4bytes);
    await expectSilentClose(c4, mark);
  }
}

// ---- tests -------------------------------------------------------------------

describe("framing and Remaining Length", () => {
  test("garbage bytes (an HTTP request) as the first bytes → closed, zero bytes received [MQTT-3.1.0-1]", async () => {
    const c = await rawConnect(4);
    c.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(await c.waitClose(3000)).toBe(true);
    expect(bytesLen(c)).toBe(0);
    await stillHealthy();
  });

  test("random binary garbage after CONNACK → 3.1.1 closed silently / v5 DISCONNECT 0x81", async () => {
    const garbage = Buffer.from([0x00, 0x07, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]);
    await rejectBoth(garbage, garbage, 0x81);
    await stillHealthy();
  });

  test("CONNECT with Remaining Length FF FF FF FF 7F → closed, zero bytes received (3.1.1 §2.2.3, 5 §1.5.5)", async () => {
    const c = await rawConnect(4);
    c.write([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    expect(await c.waitClose(3000)).toBe(true);
    expect(bytesLen(c)).toBe(0);
    await stillHealthy();
  });

  test("after CONNACK, Remaining Length FF FF FF FF 7F → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    await rejectBoth(bad, bad, 0x81);
    await stillHealthy();
  });

  test("the five-byte Remaining Length split across two writes is still caught (v5 DISCONNECT 0x81)", async () => {
    const c = await open(5);
    c.write([0x30, 0xff, 0xff]);
    await Bun.sleep(30);
    expect(c.closed).toBe(false);
    c.write([0xff, 0xff, 0x7f]);
    await expectDisconnect(c, 0x81);
    await stillHealthy();
  });

  test("v5: only the header of a PUBLISH with Remaining Length 2000 (> maxPacketSize 1024) → DISCONNECT 0x95 before the body is sent (v5 §3.2.2.3.6)", async () => {
    const c = await open(5);
    c.write(Buffer.concat([Buffer.from([0x30]), varint(2000)]));
    await expectDisconnect(c, 0x95);
    await stillHealthy();
  });

  test("3.1.1: only the header of a PUBLISH over maxPacketSize → closed silently before the body is sent", async () => {
    const c = await open(4);
    const mark = bytesLen(c);
    c.write(Buffer.concat([Buffer.from([0x30]), varint(2000)]));
    await expectSilentClose(c, mark);
    await stillHealthy();
  });

  test("v5: Remaining Length 268,435,455 (the largest) → DISCONNECT 0x95 at once", async () => {
    const c = await open(5);
    c.write([0x30, 0xff, 0xff, 0xff, 0x7f]);
    await expectDisconnect(c, 0x95);
    await stillHealthy();
  });

  test("CONNECT header announcing 5000 bytes (> maxPacketSize) → closed, zero bytes received", async () => {
    const c = await rawConnect(5);
    c.write(Buffer.concat([Buffer.from([0x10]), varint(5000)]));
    expect(await c.waitClose(3000)).toBe(true);
    expect(bytesLen(c)).toBe(0);
    await stillHealthy();
  });

  test("v5: a PUBLISH of exactly 1024 bytes is accepted and delivered; 1025 bytes → DISCONNECT 0x95", async () => {
    const topic = "healthy/big";
    const head = 1 + 2; // fixed header byte + 2-byte Remaining Length (1021 / 1022 need 2 bytes)
    const mk = (total: number) => {
      const payload = Buffer.alloc(total - head - (2 + topic.length) - 1, 0x42);
      return publishBytes({ v5: true, topic, payload });
    };
    const ok = mk(1024);
    expect(ok.length).toBe(1024);
    const c = await open(5);
    c.write(ok);
    await waitFor(() => onTopic(topic).length === 1, 3000, "1024-byte message");
    expect(onTopic(topic)[0]!.payload.length).toBe(1024 - head - 2 - topic.length - 1);
    const tooBig = mk(1025);
    expect(tooBig.length).toBe(1025);
    c.write(tooBig);
    await expectDisconnect(c, 0x95);
    await Bun.sleep(50);
    expect(onTopic(topic).length).toBe(1);
    await stillHealthy();
  });
});

describe("PUBLISH validation", () => {
  for (const topic of ["healthy/bad/+", "healthy/bad/#", "#", "+", "healthy/bad/+/x"]) {
    test(`wildcard in a PUBLISH topic "${topic}" → 3.1.1 closed / v5 DISCONNECT 0x82 [MQTT-3.3.2-2]`, async () => {
      await rejectBoth(publishBytes({ v5: true, topic }), publishBytes({ v5: false, topic }), 0x82);
      await stillHealthy();
    });
  }

  const badTopics: [string, number[]][] = [
    ["C3 28 (invalid UTF-8)", [...Buffer.from("healthy/bad/"), 0xc3, 0x28]],
    ["ED A0 80 (encoded surrogate)", [...Buffer.from("healthy/bad/"), 0xed, 0xa0, 0x80]],
    ["C0 AF (over-long '/')", [...Buffer.from("healthy/bad"), 0xc0, 0xaf]],
    ["U+0000", [...Buffer.from("healthy/bad/"), 0x00]],
  ];
  for (const [what, bytes] of badTopics) {
    test(`PUBLISH topic with ${what} → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-1.5.4-1], [MQTT-1.5.4-2], [MQTT-3.3.2-1]`, async () => {
      await rejectBoth(publishBytes({ v5: true, topic: bytes }), publishBytes({ v5: false, topic: bytes }), 0x81);
      await stillHealthy();
    });
  }

  test("empty topic without a Topic Alias → 3.1.1 closed [MQTT-4.7.3-1] / v5 DISCONNECT 0x82 (v5 §3.3.2.1)", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "" }), publishBytes({ v5: false, topic: "" }), 0x82);
    await stillHealthy();
  });

  test("QoS 3 → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.3.1-4]", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/q3", flags: 0x06 }), publishBytes({ v5: false, topic: "healthy/bad/q3", flags: 0x06 }), 0x81);
    await stillHealthy();
  });

  for (const qos of [1, 2]) {
    test(`QoS ${qos} with packet identifier 0 → 3.1.1 closed [MQTT-2.3.1-1] / v5 DISCONNECT 0x82 [MQTT-2.2.1-3]`, async () => {
      const flags = qos << 1;
      await rejectBoth(
        publishBytes({ v5: true, topic: "healthy/bad/pid0", flags, packetId: 0 }),
        publishBytes({ v5: false, topic: "healthy/bad/pid0", flags, packetId: 0 }),
        0x82,
      );
      await stillHealthy();
    });
  }

  test("QoS 0 with DUP set → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.3.1-2] (policy: treated as malformed)", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/dup", flags: 0x08 }), publishBytes({ v5: false, topic: "healthy/bad/dup", flags: 0x08 }), 0x81);
    await stillHealthy();
  });

  test("topic length running past the end of the packet → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    const bad = frame(0x30, u16(50), Buffer.from("healthy/bad"));
    await rejectBoth(bad, bad, 0x81);
    await stillHealthy();
  });

  test("QoS 1 PUBLISH too short for its packet identifier → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    const bad = frame(0x32, field("healthy/bad/short"), Buffer.from([0x01]));
    await rejectBoth(bad, bad, 0x81);
    await stillHealthy();
  });

  test("v5: two Content Type properties → DISCONNECT 0x82 (v5 §3.3.2.3.9)", async () => {
    const props = Buffer.concat([prop(0x03, field("text/plain")), prop(0x03, field("text/html"))]);
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/ct2", props }), null, 0x82);
    await stillHealthy();
  });

  const twice: [string, Buffer][] = [
    ["Topic Alias", prop(0x23, u16(1))],
    ["Correlation Data", prop(0x09, field("c"))],
    ["Response Topic", prop(0x08, field("r"))],
    ["Payload Format Indicator", prop(0x01, 0)],
  ];
  for (const [name, p1] of twice) {
    test(`v5: ${name} twice → DISCONNECT 0x82 (v5 §3.3.2.3)`, async () => {
      await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/twice", props: Buffer.concat([p1, p1]) }), null, 0x82);
      await stillHealthy();
    });
  }

  test("v5: two Message Expiry Interval properties → DISCONNECT 0x82", async () => {
    const props = Buffer.concat([prop(0x02, u32(10)), prop(0x02, u32(20))]);
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/exp2", props }), null, 0x82);
    await stillHealthy();
  });

  test("v5: a client PUBLISH carrying a Subscription Identifier → DISCONNECT 0x82 [MQTT-3.3.4-6]", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/subid", props: prop(0x0b, 5) }), null, 0x82);
    await stillHealthy();
  });

  test("v5: Session Expiry Interval (not a PUBLISH property) → DISCONNECT 0x81 (v5 §2.2.2.2)", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/sei", props: prop(0x11, u32(5)) }), null, 0x81);
    await stillHealthy();
  });

  test("v5: unknown property identifier 0x7F → DISCONNECT 0x81 (v5 §2.2.2.2)", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/unk", props: prop(0x7f, 0) }), null, 0x81);
    await stillHealthy();
  });

  test("v5: Property Length running past the packet → DISCONNECT 0x81", async () => {
    const bad = frame(0x30, field("healthy/bad/plen"), varint(40), prop(0x01, 1));
    await rejectBoth(bad, null, 0x81);
    await stillHealthy();
  });

  test("v5: Topic Alias 0 → DISCONNECT 0x94 [MQTT-3.3.2-8]", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/ta0", props: prop(0x23, u16(0)) }), null, 0x94);
    await stillHealthy();
  });

  test("v5: Response Topic with a wildcard → DISCONNECT 0x82 [MQTT-3.3.2-14]", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/rt", props: prop(0x08, field("reply/#")) }), null, 0x82);
    await stillHealthy();
  });

  test("v5: user property with invalid UTF-8 → DISCONNECT 0x81 [MQTT-1.5.7-1]", async () => {
    await rejectBoth(publishBytes({ v5: true, topic: "healthy/bad/up", props: prop(0x26, field("k"), field([0xc3, 0x28])) }), null, 0x81);
    await stillHealthy();
  });

  test("a valid publish right before a malformed one in the same write is delivered; nothing after the bad one is processed", async () => {
    const c = await open(5);
    c.write(
      Buffer.concat([
        publishBytes({ v5: true, topic: "healthy/before", flags: 0x02, packetId: 7 }),
        publishBytes({ v5: true, topic: "healthy/bad/q3", flags: 0x06 }),
        encode({ cmd: "pingreq" }, 5),
        publishBytes({ v5: true, topic: "healthy/bad/after", flags: 0x02, packetId: 8 }),
      ]),
    );
    const ack = await c.next();
    expect(ack.cmd).toBe("puback");
    expect(ack.messageId).toBe(7);
    await expectDisconnect(c, 0x81); // no PINGRESP, no PUBACK 8
    await waitFor(() => onTopic("healthy/before").length === 1, 2000, "the good message");
    await stillHealthy();
  });
});

describe("fixed-header flags [MQTT-2.2.2-1] 3.1.1 / [MQTT-2.1.3-1] 5", () => {
  test("SUBSCRIBE with flags 0000 (0x80 instead of 0x82) → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.8.1-1]", async () => {
    const v5 = encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "healthy/x", qos: 0 }] }, 5);
    const v4 = encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "healthy/x", qos: 0 }] }, 4);
    v5[0] = 0x80;
    v4[0] = 0x80;
    await rejectBoth(v5, v4, 0x81);
    await stillHealthy();
  });

  test("UNSUBSCRIBE with flags 0000 (0xA0 instead of 0xA2) → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.10.1-1]", async () => {
    const v5 = encode({ cmd: "unsubscribe", messageId: 1, unsubscriptions: ["healthy/x"] }, 5);
    const v4 = encode({ cmd: "unsubscribe", messageId: 1, unsubscriptions: ["healthy/x"] }, 4);
    v5[0] = 0xa0;
    v4[0] = 0xa0;
    await rejectBoth(v5, v4, 0x81);
    await stillHealthy();
  });

  test("PUBREL with flags 0000 (0x60 instead of 0x62) → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.6.1-1]", async () => {
    await rejectBoth(Buffer.from([0x60, 0x02, 0x00, 0x01]), Buffer.from([0x60, 0x02, 0x00, 0x01]), 0x81);
    await stillHealthy();
  });

  test("PUBACK with flags 0001 → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    await rejectBoth(Buffer.from([0x41, 0x02, 0x00, 0x01]), Buffer.from([0x41, 0x02, 0x00, 0x01]), 0x81);
    await stillHealthy();
  });

  test("PINGREQ with flags 0001 → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    await rejectBoth(Buffer.from([0xc1, 0x00]), Buffer.from([0xc1, 0x00]), 0x81);
    await stillHealthy();
  });

  test("v5: DISCONNECT with flags 0001 → DISCONNECT 0x81, and the will is published (a malformed DISCONNECT is not a normal one) [MQTT-3.14.1-1]", async () => {
    const c = await rawConnected(5, {
      clientId: uid("dflag5"),
      will: { topic: "healthy/will/dflag5", payload: Buffer.from("will5"), qos: 1, retain: false },
    });
    c.write([0xe1, 0x00]);
    await expectDisconnect(c, 0x81);
    await waitFor(() => onTopic("healthy/will/dflag5").length === 1, 3000, "will after malformed DISCONNECT");
    await stillHealthy();
  });

  test("3.1.1: DISCONNECT with flags 0001 → closed, and the will is published [MQTT-3.14.1-1] 3.1.1", async () => {
    const c = await rawConnected(4, {
      clientId: uid("dflag4"),
      will: { topic: "healthy/will/dflag4", payload: Buffer.from("will4"), qos: 1, retain: false },
    });
    const mark = bytesLen(c);
    c.write([0xe1, 0x00]);
    await expectSilentClose(c, mark);
    await waitFor(() => onTopic("healthy/will/dflag4").length === 1, 3000, "will after malformed DISCONNECT");
    await stillHealthy();
  });
});

describe("packet types a client must not send (3.1.1 Table 2.1, 5 Table 2-1)", () => {
  const serverOnly: [string, number[]][] = [
    ["CONNACK", [0x20, 0x02, 0x00, 0x00]],
    ["SUBACK", [0x90, 0x03, 0x00, 0x01, 0x00]],
    ["UNSUBACK", [0xb0, 0x02, 0x00, 0x01]],
    ["PINGRESP", [0xd0, 0x00]],
  ];
  for (const [name, bytes] of serverOnly) {
    test(`client sends ${name} → 3.1.1 closed / v5 DISCONNECT 0x82`, async () => {
      // v5 UNSUBACK needs a reason code per filter; the type is refused before the body matters.
      await rejectBoth(Buffer.from(bytes), Buffer.from(bytes), 0x82);
      await stillHealthy();
    });
  }

  test("packet type 0 (reserved) → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    await rejectBoth(Buffer.from([0x00, 0x00]), Buffer.from([0x00, 0x00]), 0x81);
    await stillHealthy();
  });

  test("3.1.1: packet type 15 (reserved in 3.1.1) → closed", async () => {
    const c = await open(4);
    const mark = bytesLen(c);
    c.write([0xf0, 0x00]);
    await expectSilentClose(c, mark);
    await stillHealthy();
  });

  test("v5: AUTH on a connection whose CONNECT had no Authentication Method → DISCONNECT 0x82 [MQTT-4.12.0-7]", async () => {
    await rejectBoth(encode({ cmd: "auth", reasonCode: 0x19, properties: { authenticationMethod: "X" } }, 5), null, 0x82);
    await stillHealthy();
  });
});

describe("packet structure", () => {
  test("SUBSCRIBE with no topic filter → 3.1.1 closed [MQTT-3.8.3-3] / v5 DISCONNECT 0x82 [MQTT-3.8.3-2]", async () => {
    await rejectBoth(Buffer.from([0x82, 0x03, 0x00, 0x01, 0x00]), Buffer.from([0x82, 0x02, 0x00, 0x01]), 0x82);
    await stillHealthy();
  });

  test("UNSUBSCRIBE with no topic filter → 3.1.1 closed / v5 DISCONNECT 0x82 [MQTT-3.10.3-2]", async () => {
    await rejectBoth(Buffer.from([0xa2, 0x03, 0x00, 0x01, 0x00]), Buffer.from([0xa2, 0x02, 0x00, 0x01]), 0x82);
    await stillHealthy();
  });

  test("SUBSCRIBE with packet identifier 0 → 3.1.1 closed [MQTT-2.3.1-1] / v5 DISCONNECT 0x82", async () => {
    const v5 = frame(0x82, u16(0), varint(0), field("healthy/x"), Buffer.from([0x00]));
    const v4 = frame(0x82, u16(0), field("healthy/x"), Buffer.from([0x00]));
    await rejectBoth(v5, v4, 0x82);
    await stillHealthy();
  });

  test("SUBSCRIBE with a filter in invalid UTF-8 → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.8.3-1]", async () => {
    const v5 = frame(0x82, u16(1), varint(0), field([0x61, 0xed, 0xa0, 0x80]), Buffer.from([0x00]));
    const v4 = frame(0x82, u16(1), field([0x61, 0xed, 0xa0, 0x80]), Buffer.from([0x00]));
    await rejectBoth(v5, v4, 0x81);
    await stillHealthy();
  });

  test("SUBSCRIBE with reserved option bits set → 3.1.1 closed [MQTT-3-8.3-4] / v5 DISCONNECT 0x81", async () => {
    const v5 = frame(0x82, u16(1), varint(0), field("healthy/x"), Buffer.from([0xc0]));
    const v4 = frame(0x82, u16(1), field("healthy/x"), Buffer.from([0x04]));
    await rejectBoth(v5, v4, 0x81);
    await stillHealthy();
  });

  test("SUBSCRIBE whose last filter has no options byte → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    const v5 = frame(0x82, u16(1), varint(0), field("healthy/x"));
    const v4 = frame(0x82, u16(1), field("healthy/x"));
    await rejectBoth(v5, v4, 0x81);
    await stillHealthy();
  });

  test("UNSUBSCRIBE with a filter containing U+0000 → 3.1.1 closed / v5 DISCONNECT 0x81 [MQTT-3.10.3-1]", async () => {
    const v5 = frame(0xa2, u16(1), varint(0), field([0x61, 0x00]));
    const v4 = frame(0xa2, u16(1), field([0x61, 0x00]));
    await rejectBoth(v5, v4, 0x81);
    await stillHealthy();
  });

  test("v5: SUBSCRIBE with Subscription Identifier 0 → DISCONNECT 0x82 (v5 §3.8.2.1.2)", async () => {
    await rejectBoth(frame(0x82, u16(1), varint(2), prop(0x0b, 0), field("healthy/x"), Buffer.from([0x00])), null, 0x82);
    await stillHealthy();
  });

  test("v5: SUBSCRIBE with two Subscription Identifiers (5, 6) → DISCONNECT 0x82 (v5 §3.8.2.1.2)", async () => {
    await rejectBoth(frame(0x82, u16(1), varint(4), prop(0x0b, 5), prop(0x0b, 6), field("healthy/x"), Buffer.from([0x00])), null, 0x82);
    await stillHealthy();
  });

  test("v5: SUBSCRIBE with two Subscription Identifiers, the first 0 (0, 5) → DISCONNECT 0x82 (v5 §3.8.2.1.2)", async () => {
    await rejectBoth(frame(0x82, u16(1), varint(4), prop(0x0b, 0), prop(0x0b, 5), field("healthy/x"), Buffer.from([0x00])), null, 0x82);
    await stillHealthy();
  });

  test("v5: SUBSCRIBE with a Payload Format Indicator property (not allowed) → DISCONNECT 0x81 (v5 §2.2.2.2)", async () => {
    await rejectBoth(frame(0x82, u16(1), varint(2), prop(0x01, 1), field("healthy/x"), Buffer.from([0x00])), null, 0x81);
    await stillHealthy();
  });

  test("v5: DISCONNECT with an undefined reason code 0x05 → DISCONNECT 0x81 [MQTT-3.14.2-1]", async () => {
    await rejectBoth(Buffer.from([0xe0, 0x01, 0x05]), null, 0x81);
    await stillHealthy();
  });

  test("3.1.1: PUBACK with Remaining Length 3 → closed", async () => {
    const c = await open(4);
    const mark = bytesLen(c);
    c.write([0x40, 0x03, 0x00, 0x01, 0x00]);
    await expectSilentClose(c, mark);
    await stillHealthy();
  });

  test("PUBACK with Remaining Length 1 → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    await rejectBoth(Buffer.from([0x40, 0x01, 0x00]), Buffer.from([0x40, 0x01, 0x00]), 0x81);
    await stillHealthy();
  });

  test("v5: PUBACK with an undefined reason code 0x05 → DISCONNECT 0x81", async () => {
    await rejectBoth(Buffer.from([0x40, 0x03, 0x00, 0x01, 0x05]), null, 0x81);
    await stillHealthy();
  });

  test("PINGREQ with a body byte → 3.1.1 closed / v5 DISCONNECT 0x81", async () => {
    await rejectBoth(Buffer.from([0xc0, 0x01, 0x00]), Buffer.from([0xc0, 0x01, 0x00]), 0x81);
    await stillHealthy();
  });

  test("3.1.1: DISCONNECT with a body byte → closed, and the will is published (malformed, not a normal DISCONNECT)", async () => {
    const c = await rawConnected(4, {
      clientId: uid("dbody4"),
      will: { topic: "healthy/will/dbody4", payload: Buffer.from("w"), qos: 1, retain: false },
    });
    const mark = bytesLen(c);
    c.write([0xe0, 0x01, 0x00]);
    await expectSilentClose(c, mark);
    await waitFor(() => onTopic("healthy/will/dbody4").length === 1, 3000, "will after malformed DISCONNECT");
    await stillHealthy();
  });

  test("v5: DISCONNECT with the server-only reason 0x8E → DISCONNECT 0x82 [MQTT-3.14.2-1]", async () => {
    await rejectBoth(Buffer.from([0xe0, 0x01, 0x8e]), null, 0x82);
    await stillHealthy();
  });

  test("3.1.1: leftover bytes after the last CONNECT field → closed without CONNACK", async () => {
    const good = encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: "leftover4" });
    const bad = Buffer.concat([Buffer.from([0x10, good[1]! + 2]), good.subarray(2), Buffer.from([0x00, 0x00])]);
    const c = await rawConnect(4);
    c.write(bad);
    expect(await c.waitClose(3000)).toBe(true);
    expect(bytesLen(c)).toBe(0);
    await stillHealthy();
  });

  test("v5: leftover bytes after the last CONNECT field → closed, at most CONNACK 0x81", async () => {
    const good = encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: "leftover5" }, 5);
    const bad = Buffer.concat([Buffer.from([0x10, good[1]! + 1]), good.subarray(2), Buffer.from([0x7a])]);
    const c = await rawConnect(5);
    c.write(bad);
    expect(await c.waitClose(3000)).toBe(true);
    const got = c.pending();
    expect(got.length).toBeLessThanOrEqual(1);
    if (got.length === 1) expect([got[0]!.cmd, got[0]!.reasonCode]).toEqual(["connack", 0x81]);
    await stillHealthy();
  });
});

describe("v5 property sections that run past their bounds (§2.2.2.1, §2.2.2.2, §1.5.5, [MQTT-1.5.7-1])", () => {
  // Each is Malformed (0x81), never an internal error (0x83): the property walker is bounded by the
  // frame, and anything mqtt-packet's parser throws is Malformed too [MQTT-4.13.1-1].
  const cases: [string, number[]][] = [
    ["AUTH whose Property Length varint runs past the packet (f0 02 18 e5) → DISCONNECT 0x81 (v5 §2.2.2.1, §1.5.5)", [0xf0, 0x02, 0x18, 0xe5]],
    ["DISCONNECT whose Property Length varint runs past the packet (e0 02 00 e5) → DISCONNECT 0x81 (v5 §2.2.2.1, §1.5.5)", [0xe0, 0x02, 0x00, 0xe5]],
    ["SUBSCRIBE whose Property Length varint runs past the packet (82 03 00 01 e5) → DISCONNECT 0x81 (v5 §2.2.2.1, §1.5.5)", [0x82, 0x03, 0x00, 0x01, 0xe5]],
    ["DISCONNECT whose User Property value overruns its section (e0 07 04 05 26 00 00 00 05) → DISCONNECT 0x81 [MQTT-1.5.7-1] (v5 §2.2.2.2)", [0xe0, 0x07, 0x04, 0x05, 0x26, 0x00, 0x00, 0x00, 0x05]],
  ];
  for (const [name, bytes] of cases) {
    test(`v5: ${name}`, async () => {
      await rejectBoth(Buffer.from(bytes), null, 0x81);
      await stillHealthy();
    });
  }

  test("v5: the four malformed frames sent back to back on one connection → DISCONNECT 0x81 for the first, nothing processed after it", async () => {
    const c = await open(5);
    c.write(Buffer.from([0x82, 0x03, 0x00, 0x01, 0xe5, 0xc0, 0x00, 0xe0, 0x02, 0x00, 0xe5]));
    await expectDisconnect(c, 0x81); // no PINGRESP
    await stillHealthy();
  });
});

describe("stream framing: packets split and joined arbitrarily", () => {
  test("v5: CONNECT, SUBSCRIBE, QoS 1 PUBLISH and PINGREQ sent one byte per write are all processed correctly", async () => {
    const c = await rawConnect(5);
    c.socket.setNoDelay(true);
    const bytes = Buffer.concat([
      encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: "trickle" }, 5),
      encode({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "trickle/t", qos: 1 }] }, 5),
      encode({ cmd: "publish", topic: "trickle/t", payload: Buffer.from("byte by byte"), qos: 1, messageId: 4 }, 5),
      encode({ cmd: "publish", topic: "healthy/trickle", payload: Buffer.from("to healthy"), qos: 0 }, 5),
      encode({ cmd: "pingreq" }, 5),
    ]);
    for (let i = 0; i < bytes.length; i++) {
      c.write(bytes.subarray(i, i + 1));
      await Bun.sleep(1);
    }
    const got: Packet[] = [];
    for (let i = 0; i < 5; i++) got.push(await c.next());
    expect(got[0]!.cmd).toBe("connack");
    expect(got[0]!.reasonCode).toBe(0);
    expect(got[1]!.cmd).toBe("suback");
    expect(got[1]!.messageId).toBe(3);
    const cmds = got.map((p) => p.cmd).sort();
    expect(cmds).toEqual(["connack", "pingresp", "puback", "publish", "suback"]);
    expect(got[4]!.cmd).toBe("pingresp");
    expect(got.find((p) => p.cmd === "publish")!.payload.toString()).toBe("byte by byte");
    expect(got.find((p) => p.cmd === "puback")!.messageId).toBe(4);
    await waitFor(() => onTopic("healthy/trickle").length === 1, 2000, "trickled message");
    expect(onTopic("healthy/trickle")[0]!.payload.toString()).toBe("to healthy");
    c.destroy();
    await stillHealthy();
  });

  test("3.1.1: a 1000-byte PUBLISH in 7-byte writes arrives intact", async () => {
    const c = await open(4);
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    const bytes = encode({ cmd: "publish", topic: "healthy/chunks", payload, qos: 1, messageId: 11 });
    for (let i = 0; i < bytes.length; i += 7) {
      c.write(bytes.subarray(i, i + 7));
      await Bun.sleep(0);
    }
    const ack = await c.next();
    expect(ack.cmd).toBe("puback");
    expect(ack.messageId).toBe(11);
    await waitFor(() => onTopic("healthy/chunks").length === 1, 2000, "chunked message");
    expect(onTopic("healthy/chunks")[0]!.payload.equals(payload)).toBe(true);
    c.destroy();
    await stillHealthy();
  });

  test("3.1.1: CONNECT, 20 QoS 1 PUBLISHes and PINGREQ in one write are all processed, in order", async () => {
    const c = await rawConnect(4);
    const parts = [encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: "burst" })];
    for (let i = 1; i <= 20; i++) parts.push(encode({ cmd: "publish", topic: "healthy/burst", payload: Buffer.from(`m${i}`), qos: 1, messageId: i }));
    parts.push(encode({ cmd: "pingreq" }));
    c.write(Buffer.concat(parts));
    const ack = await c.next();
    expect(ack.cmd).toBe("connack");
    expect(ack.returnCode).toBe(0);
    for (let i = 1; i <= 20; i++) {
      const p = await c.next();
      expect(p.cmd).toBe("puback");
      expect(p.messageId).toBe(i);
    }
    expect((await c.next()).cmd).toBe("pingresp");
    await waitFor(() => onTopic("healthy/burst").length === 20, 3000, "20 messages");
    expect(onTopic("healthy/burst").map((m) => m.payload.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
    c.destroy();
    await stillHealthy();
  });

  test("v5: a write ending one byte into the next packet's header, then the rest", async () => {
    const c = await open(5);
    const p1 = encode({ cmd: "publish", topic: "healthy/split", payload: Buffer.from("one"), qos: 1, messageId: 1 }, 5);
    const p2 = encode({ cmd: "publish", topic: "healthy/split", payload: Buffer.alloc(300, 0x33), qos: 1, messageId: 2 }, 5);
    const all = Buffer.concat([p1, p2]);
    c.write(all.subarray(0, p1.length + 1)); // type byte of p2 only
    await Bun.sleep(20);
    c.write(all.subarray(p1.length + 1, p1.length + 2)); // first Remaining Length byte (continuation)
    await Bun.sleep(20);
    c.write(all.subarray(p1.length + 2));
    expect((await c.next()).messageId).toBe(1);
    expect((await c.next()).messageId).toBe(2);
    await waitFor(() => onTopic("healthy/split").length === 2, 2000, "both split messages");
    expect(onTopic("healthy/split")[1]!.payload.length).toBe(300);
    c.destroy();
    await stillHealthy();
  });
});

describe("after all of this", () => {
  test("the broker still serves new 3.1.1 and v5 clients end to end, and the healthy client saw only what it should", async () => {
    const sub = await connectClient(b.port, { protocolVersion: 4 });
    await sub.client.subscribeAsync("final/t", { qos: 1 });
    const pub = await connectClient(b.port, { protocolVersion: 5 });
    await pub.client.publishAsync("final/t", "still serving", { qos: 1 });
    await sub.waitMessages(1);
    expect(sub.messages[0]!.payload.toString()).toBe("still serving");
    await Promise.all([sub.end(), pub.end()]);
    expect(onTopic("healthy/bad/")).toEqual([]);
    await stillHealthy();
  });
});
