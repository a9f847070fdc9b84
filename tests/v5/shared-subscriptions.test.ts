/**
 * Shared subscriptions `$share/{ShareName}/{filter}` (CHECKLIST area 7).
 *
 * Each matching message goes to exactly one member of each shared
 * subscription, every plain subscriber and every other group gets its own
 * copy (§4.8.2). Broker policy (lib/broker.ts deliverShared): round-robin
 * over connected members with room in their Receive Maximum window; offered
 * to 3.1.1 clients too (a broker extension). When a member's session ends,
 * its queued messages and its QoS 1 messages in flight go to another member;
 * QoS 2 already sent does not ([MQTT-4.8.2-5]).
 *
 * Already covered in tests/protocol/04-retain.test.ts: no retained message
 * for a new v5 member with Retain Handling 0 or 1.
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { uid, usePool } from "../helpers/pool.ts";
import type { Packet, RawClient } from "../helpers/raw.ts";
import { drop, expectDisconnect, publish, subscribe, text } from "./util.ts";

const b = useTestBroker();
const pool = usePool();

/** PUBLISH packets a client received until it is quiet for `ms`, acknowledged unless `ack` is false. */
async function take(c: RawClient, ack = true, ms = 200): Promise<Packet[]> {
  const out = (await c.drain(ms)).filter((p) => p.cmd === "publish");
  if (ack) for (const m of out) if (m.qos === 1) c.send({ cmd: "puback", messageId: m.messageId });
  return out;
}

const texts = (ps: Packet[]) => ps.map(text);
const sorted = (xs: string[]) => xs.slice().sort();
const range = (n: number, tag = "m") => Array.from({ length: n }, (_, i) => `${tag}${String(i).padStart(2, "0")}`);

async function members(version: 4 | 5, tag: string, filter: string, n: number, qos: 0 | 1 | 2 = 1, props: Record<string, unknown> = {}): Promise<(RawClient & { id: string })[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await pool.raw(b, version, `${tag}${i}`, props);
    const ack = await subscribe(c, [{ topic: filter, qos }]);
    expect(ack.granted).toEqual([qos]);
    out.push(c);
  }
  return out;
}

describe("distribution (§4.8.2)", () => {
  for (const version of [5, 4] as const) {
    test(`v${version === 5 ? 5 : "3.1.1"}: 3 members of $share/g/t, 2 of $share/h/t and a plain subscriber; 30 messages → 10 per g member (round-robin), 15 per h member, each exactly once per group; 30 to the plain one`, async () => {
      const topic = `sh/dist/${version}`;
      const g = await members(version, `sh-g${version}-`, `$share/g/${topic}`, 3);
      const h = await members(version, `sh-h${version}-`, `$share/h/${topic}`, 2);
      const plain = await pool.raw(b, version, `sh-plain${version}`);
      await subscribe(plain, [{ topic, qos: 1 }]);
      const p = await pool.raw(b, version, `sh-pub${version}`);
      const all = range(30);
      for (const m of all) await publish(p, topic, m, 1);
      const gGot = await Promise.all(g.map((c) => take(c)));
      const hGot = await Promise.all(h.map((c) => take(c)));
      expect(gGot.map((x) => x.length)).toEqual([10, 10, 10]);
      expect(hGot.map((x) => x.length)).toEqual([15, 15]);
      expect(sorted(gGot.flatMap(texts))).toEqual(all);
      expect(sorted(hGot.flatMap(texts))).toEqual(all);
      expect(texts(await take(plain))).toEqual(all);
      // Members receive the real topic, not the $share filter.
      expect(new Set(gGot.flat().map((m) => m.topic))).toEqual(new Set([topic]));
    });
  }

  test("CONNACK says Shared Subscription Available (§3.2.2.3.13)", async () => {
    const c = await pool.socket(b, 5, "");
    const ack = await c.handshake({ clientId: uid("sh-connack") });
    expect(ack.properties?.sharedSubscriptionAvailable).toBe(true);
  });

  test("the same ShareName on two filters makes two shared subscriptions (identified by ShareName and filter): a message matching both is delivered once per shared subscription; a session with a plain subscription too gets that copy as well", async () => {
    const c = await pool.raw(b, 5, "sh-two");
    await subscribe(c, [
      { topic: "$share/g/sh/two/+", qos: 0 },
      { topic: "$share/g/sh/two/#", qos: 0 },
      { topic: "sh/two/x", qos: 0 },
    ]);
    const p = await pool.raw(b, 5, "sh-two-pub");
    await publish(p, "sh/two/x", "x", 0);
    await publish(p, "sh/two/y/z", "yz", 0);
    expect(sorted(texts(await take(c)))).toEqual(["x", "x", "x", "yz"]);
  });

  test("each delivery respects the receiving member's granted QoS [MQTT-4.8.2-3] and carries only that member's Subscription Identifier (§3.3.4)", async () => {
    const a = await pool.raw(b, 5, "sh-qos-a");
    const c = await pool.raw(b, 5, "sh-qos-c");
    await subscribe(a, [{ topic: "$share/g/sh/qos", qos: 0 }], { subscriptionIdentifier: 11 });
    await subscribe(c, [{ topic: "$share/g/sh/qos", qos: 2 }], { subscriptionIdentifier: 22 });
    const p = await pool.raw(b, 5, "sh-qos-pub");
    for (const m of range(4)) await publish(p, "sh/qos", m, 2);
    const ga = await take(a);
    const gc = await take(c, false);
    expect(ga.length + gc.length).toBe(4);
    expect(ga.length).toBeGreaterThan(0);
    expect(gc.length).toBeGreaterThan(0);
    for (const m of ga) expect([m.qos, m.properties?.subscriptionIdentifier]).toEqual([0, 11]);
    for (const m of gc) expect([m.qos, m.properties?.subscriptionIdentifier]).toEqual([2, 22]);
  });

  test("subscribing twice to the same shared filter is still one membership: with A (twice) and B, 10 messages split 5 / 5", async () => {
    const a = await pool.raw(b, 5, "sh-twice-a");
    const c = await pool.raw(b, 5, "sh-twice-b");
    await subscribe(a, [{ topic: "$share/g/sh/twice", qos: 1 }]);
    await subscribe(a, [{ topic: "$share/g/sh/twice", qos: 1 }], undefined, 2);
    await subscribe(c, [{ topic: "$share/g/sh/twice", qos: 1 }]);
    const p = await pool.raw(b, 5, "sh-twice-pub");
    for (const m of range(10)) await publish(p, "sh/twice", m, 1);
    const [ga, gc] = await Promise.all([take(a), take(c)]);
    expect([ga.length, gc.length]).toEqual([5, 5]);
    expect(sorted([...texts(ga), ...texts(gc)])).toEqual(range(10));
  });
});

