/**
 * SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK, wildcard matching and `$`
 * topics, for 3.1.1 (level 4) and 5, over real sockets.
 *
 * Broker policy under test (documented in lib/handlers/subscribe.ts): a
 * syntactically invalid filter fails on its own (3.1.1 SUBACK 0x80, v5 0x8F)
 * while the other filters of the same SUBSCRIBE proceed.
 *
 * "Nothing else arrived" is checked without timers: the broker handles one
 * connection's packets in order and writes to a subscriber in that order, so
 * a marker published after the message under test arrives after any copy of
 * it. Collecting up to the marker shows exactly what was sent before it.
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { type Packet, publishesUntil, RawClient } from "../helpers/raw.ts";

const b = useTestBroker();
const pool = usePool();

const VERSIONS = [4, 5] as const;
type V = 4 | 5;

/** Connect a raw client with a known Client ID (closed after the test). */
const raw = (version: V, tag: string, opts: Record<string, unknown> = {}) => pool.raw(b, version, tag, opts);

/** SUBSCRIBE and return the SUBACK (it must be the next packet). */
async function subscribe(c: RawClient, messageId: number, subscriptions: Record<string, unknown>[], properties?: Record<string, unknown>): Promise<Packet> {
  c.send({ cmd: "subscribe", messageId, subscriptions, ...(properties ? { properties } : {}) });
  const ack = await c.next();
  expect(ack.cmd).toBe("suback");
  return ack;
}

async function unsubscribe(c: RawClient, messageId: number, unsubscriptions: string[]): Promise<Packet> {
  c.send({ cmd: "unsubscribe", messageId, unsubscriptions });
  const ack = await c.next();
  expect(ack.cmd).toBe("unsuback");
  return ack;
}

function publish(c: RawClient, topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 0, extra: Record<string, unknown> = {}): void {
  c.send({ cmd: "publish", topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos, retain: false, ...(qos > 0 ? { messageId: ++pubIds } : {}), ...extra });
}
let pubIds = 0;

/** Delete a retained message and wait until the broker has done it. */
async function clearRetained(p: RawClient, topic: string): Promise<void> {
  const messageId = ++pubIds;
  p.send({ cmd: "publish", topic, payload: Buffer.alloc(0), qos: 1, messageId, retain: true });
  expect((await p.nextOf("puback")).messageId).toBe(messageId);
  expect(b.broker.retainedMessage(topic)).toBeNull();
}

function subIds(p: Packet): number[] {
  const v = p.properties?.subscriptionIdentifier;
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).slice().sort((x: number, y: number) => x - y);
}

function end(...cs: RawClient[]): void {
  for (const c of cs) c.destroy();
}

// ---------------------------------------------------------------------------

describe("SUBACK [MQTT-3.8.4-1] [MQTT-3.8.4-4]/5 [MQTT-3.8.4-5] [MQTT-3.9.3-1]", () => {
  for (const v of VERSIONS) {
    test(`v${v}: same packet id, one code per filter in request order, granted = requested`, async () => {
      const c = await raw(v, "suback");
      const ack = await subscribe(c, 0x1234, [
        { topic: `sa${v}/b`, qos: 2 },
        { topic: `sa${v}/c/#`, qos: 1 },
        { topic: `sa${v}/+/d`, qos: 0 },
        { topic: `sa${v}/e`, qos: 1 },
      ]);
      expect(ack.messageId).toBe(0x1234);
      expect(ack.granted).toEqual([2, 1, 0, 1]);
      // White box: exactly these four subscriptions, with the granted QoS.
      const s = b.broker.sessions.get(c.id)!;
      expect([...s.subs.keys()].sort()).toEqual([`sa${v}/+/d`, `sa${v}/b`, `sa${v}/c/#`, `sa${v}/e`]);
      expect(s.subs.get(`sa${v}/b`)!.qos).toBe(2);
      end(c);
    });
  }

  test("3.1.1 SUBACK bytes are exact: 90 05 00 2A 02 01 00 [MQTT-3.9.3-1]", async () => {
    const c = await raw(4, "sabytes");
    const before = c.received.length;
    await subscribe(c, 42, [
      { topic: "sabytes/a", qos: 2 },
      { topic: "sabytes/b", qos: 1 },
      { topic: "sabytes/c", qos: 0 },
    ]);
    expect(Buffer.concat(c.received.slice(before))).toEqual(Buffer.from([0x90, 0x05, 0x00, 0x2a, 0x02, 0x01, 0x00]));
    end(c);
  });

  test("MQTT.js v5 and 3.1.1 clients get the requested QoS granted", async () => {
    for (const protocolVersion of VERSIONS) {
      const c = await connectClient(b.port, { protocolVersion });
      const granted = await c.client.subscribeAsync({ [`sajs${protocolVersion}/a`]: { qos: 2 }, [`sajs${protocolVersion}/b`]: { qos: 0 } });
      expect(granted.map((g) => [g.topic, g.qos])).toEqual([
        [`sajs${protocolVersion}/a`, 2],
        [`sajs${protocolVersion}/b`, 0],
      ]);
      await c.end();
    }
  });
});

