/**
 * MQTT 5 DISCONNECT in both directions (CHECKLIST area 10, 13.3).
 *
 * Client → server: 0x04 publishes the will, 0x00 discards it; a Reason
 * String / User Properties are fine; Server Reference from a client is a
 * Protocol Error. Server → client: each code the broker sends for its event
 * (0x8E takeover, 0x8B shutdown, 0x8D keep alive, 0x82, 0x81, 0x93, 0x94,
 * 0x95); every server DISCONNECT is the last thing on the connection
 * ([MQTT-3.14.4-1], [MQTT-3.14.4-2]), has no Session Expiry Interval
 * ([MQTT-3.14.2-2]) and no Server Reference (§3.14.2.2.5), leaves the will due
 * (§3.1.2.5), and is never sent before a successful CONNACK ([MQTT-3.14.0-1]).
 *
 * Already covered: will vs 0x00 / 0x04 / 0x80 and remaining length 0
 * (tests/protocol/07-will.test.ts), client-sent 0x8E / undefined codes / bad
 * flags (10-malformed), 0x8E to MQTT.js (06-takeover), 0x8D (08-keepalive).
 * Here the server-sent codes are checked together for the common rules.
 *
 * The broker runs with limits.receiveMaximum 2 and maxPacketSize 1024.
 */
import { describe, expect, test } from "bun:test";
import { startTestBroker, useTestBroker } from "../helpers/broker.ts";
import { varint } from "../helpers/bytes.ts";
import { connectClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { encode, type Packet, type RawClient } from "../helpers/raw.ts";
import { expectDisconnect, framesOf, publish, publishBytes, subscribe, text } from "./util.ts";

const b = useTestBroker({ limits: { receiveMaximum: 2, maxPacketSize: 1024 } });
const pool = usePool();

/** A watcher subscribed to `topic` (QoS 1). */
async function watch(topic: string): Promise<RawClient> {
  const w = await pool.raw(b, 5, "dc-watch");
  await subscribe(w, [{ topic, qos: 1 }]);
  return w;
}

/** A v5 client with a will on `willTopic`, subscribed to `subTopic`. */
async function withWill(tag: string, willTopic: string, subTopic?: string, extra: Record<string, unknown> = {}) {
  const c = await pool.raw(b, 5, tag, { will: { topic: willTopic, payload: Buffer.from(`will of ${tag}`), qos: 1, retain: false }, ...extra });
  if (subTopic) await subscribe(c, [{ topic: subTopic, qos: 1 }]);
  return c;
}

/**
 * The common rules for a server DISCONNECT: the given code, fixed header
 * E0, no Session Expiry Interval, no Server Reference, the last frame on the
 * connection, then the close.
 */
async function serverDisconnect(c: RawClient, code: number, ms = 3000): Promise<Packet> {
  const d = await expectDisconnect(c, code, ms);
  expect(d.properties?.sessionExpiryInterval).toBeUndefined(); // [MQTT-3.14.2-2]
  expect(d.properties?.serverReference).toBeUndefined(); // §3.14.2.2.5: only with 0x9C / 0x9D
  const frames = framesOf(c);
  const last = frames.at(-1)!;
  expect(last[0]).toBe(0xe0); // [MQTT-3.14.1-1]
  expect(last[2]).toBe(code);
  return d;
}

/** The next PUBLISH on the watcher is the will `payload`; nothing else came first. */
async function expectWill(w: RawClient, payload: string): Promise<void> {
  const m = await w.nextOf("publish");
  expect(text(m)).toBe(payload);
  w.send({ cmd: "puback", messageId: m.messageId });
}

describe("client → server", () => {
  test("MQTT.js end() with reason 0x04 → the will is published; end() with 0x00 → not (§3.14.2.1, [MQTT-3.14.4-3])", async () => {
    const w = await watch("dc/js/+");
    for (const rc of [0x04, 0x00]) {
      const c = await connectClient(b.port, {
        protocolVersion: 5,
        clientId: uid(`dc-js-${rc}`),
        will: { topic: `dc/js/${rc}`, payload: Buffer.from(`will ${rc}`), qos: 1, retain: false },
      });
      await c.client.endAsync(false, { reasonCode: rc });
    }
    const p = await pool.raw(b, 5, "dc-js-marker");
    await publish(p, "dc/js/marker", "marker", 1);
    const got: string[] = [];
    for (;;) {
      const m = await w.nextOf("publish");
      w.send({ cmd: "puback", messageId: m.messageId });
      got.push(text(m));
      if (text(m) === "marker") break;
    }
    expect(got).toEqual(["will 4", "marker"]);
  });

  test("DISCONNECT 0x00 with a Reason String and User Properties is a normal disconnect: nothing is sent back, the server closes, the will is discarded (§3.14.4, [MQTT-3.14.4-3])", async () => {
    const w = await watch("dc/normal/will");
    const c = await withWill("dc-normal", "dc/normal/will");
    const before = framesOf(c).length;
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { reasonString: "bye", userProperties: { k: "v" } } });
    expect(await c.waitClose()).toBe(true);
    expect(framesOf(c).length).toBe(before);
    const p = await pool.raw(b, 5, "dc-normal-marker");
    await publish(p, "dc/normal/will", "marker", 1);
    await expectWill(w, "marker");
  });

  test("a client DISCONNECT carrying Server Reference → DISCONNECT 0x82; it is not a normal disconnect, so the will is published", async () => {
    const w = await watch("dc/sref/will");
    const c = await withWill("dc-sref", "dc/sref/will");
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { serverReference: "elsewhere" } });
    await serverDisconnect(c, 0x82);
    await expectWill(w, "will of dc-sref");
  });
});

