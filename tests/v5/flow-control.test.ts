/**
 * MQTT 5 Receive Maximum and flow control (CHECKLIST 9d), both ways.
 *
 * Broker → client: the send quota starts at the client's Receive Maximum,
 * each QoS 1/2 PUBLISH uses one, PUBACK / PUBCOMP (any reason code) and
 * PUBREC ≥ 0x80 give one back ([MQTT-3.3.4-9], [MQTT-4.9.0-1],
 * [MQTT-4.9.0-2], §4.9); QoS 0 and every other packet still flow at zero
 * quota ([MQTT-3.3.4-10], [MQTT-4.9.0-3]).
 * Client → broker: more unreleased QoS 2 PUBLISHes than the CONNACK Receive
 * Maximum is DISCONNECT 0x93 (§3.3.4). The broker runs with
 * limits.receiveMaximum 3.
 *
 * Already covered in tests/protocol/05-session.test.ts: Receive Maximum 2 with
 * QoS 1, Receive Maximum 1 with QoS 2 (PUBREC does not free, PUBCOMP does),
 * re-sent PUBLISHes on resume count against the new connection's quota.
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker } from "../helpers/broker.ts";
import { uid, usePool } from "../helpers/pool.ts";
import type { Packet, RawClient } from "../helpers/raw.ts";
import { expectDisconnect, publish, subscribe, text } from "./util.ts";

const b = useTestBroker({ limits: { receiveMaximum: 3 } });
const pool = usePool();

/** Packets that arrive until nothing comes for `quietMs`. */
const quiet = (c: RawClient, quietMs = 200) => c.drain(quietMs);