describe("invalid topic filters fail alone (lenient policy) [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]", () => {
  const invalid = ["iv/#/b", "iv#", "iv+", "#/iv", "", "iv/b+", "+iv/b"];
  for (const v of VERSIONS) {
    test(`v${v}: each invalid filter gets ${v === 5 ? "0x8F" : "0x80"}, the valid ones in the same SUBSCRIBE succeed and work`, async () => {
      const c = await raw(v, "invalid");
      const fail = v === 5 ? 0x8f : 0x80;
      const ack = await subscribe(c, 9, [
        { topic: `ivok${v}/1`, qos: 1 },
        ...invalid.map((topic) => ({ topic, qos: 0 })),
        { topic: `ivok${v}/2`, qos: 2 },
      ]);
      expect(ack.messageId).toBe(9);
      expect(ack.granted).toEqual([1, ...invalid.map(() => fail), 2]);
      const s = b.broker.sessions.get(c.id)!;
      expect([...s.subs.keys()].sort()).toEqual([`ivok${v}/1`, `ivok${v}/2`]);
      // The connection stays up and the valid subscriptions deliver.
      const p = await raw(4, "ivpub");
      publish(p, `ivok${v}/1`, "one");
      publish(p, `ivok${v}/2`, "two");
      const got = await publishesUntil(c, (m) => m.payload.toString() === "two");
      expect(got.map((m) => m.topic)).toEqual([`ivok${v}/1`, `ivok${v}/2`]);
      expect(c.closed).toBe(false);
      end(c, p);
    });
  }
});

// ---------------------------------------------------------------------------

/**
 * Subscribe `filter`, publish `topics` in order (QoS 0, payload = index), and
 * check the subscriber receives exactly `expected`, in order. Topics that must
 * not match are published before the last expected one, so a wrong delivery
 * shows up inside the collected list.
 */
async function matchCase(filter: string, topics: string[], expected: string[], version: V = 4): Promise<void> {
  const s = await raw(version, "wc");
  const ack = await subscribe(s, 1, [{ topic: filter, qos: 0 }]);
  expect(ack.granted).toEqual([0]);
  const p = await raw(4, "wcpub");
  topics.forEach((t, i) => publish(p, t, `m${i}`));
  const got: string[] = [];
  while (got.length < expected.length) got.push((await s.nextOf("publish")).topic);
  expect(got).toEqual(expected);
  end(s, p);
}

