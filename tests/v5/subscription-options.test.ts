/**
 * MQTT 5 subscription options (No Local, Retain As Published, Retain
 * Handling) and Subscription Identifiers, for what
 * tests/protocol/02-subscribe.test.ts does not already cover (there: No
 * Local basic + PUBACK 0x10, RAP on live forwarding, Retain Handling 0/1/2 on
 * one session, identifiers 5+7, removal/replacement on resubscribe, id 0 and
 * two ids → 0x82, SUBACK/UNSUBACK codes for plain filters). Here: overlap,
 * options kept in a stored session and replaced by a re-SUBSCRIBE, RAP for
 * queued deliveries and retained-on-subscribe, Retain Handling 1 across a
 * resumed session, identifiers on queued and re-sent retained messages, and
 * per-filter SUBACK / UNSUBACK codes mixing plain and shared filters.
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { type Packet, publishesUntil } from "../helpers/raw.ts";
import { drop, parsePublish, propEntries, publish, publishFramesOf, subscribe, text } from "./util.ts";

const b = useTestBroker();
const pool = usePool();

function subIds(p: Packet): number[] {
  const v = p.properties?.subscriptionIdentifier;
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).slice().sort((x: number, y: number) => x - y);
}
const isMarker = (m: Packet) => text(m) === "marker";

describe("No Local [MQTT-3.8.3-3]", () => {
  test("overlap in one session (so/nl/# No Local id 1, so/nl/t id 2): the own message arrives exactly once, through the subscription without No Local, carrying its identifier 2", async () => {
    const c = await pool.raw(b, 5, "so-nl-overlap");
    await subscribe(c, [{ topic: "so/nl/#", qos: 1, nl: true }], { subscriptionIdentifier: 1 }, 1);
    await subscribe(c, [{ topic: "so/nl/t", qos: 1 }], { subscriptionIdentifier: 2 }, 2);
    await publish(c, "so/nl/t", "own", 0);
    await publish(c, "so/nl/other", "own-other", 0); // only the No Local filter matches: not delivered
    await publish(c, "so/nl/t", "marker", 0);
    const got = await publishesUntil(c, isMarker);
    expect(got.map(text)).toEqual(["own", "marker"]);
    expect(subIds(got[0]!)).toContain(2);
  });

  test("No Local is part of the stored session: after a resume the client still does not get its own messages, and still gets others'", async () => {
    const id = uid("so-nl-stored");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await pool.raw(b, 5, "x", opts);
    await subscribe(c, [{ topic: "so/nls/t", qos: 1, nl: true }]);
    await drop(b, c, id);
    const r = await pool.raw(b, 5, "x", opts);
    const pa = await publish(r, "so/nls/t", "own", 1);
    expect(pa!.reasonCode).toBe(0x10); // its only match is its own No Local subscription
    const o = await pool.raw(b, 5, "so-nls-other");
    await publish(o, "so/nls/t", "marker", 0);
    const got = await publishesUntil(r, isMarker);
    expect(got.map(text)).toEqual(["marker"]);
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test("a re-SUBSCRIBE replaces the options [MQTT-3.8.4-3]: No Local 1 → 0 brings the own messages back, Retain As Published 0 → 1 turns RETAIN on", async () => {
    const c = await pool.raw(b, 5, "so-replace");
    await subscribe(c, [{ topic: "so/rep/t", qos: 0, nl: true, rap: false, rh: 2 }]);
    await publish(c, "so/rep/t", "hidden", 0, { retain: true });
    const o = await pool.raw(b, 5, "so-replace-other");
    await publish(o, "so/rep/t", "marker", 0);
    let got = await publishesUntil(c, isMarker);
    expect(got.map((m) => [text(m), m.retain])).toEqual([["marker", false]]);

    await subscribe(c, [{ topic: "so/rep/t", qos: 0, nl: false, rap: true, rh: 2 }], undefined, 2);
    await publish(c, "so/rep/t", "visible", 0, { retain: true });
    await publish(o, "so/rep/t", "marker", 0);
    got = await publishesUntil(c, isMarker);
    expect(got.map((m) => [text(m), m.retain])).toEqual([
      ["visible", true],
      ["marker", false],
    ]);
    expect(b.broker.sessions.get(c.id)!.subs.size).toBe(1);
    await publish(o, "so/rep/t", "", 1, { retain: true });
  });
});

describe("Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13]", () => {
  test("retained messages sent because of a SUBSCRIBE have RETAIN 1 whatever RAP says (§3.3.1.3, [MQTT-3.3.1-9])", async () => {
    const p = await pool.raw(b, 5, "so-rap-ret-pub");
    await publish(p, "so/rapret/t", "stored", 1, { retain: true });
    for (const rap of [false, true]) {
      const s = await pool.raw(b, 5, `so-rapret-${rap}`);
      await subscribe(s, [{ topic: "so/rapret/t", qos: 1, rap }]);
      const m = await s.nextOf("publish");
      expect([text(m), m.retain]).toEqual(["stored", true]);
      s.send({ cmd: "puback", messageId: m.messageId });
    }
    await publish(p, "so/rapret/t", "", 1, { retain: true });
  });

  test("RAP also rules queued deliveries: a retained publish while the subscribers are offline arrives with RETAIN 1 for RAP 1 and RETAIN 0 for RAP 0", async () => {
    const ids = [uid("so-rapq-1"), uid("so-rapq-0")];
    const opts = (id: string) => ({ clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    for (const [i, id] of ids.entries()) {
      const c = await pool.raw(b, 5, "x", opts(id));
      await subscribe(c, [{ topic: "so/rapq/t", qos: 1, rap: i === 0, rh: 2 }]);
      await drop(b, c, id);
    }
    const p = await pool.raw(b, 5, "so-rapq-pub");
    await publish(p, "so/rapq/t", "while offline", 1, { retain: true });
    const flags: boolean[] = [];
    for (const id of ids) {
      const r = await pool.raw(b, 5, "x", opts(id));
      const m = await r.nextOf("publish");
      expect(text(m)).toBe("while offline");
      flags.push(m.retain);
      r.send({ cmd: "puback", messageId: m.messageId });
      r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    }
    expect(flags).toEqual([true, false]);
    await publish(p, "so/rapq/t", "", 1, { retain: true });
  });
});

describe("Retain Handling [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]", () => {
  test("RH 1 in a resumed session: the subscription already exists → no retained message; after Clean Start 1 the same SUBSCRIBE gets it", async () => {
    const p = await pool.raw(b, 5, "so-rh1-pub");
    await publish(p, "so/rh1/t", "stored", 1, { retain: true });
    const id = uid("so-rh1");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await pool.raw(b, 5, "x", opts);
    await subscribe(c, [{ topic: "so/rh1/t", qos: 1, rh: 1 }]);
    const first = await c.nextOf("publish");
    expect([text(first), first.retain]).toEqual(["stored", true]);
    c.send({ cmd: "puback", messageId: first.messageId });
    await drop(b, c, id);

    const r = await pool.raw(b, 5, "x", opts);
    await subscribe(r, [{ topic: "so/rh1/t", qos: 1, rh: 1 }]);
    await publish(p, "so/rh1/t", "marker", 0);
    expect((await publishesUntil(r, isMarker)).map(text)).toEqual(["marker"]);
    await drop(b, r, id);

    const fresh = await pool.raw(b, 5, "x", { clientId: id, clean: true });
    await subscribe(fresh, [{ topic: "so/rh1/t", qos: 1, rh: 1 }]);
    const again = await fresh.nextOf("publish");
    expect([text(again), again.retain]).toEqual(["stored", true]);
    fresh.send({ cmd: "puback", messageId: again.messageId });
    await publish(p, "so/rh1/t", "", 1, { retain: true });
  });

  test("MQTT.js v5 subscribe options {nl, rap, rh: 2} reach the broker and take effect", async () => {
    const p = await pool.raw(b, 5, "so-js-pub");
    await publish(p, "so/js/t", "stored", 1, { retain: true });
    const id = uid("so-js");
    const c = await connectClient(b.port, { protocolVersion: 5, clientId: id });
    await c.client.subscribeAsync("so/js/t", { qos: 1, nl: true, rap: true, rh: 2 });
    const sub = b.broker.sessions.get(id)!.subs.get("so/js/t")!;
    expect([sub.noLocal, sub.rap, sub.rh, sub.qos]).toEqual([true, true, 2, 1]);
    await c.client.publishAsync("so/js/t", "own", { qos: 1 });
    await publish(p, "so/js/t", "live", 1, { retain: true });
    await c.waitMessages(1);
    await Bun.sleep(100);
    expect(c.messages.map((m) => [m.payload.toString(), m.retain])).toEqual([["live", true]]);
    await c.end();
    await publish(p, "so/js/t", "", 1, { retain: true });
  });
});

describe("Subscription Identifiers (§3.8.2.1.2, [MQTT-3.3.4-2] .. [MQTT-3.3.4-4])", () => {
  test("three overlapping subscriptions with ids 1, 2, 3 and one without: a single copy at the highest granted QoS carrying 1, 2 and 3, each as its own property", async () => {
    const s = await pool.raw(b, 5, "so-ids3");
    await subscribe(s, [{ topic: "so/ids/#", qos: 0 }], { subscriptionIdentifier: 1 }, 1);
    await subscribe(s, [{ topic: "so/ids/+/c", qos: 2 }], { subscriptionIdentifier: 2 }, 2);
    await subscribe(s, [{ topic: "so/ids/b/c", qos: 1 }], { subscriptionIdentifier: 3 }, 3);
    await subscribe(s, [{ topic: "so/+/b/c", qos: 0 }], undefined, 4);
    const p = await pool.raw(b, 5, "so-ids3-pub");
    await publish(p, "so/ids/b/c", "x", 2);
    await publish(p, "so/ids/b/c", "marker", 0);
    const got = await publishesUntil(s, isMarker);
    expect(got.length).toBe(2);
    expect([text(got[0]!), got[0]!.qos, subIds(got[0]!)]).toEqual(["x", 2, [1, 2, 3]]);
    const raw = parsePublish(publishFramesOf(s).at(-2)!, true);
    const ids = propEntries(raw.props!).filter((e) => e.id === 0x0b).map((e) => e.bytes[1]);
    expect(ids.sort()).toEqual([1, 2, 3]);
    s.send({ cmd: "pubrec", messageId: got[0]!.messageId });
  });

  test("identifiers are stored with the session and go with queued messages delivered after a resume", async () => {
    const id = uid("so-ids-q");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await pool.raw(b, 5, "x", opts);
    await subscribe(c, [{ topic: "so/idq/+", qos: 1 }], { subscriptionIdentifier: 42 }, 1);
    await subscribe(c, [{ topic: "so/idq/b", qos: 1 }], { subscriptionIdentifier: 16384 }, 2);
    await drop(b, c, id);
    const p = await pool.raw(b, 5, "so-ids-q-pub");
    await publish(p, "so/idq/a", "a");
    await publish(p, "so/idq/b", "b");
    const r = await pool.raw(b, 5, "x", opts);
    const a = await r.nextOf("publish");
    const bb = await r.nextOf("publish");
    expect([text(a), subIds(a)]).toEqual(["a", [42]]);
    expect([text(bb), subIds(bb)]).toEqual(["b", [42, 16384]]);
    for (const m of [a, bb]) r.send({ cmd: "puback", messageId: m.messageId });
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test("a re-SUBSCRIBE with a new identifier and RH 0: the retained message re-sent because of it carries the new identifier", async () => {
    const p = await pool.raw(b, 5, "so-ids-ret-pub");
    await publish(p, "so/idr/t", "stored", 1, { retain: true });
    const s = await pool.raw(b, 5, "so-ids-ret");
    await subscribe(s, [{ topic: "so/idr/t", qos: 0 }], { subscriptionIdentifier: 7 }, 1);
    expect(subIds(await s.nextOf("publish"))).toEqual([7]);
    await subscribe(s, [{ topic: "so/idr/t", qos: 0 }], { subscriptionIdentifier: 8 }, 2);
    const again = await s.nextOf("publish");
    expect([text(again), again.retain, subIds(again)]).toEqual(["stored", true, [8]]);
    await publish(p, "so/idr/t", "", 1, { retain: true });
  });
});

describe("reason codes per filter, plain and shared mixed [MQTT-3.8.4-6] [MQTT-3.8.4-7] [MQTT-3.9.3-1] [MQTT-3.11.3-1]", () => {
  test("SUBACK: one code per filter in order — granted QoS, or 0x8F for each invalid filter (plain or $share); UNSUBACK: 0x00 / 0x11 per filter in order", async () => {
    const c = await pool.raw(b, 5, "so-codes");
    const ack = await subscribe(c, [
      { topic: "so/codes/a", qos: 0 },
      { topic: "so/codes/+", qos: 1 },
      { topic: "so/codes/#/b", qos: 2 },
      { topic: "$share/g/so/codes/c", qos: 2 },
      { topic: "$share/g+/so/codes", qos: 1 },
      { topic: "so/codes/d", qos: 2 },
    ]);
    expect(ack.granted).toEqual([0x00, 0x01, 0x8f, 0x02, 0x8f, 0x02]);
    c.send({ cmd: "unsubscribe", messageId: 9, unsubscriptions: ["so/codes/a", "so/codes/x", "$share/g/so/codes/c", "$share/h/so/codes/c", "so/codes/d", "so/codes/a"] });
    const un = await c.nextOf("unsuback");
    expect(un.messageId).toBe(9);
    expect(un.granted).toEqual([0x00, 0x11, 0x00, 0x11, 0x00, 0x11]);
    expect([...b.broker.sessions.get(c.id)!.subs.keys()]).toEqual(["so/codes/+"]);
  });
});