describe("broker → client: the client's Receive Maximum [MQTT-3.3.4-9] [MQTT-4.9.0-1] [MQTT-4.9.0-2]", () => {
  test("Receive Maximum 3, 12 messages alternating QoS 1 and 2: never more than 3 unacknowledged, every ack (newest first) lets exactly one more out, all arrive once and in order", async () => {
    const s = await pool.raw(b, 5, "fc-rm3", { properties: { receiveMaximum: 3 } });
    await subscribe(s, [{ topic: "fc/rm3", qos: 2 }]);
    const p = await pool.raw(b, 5, "fc-rm3-pub");
    for (let i = 0; i < 12; i++) await publish(p, "fc/rm3", `m${i}`, (1 + (i % 2)) as 1 | 2);
    const outstanding: Packet[] = [];
    const order: string[] = [];
    let maxOutstanding = 0;
    const take = (ps: Packet[]) => {
      for (const m of ps) {
        if (m.cmd !== "publish") continue;
        outstanding.push(m);
        order.push(text(m));
      }
      maxOutstanding = Math.max(maxOutstanding, outstanding.length);
    };
    take(await quiet(s));
    expect(outstanding.length).toBe(3);
    while (outstanding.length > 0) {
      const m = outstanding.pop()!; // acknowledge the newest first
      if (m.qos === 1) {
        s.send({ cmd: "puback", messageId: m.messageId });
      } else {
        s.send({ cmd: "pubrec", messageId: m.messageId });
        const rel = await s.nextOf("pubrel");
        expect(rel.messageId).toBe(m.messageId);
        // PUBREC alone does not give the slot back (§4.9): nothing new yet.
        const between = await quiet(s, 100);
        expect(between.filter((x) => x.cmd === "publish")).toEqual([]);
        s.send({ cmd: "pubcomp", messageId: m.messageId });
      }
      const next = await quiet(s);
      expect(next.filter((x) => x.cmd === "publish").length).toBe(order.length < 12 ? 1 : 0);
      take(next);
    }
    expect(maxOutstanding).toBe(3);
    expect(order).toEqual(Array.from({ length: 12 }, (_, i) => `m${i}`));
  });

  test("QoS 0 is not held back by a zero quota: with Receive Maximum 1 and one QoS 1 unacknowledged, QoS 0 messages still arrive at once; the queued QoS 1 waits", async () => {
    const s = await pool.raw(b, 5, "fc-q0", { properties: { receiveMaximum: 1 } });
    await subscribe(s, [{ topic: "fc/q0", qos: 1 }]);
    const p = await pool.raw(b, 5, "fc-q0-pub");
    await publish(p, "fc/q0", "held", 1);
    await publish(p, "fc/q0", "waits", 1);
    for (const m of ["a", "b", "c"]) await publish(p, "fc/q0", m, 0);
    const got = await quiet(s);
    expect(got.map((m) => [text(m), m.qos])).toEqual([
      ["held", 1],
      ["a", 0],
      ["b", 0],
      ["c", 0],
    ]);
    s.send({ cmd: "puback", messageId: got[0]!.messageId });
    const rest = await quiet(s);
    expect(rest.map((m) => [text(m), m.qos])).toEqual([["waits", 1]]);
  });

  test("a zero quota holds back no other packet [MQTT-3.3.4-10] [MQTT-4.9.0-3]: PUBREL, PINGRESP, SUBACK, UNSUBACK and PUBACK/PUBREC for its own publishes all flow", async () => {
    const s = await pool.raw(b, 5, "fc-other", { properties: { receiveMaximum: 1 } });
    await subscribe(s, [{ topic: "fc/other", qos: 2 }]);
    const p = await pool.raw(b, 5, "fc-other-pub");
    await publish(p, "fc/other", "q2", 2);
    await publish(p, "fc/other", "queued", 1);
    const m = await s.nextOf("publish");
    expect(text(m)).toBe("q2");
    s.send({ cmd: "pubrec", messageId: m.messageId });
    expect((await s.next()).cmd).toBe("pubrel"); // the quota is still 0 (no PUBCOMP yet)
    s.send({ cmd: "pingreq" });
    expect((await s.next()).cmd).toBe("pingresp");
    s.send({ cmd: "subscribe", messageId: 41, subscriptions: [{ topic: "fc/other/x", qos: 1 }] });
    expect((await s.next()).cmd).toBe("suback");
    s.send({ cmd: "unsubscribe", messageId: 42, unsubscriptions: ["fc/other/x"] });
    expect((await s.next()).cmd).toBe("unsuback");
    s.send({ cmd: "publish", topic: "fc/elsewhere", payload: Buffer.from("x"), qos: 1, messageId: 43 });
    expect(await s.next()).toMatchObject({ cmd: "puback", messageId: 43 });
    s.send({ cmd: "publish", topic: "fc/elsewhere", payload: Buffer.from("x"), qos: 2, messageId: 44 });
    expect(await s.next()).toMatchObject({ cmd: "pubrec", messageId: 44 });
    s.send({ cmd: "pubrel", messageId: 44 });
    expect(await s.next()).toMatchObject({ cmd: "pubcomp", messageId: 44 });
    expect(await quiet(s)).toEqual([]); // and still no "queued"
    s.send({ cmd: "pubcomp", messageId: m.messageId });
    const rest = await quiet(s);
    expect(rest.map((x) => [x.cmd, text(x)])).toEqual([["publish", "queued"]]);
  });

  test("PUBREC ≥ 0x80 ends the QoS 2 flow (no PUBREL) and gives the slot back; so does a PUBACK with an error code (§4.9, [MQTT-4.3.3-4])", async () => {
    const s = await pool.raw(b, 5, "fc-err", { properties: { receiveMaximum: 1 } });
    await subscribe(s, [{ topic: "fc/err", qos: 2 }]);
    const p = await pool.raw(b, 5, "fc-err-pub");
    await publish(p, "fc/err", "refused2", 2);
    await publish(p, "fc/err", "refused1", 1);
    await publish(p, "fc/err", "last", 1);
    const a = await s.nextOf("publish");
    expect(text(a)).toBe("refused2");
    s.send({ cmd: "pubrec", messageId: a.messageId, reasonCode: 0x80 });
    const afterRec = await quiet(s);
    expect(afterRec.map((x) => [x.cmd, text(x)])).toEqual([["publish", "refused1"]]); // no PUBREL
    s.send({ cmd: "puback", messageId: afterRec[0]!.messageId, reasonCode: 0x83 });
    const afterAck = await quiet(s);
    expect(afterAck.map((x) => [x.cmd, text(x)])).toEqual([["publish", "last"]]);
    s.send({ cmd: "puback", messageId: afterAck[0]!.messageId });
    await quiet(s, 100);
    expect(b.broker.sessions.get(s.id)?.inflight.count).toBe(0);
  });
});