describe("wildcard matching over real delivery [MQTT-4.7.1-2] [MQTT-4.7.1-3] §4.7.3 [MQTT-4.7.3-4]", () => {
  // [filter, topics published (in order), topics that must arrive (in order)]
  const table: [string, string, string[], string[]][] = [
    ["# matches the parent level: a/# matches a, a/, a/b/c", "wa/#", ["wax", "wb/a", "/wa", "wa", "wa/", "wa/b", "wa/b/c"], ["wa", "wa/", "wa/b", "wa/b/c"]],
    ["+ is one level, possibly empty: a/+ matches a/ and a/b, not a nor a/b/c", "wp/+", ["wp", "wp/b/c", "wpx/b", "wp/", "wp/b"], ["wp/", "wp/b"]],
    ["a single + does not match /x nor x/ nor x/y", "+", ["/wplus", "wplus/", "wplus/y", "wplus"], ["wplus"]],
    ["+/+ matches /x and x/ but not x nor x/y/z", "+/+", ["wpp", "wpp/y/z", "/wpp", "wpp/", "wpp/y"], ["/wpp", "wpp/", "wpp/y"]],
    ["/+ matches /x but not x nor //x", "/+", ["wsp", "//wsp", "wsp/x", "/wsp"], ["/wsp"]],
    ["+ in the middle and # at the end: +/w6/#", "+/w6/#", ["w6", "a/b/w6", "a/w6x", "a/w6", "/w6", "a/w6/b/c"], ["a/w6", "/w6", "a/w6/b/c"]],
    ["# matches every non-$ topic", "#", ["whash", "/whash", "whash/a/b", "whash/"], ["whash", "/whash", "whash/a/b", "whash/"]],
    ["matching is case sensitive (no case folding)", "Wcase/ACCOUNTS", ["wcase/accounts", "WCASE/ACCOUNTS", "Wcase/Accounts", "Wcase/ACCOUNTS"], ["Wcase/ACCOUNTS"]],
    ["a leading / makes a different topic: /a vs a", "/wlead", ["wlead", "wlead/", "//wlead", "/wlead"], ["/wlead"]],
    ["a filter without a leading / does not match /a", "wlead2", ["/wlead2", "wlead2/", "wlead2"], ["wlead2"]],
    ["empty levels are levels: a//b", "wempty//b", ["wempty/b", "wempty///b", "wempty//b"], ["wempty//b"]],
    ["+ matches an empty middle level", "wmid/+/b", ["wmid/b", "wmid/x/y/b", "wmid//b", "wmid/x/b"], ["wmid//b", "wmid/x/b"]],
    ["spaces are ordinary characters", "wsp ace/a b", ["wsp ace/ab", "wspace/a b", "wsp ace/a b"], ["wsp ace/a b"]],
    ["non-ASCII levels match exactly, no normalization [MQTT-4.7.3-4]", "wuni/+/é", ["wuni/x/e\u0301", "wuni/x/É", "wuni/x/é"], ["wuni/x/é"]],
    ["+/# matches a", "+/#", ["wph", "wph/x/y"], ["wph", "wph/x/y"]],
  ];
  for (const [name, filter, topics, expected] of table) {
    test(`${name} (filter "${filter}")`, async () => {
      await matchCase(filter, topics, expected);
    });
  }

  test("v5 subscriber sees the same matches (a/# matches a, + not /x)", async () => {
    await matchCase("w5/#", ["w5x", "w5", "w5/a"], ["w5", "w5/a"], 5);
    await matchCase("+", ["/w5p", "w5p"], ["w5p"], 5);
  });
});

