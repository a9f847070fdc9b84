/**
 * MQTT 5 Topic Alias (CHECKLIST 9c), both directions.
 *
 * Inbound (client → broker): the maximum told in CONNACK is what is accepted
 * ([MQTT-3.3.2-12], 0x94 above it), bindings are per connection.
 * Outbound (broker → client, config mqtt.outboundTopicAliases): a v5 client
 * that sent Topic Alias Maximum N gets, per topic, the first PUBLISH with the
 * topic and an alias, later ones with an empty topic and the same alias; never
 * an alias above N, none at all for N = 0 or absent ([MQTT-3.1.2-26],
 * [MQTT-3.1.2-27], [MQTT-3.3.2-11]); the bindings start over on every
 * connection ([MQTT-3.3.2-7]). Outbound checks read the raw bytes, since an
 * empty topic is what the wire must show.
 *
 * Already covered in tests/protocol/03-publish.test.ts (inbound, default
 * broker): alias 0 and above the default maximum → 0x94, empty topic with an
 * unbound alias → 0x82, re-binding, no bindings after a reconnect.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";
import type { RawClient } from "../helpers/raw.ts";
import { drop, expectDisconnect, parsePublish, propEntries, publish, publishFramesOf, subscribe, text } from "./util.ts";

let b: RunningBroker; // defaults: topicAliasMaximum 64, outbound aliases on
let k: RunningBroker; // inbound maximum 3, outbound aliases off
let z: RunningBroker; // inbound maximum 0
beforeAll(async () => {
  b = await startTestBroker();
  k = await startTestBroker({ limits: { topicAliasMaximum: 3 }, mqtt: { outboundTopicAliases: false } });
  z = await startTestBroker({ limits: { topicAliasMaximum: 0 } });
});
afterAll(async () => {
  await Promise.all([b.stop(), k.stop(), z.stop()]);
});

const pool = usePool();

interface Seen {
  /** Topic bytes on the wire ("" when the alias stands in). */
  wire: string;
  alias: number | undefined;
  /** The topic after applying this connection's bindings, as a client must. */
  topic: string;
  payload: string;
}

/**
 * Decode the raw PUBLISH frames a client received, applying Topic Alias
 * rules the way a conforming client would: topic + alias binds, empty topic
 * + alias looks the binding up (an unknown alias fails the test).
 */
function decodeWithAliases(c: RawClient): Seen[] {
  const bound = new Map<number, string>();
  return publishFramesOf(c).map((f) => {
    const p = parsePublish(f, true);
    const a = propEntries(p.props!).filter((e) => e.id === 0x23);
    expect(a.length).toBeLessThanOrEqual(1);
    const alias = a.length ? a[0]!.bytes.readUInt16BE(1) : undefined;
    const wire = p.topic.toString();
    let topic = wire;
    if (alias !== undefined) {
      if (wire === "") {
        expect(bound.has(alias)).toBe(true); // never an unbound alias with an empty topic
        topic = bound.get(alias)!;
      } else {
        bound.set(alias, wire);
      }
    } else {
      expect(wire).not.toBe(""); // an empty topic needs an alias
    }
    return { wire, alias, topic, payload: p.payload.toString() };
  });
}

/** Wait for `n` PUBLISH packets (acknowledging QoS 1/2), then decode the raw frames. */
async function receive(c: RawClient, n: number): Promise<Seen[]> {
  for (let i = 0; i < n; i++) {
    const m = await c.nextOf("publish");
    if (m.qos === 1) c.send({ cmd: "puback", messageId: m.messageId });
    if (m.qos === 2) {
      c.send({ cmd: "pubrec", messageId: m.messageId });
      await c.nextOf("pubrel");
      c.send({ cmd: "pubcomp", messageId: m.messageId });
    }
  }
  return decodeWithAliases(c);
}

const short = (s: Seen[]) => s.map((x) => [x.wire, x.alias, x.topic, x.payload]);