describe("invalid shared filters and options", () => {
  const bad = ["$share/g", "$share//t", "$share/g+/t", "$share/g/a#", "$share/#/t", "$share/g/a/#/b", "$share/"];
  for (const version of [5, 4] as const) {
    test(`v${version === 5 ? 5 : "3.1.1"}: ${bad.join(", ")} → SUBACK ${version === 5 ? "0x8F" : "0x80"} each; a valid $share filter in the same SUBSCRIBE is granted [MQTT-4.8.2-1] [MQTT-4.8.2-2]`, async () => {
      const c = await pool.raw(b, version, `sh-bad${version}`);
      const ack = await subscribe(c, [...bad.map((topic) => ({ topic, qos: 1 })), { topic: "$share/g/sh/bad/ok", qos: 1 }]);
      expect(ack.granted).toEqual([...bad.map(() => (version === 5 ? 0x8f : 0x80)), 1]);
      expect([...b.broker.sessions.get(c.id)!.subs.keys()]).toEqual(["$share/g/sh/bad/ok"]);
      expect(c.closed).toBe(false);
    });
  }

  test("No Local on a shared subscription → DISCONNECT 0x82 [MQTT-3.8.3-4]; no SUBACK and no membership", async () => {
    const c = await pool.raw(b, 5, "sh-nl");
    c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "$share/g/sh/nl", qos: 1, nl: true }] });
    await expectDisconnect(c, 0x82);
    const p = await pool.raw(b, 5, "sh-nl-pub");
    expect((await publish(p, "sh/nl", "x", 1))!.reasonCode).toBe(0x10);
  });

  test("no retained message on a shared SUBSCRIBE: 3.1.1 member, and a v5 member re-subscribing with Retain Handling 0 (§3.8.4, §4.8.2)", async () => {
    const p = await pool.raw(b, 5, "sh-ret-pub");
    await publish(p, "sh/ret", "stored", 1, { retain: true });
    const v4 = await pool.raw(b, 4, "sh-ret4");
    await subscribe(v4, [{ topic: "$share/r4/sh/ret", qos: 1 }]);
    const v5 = await pool.raw(b, 5, "sh-ret5");
    await subscribe(v5, [{ topic: "$share/r5/sh/ret", qos: 1, rh: 0 }]);
    await subscribe(v5, [{ topic: "$share/r5/sh/ret", qos: 1, rh: 0 }], undefined, 2);
    expect(await take(v4)).toEqual([]);
    expect(await take(v5)).toEqual([]);
    await publish(p, "sh/ret", "", 1, { retain: true });
  });
});