describe("$ topics [MQTT-4.7.2-1]", () => {
  test("# , +/x, +/+ and + never receive $ topics; $test/# and $test/+ do", async () => {
    const filters: [string, string[]][] = [
      ["#", ["dt/x", "dt"]],
      ["+/x", ["dt/x"]],
      ["+/+", ["dt/x"]],
      ["+", ["dt"]],
      ["+/#", ["dt/x", "dt"]],
      ["$dt/#", ["$dt/x", "$dt"]],
      ["$dt/+", ["$dt/x"]],
      ["$dt", ["$dt"]],
    ];
    const subs: RawClient[] = [];
    for (const [f] of filters) {
      const s = await raw(4, "dollar");
      expect((await subscribe(s, 1, [{ topic: f, qos: 0 }])).granted).toEqual([0]);
      subs.push(s);
    }
    // A client may publish to $ topics other than $SYS (the broker's policy).
    const p = await raw(4, "dollarpub");
    for (const t of ["$dt/x", "$dt", "dt/x", "dt"]) publish(p, t, t);
    for (let i = 0; i < filters.length; i++) {
      const [f, expected] = filters[i]!;
      const got: string[] = [];
      while (got.length < expected.length) got.push((await subs[i]!.nextOf("publish")).topic);
      expect({ filter: f, got }).toEqual({ filter: f, got: expected });
    }
    end(p, ...subs);
  });

  test("v5: # does not receive $test/x, $test/# does (and the PUBACK says someone matched)", async () => {
    const all = await raw(5, "dollar5");
    const dol = await raw(5, "dollar5");
    await subscribe(all, 1, [{ topic: "#", qos: 1 }]);
    await subscribe(dol, 1, [{ topic: "$test/#", qos: 1 }]);
    const p = await raw(5, "dollar5pub");
    p.send({ cmd: "publish", topic: "$test/x", payload: Buffer.from("secret"), qos: 1, messageId: 3 });
    const pa = await p.nextOf("puback");
    expect(pa.messageId).toBe(3);
    expect(pa.reasonCode).toBe(0);
    const got = await dol.nextOf("publish");
    expect([got.topic, got.payload.toString()]).toEqual(["$test/x", "secret"]);
    publish(p, "d5marker", "marker");
    const first = await all.nextOf("publish");
    expect(first.topic).toBe("d5marker");
    end(all, dol, p);
  });
});

// ---------------------------------------------------------------------------

describe("overlapping subscriptions in one session: one copy at the highest QoS (3.1.1 [MQTT-3.3.5-1], 5 [MQTT-3.3.4-2])", () => {
  for (const v of VERSIONS) {
    for (const [plusQos, hashQos] of [
      [0, 2],
      [2, 0],
    ] as const) {
      test(`v${v}: a/+ QoS ${plusQos} and a/# QoS ${hashQos}, QoS 2 publish → exactly one copy at QoS 2`, async () => {
        const s = await raw(v, "overlap");
        const base = `ov${v}${plusQos}`;
        const ack = await subscribe(s, 5, [
          { topic: `${base}/+`, qos: plusQos },
          { topic: `${base}/#`, qos: hashQos },
        ]);
        expect(ack.granted).toEqual([plusQos, hashQos]);
        const p = await raw(v, "overlappub");
        p.send({ cmd: "publish", topic: `${base}/b`, payload: Buffer.from("once"), qos: 2, messageId: 11 });
        expect((await p.nextOf("pubrec")).messageId).toBe(11);
        publish(p, `${base}/b`, "marker");
        const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
        expect(got.map((m) => [m.payload.toString(), m.qos])).toEqual([
          ["once", 2],
          ["marker", 0],
        ]);
        expect(got[0]!.messageId).toBeGreaterThan(0);
        expect(got[0]!.dup).toBe(false);
        end(s, p);
      });
    }
  }
});