describe("client → broker: our Receive Maximum (limits.receiveMaximum 3) (§3.2.2.3.3, §3.3.4)", () => {
  test("CONNACK says 3; three unreleased QoS 2 are accepted, the fourth → DISCONNECT 0x93, it is not routed, and the will is published", async () => {
    const w = await pool.raw(b, 5, "fc-will-watch");
    await subscribe(w, [{ topic: "fc/rx/+", qos: 1 }]);
    const c = await pool.socket(b, 5, "");
    const ack = await c.handshake({
      clientId: uid("fc-rx"),
      will: { topic: "fc/rx/will", payload: Buffer.from("gone"), qos: 1, retain: false },
    });
    expect(ack.properties?.receiveMaximum).toBe(3);
    for (const id of [1, 2, 3]) {
      c.send({ cmd: "publish", topic: "fc/rx/m", payload: Buffer.from(`m${id}`), qos: 2, messageId: id });
      expect(await c.next()).toMatchObject({ cmd: "pubrec", messageId: id });
    }
    c.send({ cmd: "publish", topic: "fc/rx/m", payload: Buffer.from("m4"), qos: 2, messageId: 4 });
    await expectDisconnect(c, 0x93);
    const got: Packet[] = [];
    for (let i = 0; i < 4; i++) {
      const m = await w.nextOf("publish");
      w.send({ cmd: "puback", messageId: m.messageId });
      got.push(m);
    }
    expect(got.map((m) => [m.topic, text(m)])).toEqual([
      ["fc/rx/m", "m1"],
      ["fc/rx/m", "m2"],
      ["fc/rx/m", "m3"],
      ["fc/rx/will", "gone"],
    ]);
  });

  test("a released QoS 2 gives its slot back; QoS 1 publishes never count; a DUP re-send of an unreleased id is not a new one", async () => {
    const c = await pool.raw(b, 5, "fc-rx-ok");
    for (const id of [1, 2, 3]) {
      c.send({ cmd: "publish", topic: "fc/rxok", payload: Buffer.from("x"), qos: 2, messageId: id });
      expect(await c.next()).toMatchObject({ cmd: "pubrec", messageId: id });
    }
    // 20 QoS 1 in one burst with 3 QoS 2 unreleased: all acknowledged.
    for (let i = 0; i < 20; i++) c.send({ cmd: "publish", topic: "fc/rxok", payload: Buffer.from("q1"), qos: 1, messageId: 100 + i });
    for (let i = 0; i < 20; i++) expect(await c.next()).toMatchObject({ cmd: "puback", messageId: 100 + i });
    // Re-sending id 2 (DUP) is the same message: PUBREC again, no 0x93.
    c.send({ cmd: "publish", topic: "fc/rxok", payload: Buffer.from("x"), qos: 2, messageId: 2, dup: true });
    expect(await c.next()).toMatchObject({ cmd: "pubrec", messageId: 2 });
    c.send({ cmd: "pubrel", messageId: 1 });
    expect(await c.next()).toMatchObject({ cmd: "pubcomp", messageId: 1, reasonCode: 0 });
    c.send({ cmd: "publish", topic: "fc/rxok", payload: Buffer.from("x"), qos: 2, messageId: 4 });
    expect(await c.next()).toMatchObject({ cmd: "pubrec", messageId: 4 });
    c.send({ cmd: "pingreq" });
    expect((await c.next()).cmd).toBe("pingresp");
    expect(c.closed).toBe(false);
    for (const id of [2, 3, 4]) {
      c.send({ cmd: "pubrel", messageId: id });
      expect(await c.next()).toMatchObject({ cmd: "pubcomp", messageId: id });
    }
  });
});