describe("server → client: each code for its event (13.3), with the common rules", () => {
  const cases: { code: number; name: string; trigger: (c: RawClient) => void | Promise<void> }[] = [
    { code: 0x82, name: "Protocol Error (PUBLISH to a wildcard topic)", trigger: (c) => c.send({ cmd: "publish", topic: "dc/+/x", payload: Buffer.from("x"), qos: 0 }) },
    { code: 0x81, name: "Malformed Packet (PUBLISH QoS 3)", trigger: (c) => c.write([0x36, 0x07, 0x00, 0x01, 0x61, 0x00, 0x01, 0x00, 0x78]) },
    {
      code: 0x93,
      name: "Receive Maximum exceeded (3rd unreleased QoS 2 with limits.receiveMaximum 2)",
      trigger: async (c) => {
        for (const id of [1, 2]) {
          c.send({ cmd: "publish", topic: "dc/rm", payload: Buffer.from("x"), qos: 2, messageId: id });
          expect((await c.nextOf("pubrec")).messageId).toBe(id);
        }
        c.send({ cmd: "publish", topic: "dc/rm", payload: Buffer.from("x"), qos: 2, messageId: 3 });
      },
    },
    { code: 0x94, name: "Topic Alias invalid (alias 65535 > maximum)", trigger: (c) => c.send({ cmd: "publish", topic: "dc/alias", payload: Buffer.from("x"), qos: 0, properties: { topicAlias: 65535 } }) },
    { code: 0x95, name: "Packet too large (header announcing 5000 bytes > 1024)", trigger: (c) => c.write(Buffer.concat([Buffer.from([0x30]), varint(5000)])) },
  ];
  for (const { code, name, trigger } of cases) {
    test(`0x${code.toString(16)} ${name}: DISCONNECT 0x${code.toString(16)} is the last packet, then close; the will is published; later messages to its subscription do not reach it`, async () => {
      const willTopic = `dc/will/${code}`;
      const w = await watch(willTopic);
      const c = await withWill(`dc-${code}`, willTopic, `dc/sub/${code}`);
      await trigger(c);
      await serverDisconnect(c, code);
      await expectWill(w, `will of dc-${code}`);
      const p = await pool.raw(b, 5, "dc-after");
      await publish(p, `dc/sub/${code}`, "too late", 1);
      expect(c.pending()).toEqual([]);
      expect(framesOf(c).at(-1)![0]).toBe(0xe0);
    });
  }

  test("0x8E Session taken over [MQTT-3.1.4-3]: DISCONNECT is the old connection's last packet, with no Session Expiry; messages after the takeover go to the new connection only", async () => {
    const id = uid("dc-take");
    const old = await pool.raw(b, 5, "x", { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    await subscribe(old, [{ topic: "dc/take", qos: 1 }]);
    const fresh = await pool.raw(b, 5, "x", { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    await serverDisconnect(old, 0x8e);
    const p = await pool.raw(b, 5, "dc-take-pub");
    await publish(p, "dc/take", "after", 1);
    expect(text(await fresh.nextOf("publish"))).toBe("after");
    expect(old.pending()).toEqual([]);
  });

  test("0x8D Keep Alive timeout (Keep Alive 1 s, silent): DISCONNECT 0x8D within 3 s, and the will is published", async () => {
    const w = await watch("dc/ka/will");
    const c = await withWill("dc-ka", "dc/ka/will", undefined, { keepalive: 1 });
    await serverDisconnect(c, 0x8d, 3500);
    await expectWill(w, "will of dc-ka");
  }, 10000);

  test("0x8B Server shutting down (b.stop()): every v5 client gets DISCONNECT 0x8B as its last packet; a 3.1.1 client gets no byte at all, just the close", async () => {
    const k = await startTestBroker();
    try {
      const v5a = await pool.raw(k, 5, "dc-stop-a");
      const v5b = await pool.raw(k, 5, "dc-stop-b", { clean: false, properties: { sessionExpiryInterval: 60 } });
      const v4 = await pool.raw(k, 4, "dc-stop-4");
      await subscribe(v5a, [{ topic: "dc/stop", qos: 1 }]);
      const v4bytes = framesOf(v4).length;
      await k.stop();
      await serverDisconnect(v5a, 0x8b);
      await serverDisconnect(v5b, 0x8b);
      expect(await v4.waitClose()).toBe(true);
      expect(framesOf(v4).length).toBe(v4bytes); // CONNACK only: 3.1.1 has no server DISCONNECT
    } finally {
      await k.stop();
    }
  });
});

describe("no DISCONNECT before a successful CONNACK [MQTT-3.14.0-1]", () => {
  test("a refused CONNECT (Receive Maximum 0) gets CONNACK 0x82 and the close — even with a malformed packet pipelined behind it, no DISCONNECT follows", async () => {
    const c = await pool.socket(b, 5);
    const connect = encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: uid("dc-pre"), properties: { receiveMaximum: 0 } }, 5);
    c.write(Buffer.concat([connect, Buffer.from([0x36, 0x02, 0x00, 0x00])]));
    expect(await c.waitClose()).toBe(true);
    const frames = framesOf(c);
    expect(frames.map((f) => f[0])).toEqual([0x20]);
    expect(frames[0]![3]).toBe(0x82);
  });

  test("a packet before CONNECT, and a CONNECT whose body breaks the rules before any CONNACK: closed, never a DISCONNECT", async () => {
    const first = await pool.socket(b, 5);
    first.write(publishBytes({ v5: true, topic: "dc/early", qos: 0 }));
    expect(await first.waitClose()).toBe(true);
    expect(Buffer.concat(first.received).length).toBe(0);

    // CONNECT with the reserved flag bit set: malformed; at most a CONNACK 0x81.
    const bad = await pool.socket(b, 5);
    const connect = encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: uid("dc-res") }, 5);
    connect[9] = connect[9]! | 0x01;
    bad.write(connect);
    expect(await bad.waitClose()).toBe(true);
    for (const f of framesOf(bad)) expect(f[0]).toBe(0x20);
  });
});