describe("re-subscribing an identical filter replaces the subscription (3.1.1 [MQTT-3.8.4-3], 5 [MQTT-3.8.4-3]/[MQTT-3.8.4-4])", () => {
  for (const v of VERSIONS) {
    test(`v${v}: new QoS applies, still one subscription, retained message re-sent (RH 0)`, async () => {
      const topic = `rs${v}/t`;
      const p = await raw(4, "rspub");
      p.send({ cmd: "publish", topic, payload: Buffer.from("kept"), qos: 1, messageId: 1, retain: true });
      await p.nextOf("puback");
      const s = await raw(v, "resub");
      expect((await subscribe(s, 1, [{ topic: `rs${v}/#`, qos: 2 }])).granted).toEqual([2]);
      const r1 = await s.nextOf("publish");
      expect([r1.topic, r1.payload.toString(), r1.retain, r1.qos]).toEqual([topic, "kept", true, 1]);
      const count = b.broker.stats().subscriptions;

      expect((await subscribe(s, 2, [{ topic: `rs${v}/#`, qos: 1 }])).granted).toEqual([1]);
      // [MQTT-3.3.1-6] 3.1.1 / [MQTT-3.3.1-9] 5: retained messages are sent again, RETAIN = 1.
      const r2 = await s.nextOf("publish");
      expect([r2.topic, r2.payload.toString(), r2.retain, r2.qos]).toEqual([topic, "kept", true, 1]);
      expect(b.broker.stats().subscriptions).toBe(count);
      const sess = b.broker.sessions.get(s.id)!;
      expect(sess.subs.size).toBe(1);
      expect(sess.subs.get(`rs${v}/#`)!.qos).toBe(1);

      // The new granted QoS (1) caps a live QoS 2 publish; one copy only.
      p.send({ cmd: "publish", topic, payload: Buffer.from("live"), qos: 2, messageId: 2 });
      await p.nextOf("pubrec");
      publish(p, topic, "marker");
      const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
      expect(got.map((m) => [m.payload.toString(), m.qos, m.retain])).toEqual([
        ["live", 1, false],
        ["marker", 0, false],
      ]);
      // Clean up the retained message.
      await clearRetained(p, topic);
      end(s, p);
    });
  }

  test("v5 Retain Handling: 0 re-sends, 1 sends only for a new subscription, 2 never [MQTT-3.3.1-9..11]", async () => {
    const p = await raw(5, "rhpub");
    for (const t of ["rh/1/t", "rh/2/t"]) {
      p.send({ cmd: "publish", topic: t, payload: Buffer.from(`ret-${t}`), qos: 1, messageId: 1, retain: true });
      await p.nextOf("puback");
    }
    const s = await raw(5, "rh");
    /** SUBSCRIBE, then a live marker; returns the payloads received before and including the marker. */
    const round = async (filter: string, rh: number, marker: string) => {
      const ack = await subscribe(s, 7, [{ topic: filter, qos: 1, rh }]);
      expect(ack.granted).toEqual([1]);
      publish(p, marker, "marker");
      const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
      return got.map((m) => `${m.payload.toString()}${m.retain ? " (retain)" : ""}`);
    };
    // RH 1: new subscription → sent; the same filter again → not sent; RH 0 again → sent.
    expect(await round("rh/1/#", 1, "rh/1/m")).toEqual(["ret-rh/1/t (retain)", "marker"]);
    expect(await round("rh/1/#", 1, "rh/1/m")).toEqual(["marker"]);
    expect(await round("rh/1/#", 0, "rh/1/m")).toEqual(["ret-rh/1/t (retain)", "marker"]);
    // RH 2: never, neither on a new nor on a replaced subscription.
    expect(await round("rh/2/#", 2, "rh/2/m")).toEqual(["marker"]);
    expect(await round("rh/2/#", 2, "rh/2/m")).toEqual(["marker"]);
    expect(b.broker.sessions.get(s.id)!.subs.size).toBe(2);
    for (const t of ["rh/1/t", "rh/2/t"]) await clearRetained(p, t);
    end(s, p);
  });
});

// ---------------------------------------------------------------------------