describe("outbound Topic Aliases [MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-11]", () => {
  test("Topic Alias Maximum 2: the first PUBLISH of a topic has topic + alias 1 (a retained one included), later ones an empty topic (bytes 00 00) + alias 1, at QoS 0, 1 and 2", async () => {
    const p = await pool.raw(b, 5, "oa-first-pub");
    await publish(p, "oa/first", "retained", 1, { retain: true });
    const s = await pool.raw(b, 5, "oa-first", { properties: { topicAliasMaximum: 2 } });
    await subscribe(s, [{ topic: "oa/first", qos: 2 }]);
    await s.nextOf("publish").then((m) => s.send({ cmd: "puback", messageId: m.messageId }));
    await publish(p, "oa/first", "q0", 0);
    await publish(p, "oa/first", "q1", 1);
    await publish(p, "oa/first", "q2", 2);
    const seen = await receive(s, 3);
    expect(short(seen)).toEqual([
      ["oa/first", 1, "oa/first", "retained"],
      ["", 1, "oa/first", "q0"],
      ["", 1, "oa/first", "q1"],
      ["", 1, "oa/first", "q2"],
    ]);
    // Byte check of the last one: 2-byte topic length 00 00, then packet id, then properties with 23 00 01.
    const last = publishFramesOf(s).at(-1)!;
    const rl = last[1]!; // < 128 here
    expect(rl).toBeLessThan(128);
    expect([...last.subarray(2, 4)]).toEqual([0x00, 0x00]);
    const raw = parsePublish(last, true);
    expect(propEntries(raw.props!).map((e) => [...e.bytes])).toEqual([[0x23, 0x00, 0x01]]);
    await publish(p, "oa/first", "", 1, { retain: true });
  });

  test("more distinct topics than the maximum (2): aliases 1 and 2 only; the other topics always go with their full name and no alias", async () => {
    const s = await pool.raw(b, 5, "oa-many", { properties: { topicAliasMaximum: 2 } });
    await subscribe(s, [{ topic: "oa/many/+", qos: 0 }]);
    const p = await pool.raw(b, 5, "oa-many-pub");
    const order = ["a", "b", "c", "d", "a", "b", "c", "d", "c", "a"];
    for (const [i, t] of order.entries()) await publish(p, `oa/many/${t}`, `${t}${i}`, 0);
    const seen = await receive(s, order.length);
    expect(short(seen)).toEqual([
      ["oa/many/a", 1, "oa/many/a", "a0"],
      ["oa/many/b", 2, "oa/many/b", "b1"],
      ["oa/many/c", undefined, "oa/many/c", "c2"],
      ["oa/many/d", undefined, "oa/many/d", "d3"],
      ["", 1, "oa/many/a", "a4"],
      ["", 2, "oa/many/b", "b5"],
      ["oa/many/c", undefined, "oa/many/c", "c6"],
      ["oa/many/d", undefined, "oa/many/d", "d7"],
      ["oa/many/c", undefined, "oa/many/c", "c8"],
      ["", 1, "oa/many/a", "a9"],
    ]);
    expect(seen.every((x) => x.alias === undefined || x.alias <= 2)).toBe(true);
  });

  test("no alias at all for a client that sent Topic Alias Maximum 0 or none [MQTT-3.1.2-26], nor for a 3.1.1 client", async () => {
    const zero = await pool.raw(b, 5, "oa-zero", { properties: { topicAliasMaximum: 0 } });
    const none = await pool.raw(b, 5, "oa-none");
    const v4 = await pool.raw(b, 4, "oa-v4");
    for (const c of [zero, none, v4]) await subscribe(c, [{ topic: "oa/none", qos: 1 }]);
    const p = await pool.raw(b, 5, "oa-none-pub");
    for (const m of ["1", "2", "3"]) await publish(p, "oa/none", m, 1);
    for (const c of [zero, none]) {
      expect(short(await receive(c, 3))).toEqual([
        ["oa/none", undefined, "oa/none", "1"],
        ["oa/none", undefined, "oa/none", "2"],
        ["oa/none", undefined, "oa/none", "3"],
      ]);
    }
    await receive(v4, 3);
    expect(publishFramesOf(v4).map((f) => parsePublish(f, false).topic.toString())).toEqual(["oa/none", "oa/none", "oa/none"]);
  });

  test("the outbound alias space is the broker's own: the publisher's alias 7 is never forwarded; the subscriber gets alias 1 of its own", async () => {
    const s = await pool.raw(b, 5, "oa-sep", { properties: { topicAliasMaximum: 3 } });
    await subscribe(s, [{ topic: "oa/sep", qos: 0 }]);
    const p = await pool.raw(b, 5, "oa-sep-pub");
    p.send({ cmd: "publish", topic: "oa/sep", payload: Buffer.from("bind"), qos: 0, properties: { topicAlias: 7 } });
    p.send({ cmd: "publish", topic: "", payload: Buffer.from("use"), qos: 0, properties: { topicAlias: 7 } });
    expect(short(await receive(s, 2))).toEqual([
      ["oa/sep", 1, "oa/sep", "bind"],
      ["", 1, "oa/sep", "use"],
    ]);
  });

  test("the aliases start over on a new connection, even when the session resumes [MQTT-3.3.2-7]: the re-sent, the queued and the next live PUBLISH each show the topic first", async () => {
    const id = uid("oa-resume");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60, topicAliasMaximum: 2 } };
    const s = await pool.raw(b, 5, "x", opts);
    await subscribe(s, [{ topic: "oa/rs/+", qos: 1 }]);
    const p = await pool.raw(b, 5, "oa-resume-pub");
    await publish(p, "oa/rs/x", "x1");
    await publish(p, "oa/rs/y", "y1");
    await publish(p, "oa/rs/y", "y2");
    await receive(s, 2); // x1, y1 acknowledged; y2 left in flight
    await s.nextOf("publish");
    expect(short(decodeWithAliases(s))).toEqual([
      ["oa/rs/x", 1, "oa/rs/x", "x1"],
      ["oa/rs/y", 2, "oa/rs/y", "y1"],
      ["", 2, "oa/rs/y", "y2"],
    ]);
    await drop(b, s, id);
    await publish(p, "oa/rs/x", "x2"); // queued while offline

    const r = await pool.raw(b, 5, "x", opts);
    const resumed = await receive(r, 2);
    await publish(p, "oa/rs/x", "x3");
    await publish(p, "oa/rs/y", "y3");
    const all = await receive(r, 2);
    expect(resumed.length).toBe(2);
    // y2 is re-sent (DUP) first: on this connection it must carry its topic again, not the old alias 2 alone.
    expect(short(all)).toEqual([
      ["oa/rs/y", 1, "oa/rs/y", "y2"],
      ["oa/rs/x", 2, "oa/rs/x", "x2"],
      ["", 2, "oa/rs/x", "x3"],
      ["", 1, "oa/rs/y", "y3"],
    ]);
    expect(parsePublish(publishFramesOf(r)[0]!, true).dup).toBe(true);
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test("a PUBLISH too large for the client (Maximum Packet Size 100) binds no alias: the next one on that topic still carries the topic", async () => {
    const s = await pool.raw(b, 5, "oa-big", { properties: { topicAliasMaximum: 1, maximumPacketSize: 100 } });
    await subscribe(s, [{ topic: "oa/big/+", qos: 0 }]);
    const p = await pool.raw(b, 5, "oa-big-pub");
    await publish(p, "oa/big/x", Buffer.alloc(200, 0x61), 0); // dropped for this client [MQTT-3.1.2-25]
    await publish(p, "oa/big/y", "y1", 0);
    await publish(p, "oa/big/x", "x1", 0);
    await publish(p, "oa/big/y", "y2", 0);
    expect(short(await receive(s, 3))).toEqual([
      ["oa/big/y", 1, "oa/big/y", "y1"],
      ["oa/big/x", undefined, "oa/big/x", "x1"],
      ["", 1, "oa/big/y", "y2"],
    ]);
  });

  test("MQTT.js v5 with topicAliasMaximum 3 resolves the broker's aliases: 5 topics × 3 rounds arrive with the right topics and payloads", async () => {
    const id = uid("oa-js");
    const s = await connectClient(b.port, { protocolVersion: 5, clientId: id, properties: { topicAliasMaximum: 3 } });
    expect(b.broker.sessions.get(id)?.conn?.aliasesOut?.max).toBe(3);
    await s.client.subscribeAsync("oa/js/#", { qos: 1 });
    const p = await pool.raw(b, 5, "oa-js-pub");
    const expected: [string, string][] = [];
    for (let round = 0; round < 3; round++) {
      for (const t of ["a", "b", "c", "d", "e"]) {
        const topic = `oa/js/${t}`;
        expected.push([topic, `${t}${round}`]);
        await publish(p, topic, `${t}${round}`, (round % 2) as 0 | 1);
      }
    }
    await s.waitMessages(expected.length);
    expect(s.messages.map((m) => [m.topic, m.payload.toString()])).toEqual(expected);
    await s.end();
  });

  test("config mqtt.outboundTopicAliases false: no alias even for a client that allows 10", async () => {
    const s = await pool.raw(k, 5, "oa-off", { properties: { topicAliasMaximum: 10 } });
    await subscribe(s, [{ topic: "oa/off", qos: 0 }]);
    const p = await pool.raw(k, 5, "oa-off-pub");
    for (const m of ["1", "2"]) await publish(p, "oa/off", m, 0);
    expect(short(await receive(s, 2))).toEqual([
      ["oa/off", undefined, "oa/off", "1"],
      ["oa/off", undefined, "oa/off", "2"],
    ]);
  });
});