describe("choosing and re-choosing a member", () => {
  test("a member whose Receive Maximum window is full is skipped: A (Receive Maximum 1, never acks) gets 1 of 10, B the other 9, none lost or doubled", async () => {
    const a = await pool.raw(b, 5, "sh-full-a", { properties: { receiveMaximum: 1 } });
    const c = await pool.raw(b, 5, "sh-full-b");
    for (const m of [a, c]) await subscribe(m, [{ topic: "$share/g/sh/full", qos: 1 }]);
    const p = await pool.raw(b, 5, "sh-full-pub");
    for (const m of range(10)) await publish(p, "sh/full", m, 1);
    const ga = await take(a, false);
    const gc = await take(c);
    expect(ga.length).toBe(1);
    expect(gc.length).toBe(9);
    expect(sorted([...texts(ga), ...texts(gc)])).toEqual(range(10));
    expect(b.broker.sessions.get(a.id)!.queue.length).toBe(0);
  });

  test("a member that answers PUBACK 0x80 or PUBREC 0x80: the message is dropped, not offered to another member [MQTT-4.8.2-6]", async () => {
    const a = await pool.raw(b, 5, "sh-refuse-a");
    const c = await pool.raw(b, 5, "sh-refuse-b");
    for (const m of [a, c]) await subscribe(m, [{ topic: "$share/g/sh/refuse", qos: 2 }]);
    const p = await pool.raw(b, 5, "sh-refuse-pub");
    for (const [qos, name] of [[1, "refused1"], [2, "refused2"]] as const) {
      await publish(p, "sh/refuse", name, qos);
      const [ga, gc] = await Promise.all([take(a, false, 150), take(c, false, 150)]);
      expect(ga.length + gc.length).toBe(1);
      const [who, m] = ga.length ? [a, ga[0]!] : [c, gc[0]!];
      expect(text(m)).toBe(name);
      who.send({ cmd: qos === 1 ? "puback" : "pubrec", messageId: m.messageId, reasonCode: 0x80 });
      await waitFor(() => b.broker.sessions.get(who.id)!.inflight.count === 0, 2000, "refused delivery dropped");
      const after = [...(await take(a, true, 300)), ...(await take(c, true, 300))];
      expect(after).toEqual([]); // no PUBREL either, and no redelivery anywhere
    }
  });

  test("when a member's session ends (Session Expiry 0, socket dropped) its QoS 1 messages in flight and queued go to another member, each once (§4.8.2)", async () => {
    const a = await pool.raw(b, 5, "sh-end-a", { properties: { receiveMaximum: 1 } });
    await subscribe(a, [{ topic: "$share/g/sh/end", qos: 1 }]);
    const p = await pool.raw(b, 5, "sh-end-pub");
    for (const m of range(3)) await publish(p, "sh/end", m, 1);
    const ga = await take(a, false);
    expect(texts(ga)).toEqual(["m00"]); // m01 and m02 wait in A's queue (the only member)
    expect(b.broker.sessions.get(a.id)!.queue.length).toBe(2);
    const c = await pool.raw(b, 5, "sh-end-b");
    await subscribe(c, [{ topic: "$share/g/sh/end", qos: 1 }]);
    a.destroy();
    await waitFor(() => !b.broker.sessions.has(a.id), 2000, "A's session ended");
    const gc = await take(c);
    expect(sorted(texts(gc))).toEqual(range(3));
  });

  test("a member offline with a live session keeps its messages until the session expires (1 s), then they go to another member; meanwhile new messages go to the connected member", async () => {
    const id = uid("sh-exp-a");
    const a = await pool.raw(b, 5, "x", { clientId: id, clean: false, properties: { sessionExpiryInterval: 1, receiveMaximum: 1 } });
    await subscribe(a, [{ topic: "$share/g/sh/exp", qos: 1 }]);
    const p = await pool.raw(b, 5, "sh-exp-pub");
    await publish(p, "sh/exp", "inflight", 1);
    await publish(p, "sh/exp", "queued", 1);
    expect(texts(await take(a, false))).toEqual(["inflight"]);
    await drop(b, a, id);
    const c = await pool.raw(b, 5, "sh-exp-b");
    await subscribe(c, [{ topic: "$share/g/sh/exp", qos: 1 }]);
    await publish(p, "sh/exp", "new", 1);
    expect(texts(await take(c))).toEqual(["new"]);
    await waitFor(() => !b.broker.sessions.has(id), 3000, "A's session expired");
    expect(sorted(texts(await take(c)))).toEqual(["inflight", "queued"]);
  }, 10000);

  test("QoS 2 already sent to a member whose session ends is NOT given to another member [MQTT-4.8.2-5] (PUBLISH unanswered or PUBREL pending); a QoS 2 never sent (queued) is", async () => {
    const a = await pool.raw(b, 5, "sh-q2-a", { properties: { receiveMaximum: 2 } });
    await subscribe(a, [{ topic: "$share/g/sh/q2", qos: 2 }]);
    const p = await pool.raw(b, 5, "sh-q2-pub");
    for (const m of ["sent", "released", "queued"]) await publish(p, "sh/q2", m, 2);
    const ga = await take(a, false);
    expect(texts(ga)).toEqual(["sent", "released"]);
    a.send({ cmd: "pubrec", messageId: ga[1]!.messageId });
    expect((await a.nextOf("pubrel")).messageId).toBe(ga[1]!.messageId);
    const c = await pool.raw(b, 5, "sh-q2-b");
    await subscribe(c, [{ topic: "$share/g/sh/q2", qos: 2 }]);
    a.destroy();
    await waitFor(() => !b.broker.sessions.has(a.id), 2000, "A's session ended");
    await publish(p, "sh/q2", "marker", 0);
    const gc = await take(c, false);
    expect(texts(gc)).toEqual(["queued", "marker"]);
  });

  test("QoS 2 in flight to a member whose connection broke is completed with that member when it reconnects [MQTT-4.8.2-4], never sent to the other member", async () => {
    const id = uid("sh-q2r-a");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const a = await pool.raw(b, 5, "x", opts);
    await subscribe(a, [{ topic: "$share/g/sh/q2r", qos: 2 }]);
    const c = await pool.raw(b, 5, "sh-q2r-b");
    const p = await pool.raw(b, 5, "sh-q2r-pub");
    await publish(p, "sh/q2r", "for-a", 2); // A joined first: round-robin starts with A
    const first = await take(a, false);
    expect(texts(first)).toEqual(["for-a"]);
    await subscribe(c, [{ topic: "$share/g/sh/q2r", qos: 2 }]);
    await drop(b, a, id);
    const r = await pool.raw(b, 5, "x", opts);
    const again = await r.nextOf("publish");
    expect([text(again), again.dup, again.messageId]).toEqual(["for-a", true, first[0]!.messageId]);
    r.send({ cmd: "pubrec", messageId: again.messageId });
    expect((await r.nextOf("pubrel")).messageId).toBe(again.messageId);
    r.send({ cmd: "pubcomp", messageId: again.messageId });
    expect(await take(c)).toEqual([]);
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test("a message too large for a member's Maximum Packet Size (100) never reaches that member; it is dropped for the group or given to another member, at most once (§3.1.2.11.4); the small member stays connected", async () => {
    const small = await pool.raw(b, 5, "sh-mps-small", { properties: { maximumPacketSize: 100 } });
    const big = await pool.raw(b, 5, "sh-mps-big");
    for (const m of [small, big]) await subscribe(m, [{ topic: "$share/g/sh/mps", qos: 1 }]);
    const p = await pool.raw(b, 5, "sh-mps-pub");
    for (let i = 0; i < 4; i++) await publish(p, "sh/mps", Buffer.alloc(300, 0x61 + i), 1);
    const [gs, gb] = await Promise.all([take(small), take(big)]);
    expect(gs).toEqual([]);
    expect(gb.length).toBeLessThanOrEqual(4);
    expect(new Set(gb.map(text)).size).toBe(gb.length);
    await publish(p, "sh/mps", "small-1", 1);
    await publish(p, "sh/mps", "small-2", 1);
    const after = [...(await take(small)), ...(await take(big))];
    expect(sorted(texts(after))).toEqual(["small-1", "small-2"]);
    expect(small.closed).toBe(false);
  });

  test("UNSUBSCRIBE of the $share filter leaves the group (UNSUBACK 0x00): all later messages go to the remaining member; when the last leaves, nobody matches (PUBACK 0x10)", async () => {
    const a = await pool.raw(b, 5, "sh-unsub-a");
    const c = await pool.raw(b, 5, "sh-unsub-b");
    for (const m of [a, c]) await subscribe(m, [{ topic: "$share/g/sh/unsub", qos: 1 }]);
    a.send({ cmd: "unsubscribe", messageId: 5, unsubscriptions: ["$share/g/sh/unsub"] });
    expect((await a.nextOf("unsuback")).granted).toEqual([0x00]);
    const p = await pool.raw(b, 5, "sh-unsub-pub");
    for (const m of range(6)) await publish(p, "sh/unsub", m, 1);
    expect(await take(a)).toEqual([]);
    expect(texts(await take(c))).toEqual(range(6));
    c.send({ cmd: "unsubscribe", messageId: 6, unsubscriptions: ["$share/g/sh/unsub"] });
    expect((await c.nextOf("unsuback")).granted).toEqual([0x00]);
    expect((await publish(p, "sh/unsub", "nobody", 1))!.reasonCode).toBe(0x10);
  });
});