describe("UNSUBSCRIBE / UNSUBACK [MQTT-3.10.4-1..6] 5 [MQTT-3.11.3-1]", () => {
  test("3.1.1: UNSUBACK with the same packet id and no payload (remaining length 2), even when nothing was removed", async () => {
    const c = await raw(4, "unsub4");
    await subscribe(c, 1, [{ topic: "un4/a", qos: 1 }]);
    const before = c.received.length;
    const ack = await unsubscribe(c, 0x4d4d, ["un4/a", "un4/none"]);
    expect(ack.messageId).toBe(0x4d4d);
    expect(Buffer.concat(c.received.slice(before))).toEqual(Buffer.from([0xb0, 0x02, 0x4d, 0x4d]));
    const ack2 = await unsubscribe(c, 3, ["un4/never"]);
    expect(ack2.messageId).toBe(3);
    expect(b.broker.sessions.get(c.id)!.subs.size).toBe(0);
    end(c);
  });

  test("v5: one reason code per filter, in order: 0x00 removed, 0x11 no subscription existed", async () => {
    const c = await raw(5, "unsub5");
    await subscribe(c, 1, [
      { topic: "un5/a", qos: 1 },
      { topic: "un5/b/#", qos: 0 },
    ]);
    const ack = await unsubscribe(c, 0x0102, ["un5/a", "un5/none", "un5/b/#", "un5/a"]);
    expect(ack.messageId).toBe(0x0102);
    expect(ack.granted).toEqual([0x00, 0x11, 0x00, 0x11]);
    expect(b.broker.sessions.get(c.id)!.subs.size).toBe(0);
    end(c);
  });

  for (const v of VERSIONS) {
    test(`v${v}: filters compare literally — unsubscribing un/+ or un/# leaves un/b in place [MQTT-3.10.4-1]`, async () => {
      const c = await raw(v, "unlit");
      await subscribe(c, 1, [{ topic: `unl${v}/b`, qos: 0 }]);
      const ack = await unsubscribe(c, 2, [`unl${v}/+`, `unl${v}/#`, "#"]);
      expect(ack.messageId).toBe(2);
      if (v === 5) expect(ack.granted).toEqual([0x11, 0x11, 0x11]);
      expect([...b.broker.sessions.get(c.id)!.subs.keys()]).toEqual([`unl${v}/b`]);
      const p = await raw(4, "unlitpub");
      publish(p, `unl${v}/b`, "still");
      const m = await c.nextOf("publish");
      expect([m.topic, m.payload.toString()]).toEqual([`unl${v}/b`, "still"]);
      end(c, p);
    });

    test(`v${v}: after UNSUBACK no more messages on that filter [MQTT-3.10.4-2]`, async () => {
      const c = await raw(v, "unstop");
      await subscribe(c, 1, [
        { topic: `uns${v}/t`, qos: 1 },
        { topic: `uns${v}/marker`, qos: 0 },
      ]);
      const count = b.broker.stats().subscriptions;
      const p = await raw(4, "unstoppub");
      publish(p, `uns${v}/t`, "before");
      expect((await c.nextOf("publish")).payload.toString()).toBe("before");
      await unsubscribe(c, 2, [`uns${v}/t`]);
      expect(b.broker.stats().subscriptions).toBe(count - 1);
      p.send({ cmd: "publish", topic: `uns${v}/t`, payload: Buffer.from("after"), qos: 1, messageId: 5 });
      await p.nextOf("puback");
      publish(p, `uns${v}/marker`, "marker");
      const got = await publishesUntil(c, (m) => m.payload.toString() === "marker");
      expect(got.map((m) => m.topic)).toEqual([`uns${v}/marker`]);
      end(c, p);
    });
  }

  test("MQTT.js v5 unsubscribe resolves and stops delivery", async () => {
    const c = await connectClient(b.port, { protocolVersion: 5 });
    await c.client.subscribeAsync(["unjs/t", "unjs/m"], { qos: 1 });
    await c.client.unsubscribeAsync("unjs/t");
    const p = await connectClient(b.port, { protocolVersion: 5 });
    await p.client.publishAsync("unjs/t", "gone", { qos: 1 });
    await p.client.publishAsync("unjs/m", "marker", { qos: 1 });
    await c.waitMessages(1);
    expect(c.messages.map((m) => m.topic)).toEqual(["unjs/m"]);
    await Promise.all([c.end(), p.end()]);
  });
});

// ---------------------------------------------------------------------------