describe("inbound Topic Alias against the announced maximum (v5 §3.2.2.3.8, §3.3.2.3.4)", () => {
  test("limits.topicAliasMaximum 3: CONNACK says 3, aliases 1..3 are all accepted [MQTT-3.3.2-12], 4 → DISCONNECT 0x94 [MQTT-3.3.2-9]", async () => {
    const s = await pool.raw(k, 5, "ia-sub");
    await subscribe(s, [{ topic: "ia/+", qos: 0 }]);
    const c = await pool.socket(k, 5);
    const ack = await c.handshake({ clientId: uid("ia-pub") });
    expect(ack.properties?.topicAliasMaximum).toBe(3);
    for (const a of [1, 2, 3]) c.send({ cmd: "publish", topic: `ia/${a}`, payload: Buffer.from(`bind${a}`), qos: 0, properties: { topicAlias: a } });
    for (const a of [3, 2, 1]) c.send({ cmd: "publish", topic: "", payload: Buffer.from(`use${a}`), qos: 0, properties: { topicAlias: a } });
    c.send({ cmd: "publish", topic: "ia/4", payload: Buffer.from("over"), qos: 0, properties: { topicAlias: 4 } });
    await expectDisconnect(c, 0x94);
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await s.nextOf("publish"));
    expect(got.map((m) => [m.topic, text(m)])).toEqual([
      ["ia/1", "bind1"],
      ["ia/2", "bind2"],
      ["ia/3", "bind3"],
      ["ia/3", "use3"],
      ["ia/2", "use2"],
      ["ia/1", "use1"],
    ]);
    expect(await s.drain(150)).toEqual([]); // "over" was not routed
  });

  test("limits.topicAliasMaximum 0: CONNACK announces no aliases (absent or 0) and alias 1 → DISCONNECT 0x94 [MQTT-3.2.2-18]", async () => {
    const c = await pool.socket(z, 5);
    const ack = await c.handshake({ clientId: uid("ia-zero") });
    expect(ack.properties?.topicAliasMaximum ?? 0).toBe(0);
    c.send({ cmd: "publish", topic: "ia/zero", payload: Buffer.from("x"), qos: 0, properties: { topicAlias: 1 } });
    await expectDisconnect(c, 0x94);
  });

  test("bindings belong to the connection: two publishers bind alias 1 to different topics and each resolves its own", async () => {
    const s = await pool.raw(b, 5, "ia-two-sub");
    await subscribe(s, [{ topic: "ia/two/+", qos: 0 }]);
    const p1 = await pool.raw(b, 5, "ia-two-1");
    const p2 = await pool.raw(b, 5, "ia-two-2");
    await publish(p1, "ia/two/one", "1a", 1, { properties: { topicAlias: 1 } });
    await publish(p2, "ia/two/two", "2a", 1, { properties: { topicAlias: 1 } });
    await publish(p1, "", "1b", 1, { properties: { topicAlias: 1 } });
    await publish(p2, "", "2b", 1, { properties: { topicAlias: 1 } });
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await s.nextOf("publish"));
    expect(got.map((m) => [m.topic, text(m)])).toEqual([
      ["ia/two/one", "1a"],
      ["ia/two/two", "2a"],
      ["ia/two/one", "1b"],
      ["ia/two/two", "2b"],
    ]);
  });

  test("a topic with a wildcard plus an alias is refused: DISCONNECT 0x82 [MQTT-3.3.2-2]", async () => {
    const c = await pool.raw(b, 5, "ia-wild");
    c.send({ cmd: "publish", topic: "ia/+/x", payload: Buffer.from("x"), qos: 0, properties: { topicAlias: 1 } });
    await expectDisconnect(c, 0x82);
  });
});