describe("v5 Subscription Identifiers §3.8.2.1.2, [MQTT-3.3.4-3], §3.8.4", () => {
  test("ids 5 on si/# and 7 on si/b → a publish to si/b arrives once carrying both; si/c carries only 5", async () => {
    const s = await raw(5, "subid");
    expect((await subscribe(s, 1, [{ topic: "si/#", qos: 1 }], { subscriptionIdentifier: 5 })).granted).toEqual([1]);
    expect((await subscribe(s, 2, [{ topic: "si/b", qos: 0 }], { subscriptionIdentifier: 7 })).granted).toEqual([0]);
    const p = await raw(5, "subidpub");
    publish(p, "si/b", "both");
    publish(p, "si/c", "five");
    const got = await publishesUntil(s, (m) => m.payload.toString() === "five");
    expect(got.map((m) => [m.topic, subIds(m)])).toEqual([
      ["si/b", [5, 7]],
      ["si/c", [5]],
    ]);
    end(s, p);
  });

  test("re-subscribing without an identifier removes it", async () => {
    const s = await raw(5, "subidrm");
    await subscribe(s, 1, [{ topic: "sir/#", qos: 0 }], { subscriptionIdentifier: 5 });
    await subscribe(s, 2, [{ topic: "sir/b", qos: 0 }], { subscriptionIdentifier: 7 });
    const p = await raw(5, "subidrmpub");
    // sir/b loses its identifier: only 5 remains.
    await subscribe(s, 3, [{ topic: "sir/b", qos: 0 }]);
    publish(p, "sir/b", "one");
    expect(subIds(await s.nextOf("publish"))).toEqual([5]);
    // sir/# loses its identifier too: no Subscription Identifier property at all.
    await subscribe(s, 4, [{ topic: "sir/#", qos: 0 }]);
    publish(p, "sir/b", "two");
    const m = await s.nextOf("publish");
    expect(m.payload.toString()).toBe("two");
    expect(m.properties?.subscriptionIdentifier).toBeUndefined();
    // A new identifier replaces the old one.
    await subscribe(s, 5, [{ topic: "sir/b", qos: 0 }], { subscriptionIdentifier: 300000 });
    publish(p, "sir/b", "three");
    expect(subIds(await s.nextOf("publish"))).toEqual([300000]);
    end(s, p);
  });

  test("one SUBSCRIBE with two filters: the identifier is stored on both; retained delivery carries it", async () => {
    const p = await raw(5, "subid2pub");
    p.send({ cmd: "publish", topic: "si2/r", payload: Buffer.from("ret"), qos: 1, messageId: 1, retain: true });
    await p.nextOf("puback");
    const s = await raw(5, "subid2");
    await subscribe(s, 1, [
      { topic: "si2/a", qos: 0 },
      { topic: "si2/r", qos: 0 },
    ], { subscriptionIdentifier: 268435455 });
    const r = await s.nextOf("publish");
    expect([r.topic, r.retain, subIds(r)]).toEqual(["si2/r", true, [268435455]]);
    publish(p, "si2/a", "x");
    expect(subIds(await s.nextOf("publish"))).toEqual([268435455]);
    await clearRetained(p, "si2/r");
    end(s, p);
  });

  test("Subscription Identifier 0 → DISCONNECT 0x82 and close", async () => {
    const s = await raw(5, "subid0");
    s.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "si0/a", qos: 0 }], properties: { subscriptionIdentifier: 0 } });
    const d = await s.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x82);
    expect(await s.waitClose()).toBe(true);
    expect(b.broker.sessions.has(s.id)).toBe(false);
  });

  test("Subscription Identifier 0 as hand-built bytes → DISCONNECT 0x82", async () => {
    const s = await raw(5, "subid0raw");
    // 82 | RL | id 00 01 | props len 2: 0B 00 | "a" | options 00
    s.write([0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x61, 0x00]);
    const d = await s.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x82);
    expect(await s.waitClose()).toBe(true);
  });
});

describe("v5 No Local [MQTT-3.8.3-3] and Retain As Published [MQTT-3.3.1-12]/[MQTT-3.3.1-13]", () => {
  test("No Local: the client does not get its own publish, others do", async () => {
    const a = await raw(5, "nla");
    const o = await raw(5, "nlo");
    await subscribe(a, 1, [{ topic: "nl/t", qos: 1, nl: true }]);
    await subscribe(o, 1, [{ topic: "nl/t", qos: 1 }]);
    a.send({ cmd: "publish", topic: "nl/t", payload: Buffer.from("from-a"), qos: 1, messageId: 4 });
    const pa = await a.next();
    expect([pa.cmd, pa.messageId, pa.reasonCode]).toEqual(["puback", 4, 0]);
    const og = await o.nextOf("publish");
    expect(og.payload.toString()).toBe("from-a");
    o.send({ cmd: "puback", messageId: og.messageId });
    o.send({ cmd: "publish", topic: "nl/t", payload: Buffer.from("from-o"), qos: 0 });
    const ag = await a.nextOf("publish");
    expect(ag.payload.toString()).toBe("from-o");
    end(a, o);
  });

  test("No Local: a session whose only match is its own No Local subscription gets PUBACK 0x10 (nobody reached)", async () => {
    const a = await raw(5, "nlonly");
    await subscribe(a, 1, [{ topic: "nlonly/t", qos: 1, nl: true }]);
    a.send({ cmd: "publish", topic: "nlonly/t", payload: Buffer.from("x"), qos: 1, messageId: 4 });
    const pa = await a.next();
    expect([pa.cmd, pa.messageId, pa.reasonCode]).toEqual(["puback", 4, 0x10]);
    end(a);
  });

  test("Retain As Published keeps RETAIN=1 on live forwarding; RAP 0 and 3.1.1 get RETAIN=0", async () => {
    const rap = await raw(5, "rap1");
    const norap = await raw(5, "rap0");
    const v4 = await raw(4, "rap4");
    await subscribe(rap, 1, [{ topic: "rap/t", qos: 0, rap: true }]);
    await subscribe(norap, 1, [{ topic: "rap/t", qos: 0, rap: false }]);
    await subscribe(v4, 1, [{ topic: "rap/t", qos: 0 }]);
    const p = await raw(5, "rappub");
    p.send({ cmd: "publish", topic: "rap/t", payload: Buffer.from("r"), qos: 0, retain: true });
    p.send({ cmd: "publish", topic: "rap/t", payload: Buffer.from("n"), qos: 0, retain: false });
    const flags = async (c: RawClient) => {
      const got = await publishesUntil(c, (m) => m.payload.toString() === "n");
      return got.map((m) => [m.payload.toString(), m.retain]);
    };
    expect(await flags(rap)).toEqual([
      ["r", true],
      ["n", false],
    ]);
    expect(await flags(norap)).toEqual([
      ["r", false],
      ["n", false],
    ]);
    expect(await flags(v4)).toEqual([
      ["r", false],
      ["n", false],
    ]);
    await clearRetained(p, "rap/t");
    end(rap, norap, v4, p);
  });
});

describe("limits.maxSubscriptionsPerSession (v5 SUBACK 0x97, 3.1.1 0x80)", () => {
  const lb = useTestBroker({ limits: { maxSubscriptionsPerSession: 2 } });

  for (const v of VERSIONS) {
    test(`v${v}: the third filter is refused, replacing one at the limit works, a freed slot can be used`, async () => {
      const id = uid("maxsubs");
      const c = await RawClient.connected(lb.port, v, { clientId: id });
      const fail = v === 5 ? 0x97 : 0x80;
      const ack = await subscribe(c, 1, [
        { topic: "ms/1", qos: 1 },
        { topic: "ms/2", qos: 1 },
        { topic: "ms/3", qos: 1 },
      ]);
      expect(ack.granted).toEqual([1, 1, fail]);
      const s = lb.broker.sessions.get(id)!;
      expect([...s.subs.keys()].sort()).toEqual(["ms/1", "ms/2"]);
      // Replacing an existing subscription is not a new one.
      expect((await subscribe(c, 2, [{ topic: "ms/1", qos: 2 }])).granted).toEqual([2]);
      expect((await subscribe(c, 3, [{ topic: "ms/4", qos: 0 }])).granted).toEqual([fail]);
      await unsubscribe(c, 4, ["ms/2"]);
      expect((await subscribe(c, 5, [{ topic: "ms/3", qos: 0 }])).granted).toEqual([0]);
      expect([...s.subs.keys()].sort()).toEqual(["ms/1", "ms/3"]);
      expect(c.closed).toBe(false);
      c.destroy();
      await waitFor(() => !lb.broker.sessions.has(id), 2000, "session gone");
    });
  }
});
