/**
 * MQTT 5 Message Expiry Interval (CHECKLIST 9b): a copy that has not
 * started onward delivery before its expiry is deleted ([MQTT-3.3.2-5]);
 * a forwarded copy carries the time left ([MQTT-3.3.2-6]); a QoS 2 message
 * already sent is never expired ([MQTT-4.3.3-7]) and an inbound QoS 2
 * exchange completes even if the message expired ([MQTT-4.3.3-13]);
 * retained and will messages expire as messages.
 *
 * Already covered elsewhere: expiry while queued for an offline v5 session
 * (tests/protocol/05-session.test.ts), a retained message expiring and the
 * decremented value on retained delivery (04-retain), the will's expiry
 * forwarded and a retained will expiring (07-will).
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { type Packet, publishesUntil, type RawClient } from "../helpers/raw.ts";
import { drop, publish, subscribe, text } from "./util.ts";

const b = useTestBroker();
const pool = usePool();

const expiryOf = (p: Packet) => p.properties?.messageExpiryInterval as number | undefined;

/** Every PUBLISH/PUBREL that arrives until nothing comes for `quietMs`. */
async function drainCmds(c: RawClient, quietMs = 250): Promise<Packet[]> {
  return (await c.drain(quietMs)).filter((p) => p.cmd !== "pingresp");
}

describe("expiry of copies not yet sent [MQTT-3.3.2-5] and the forwarded interval [MQTT-3.3.2-6]", () => {
  test("online subscriber with a full Receive Maximum window: a queued copy with expiry 1 s is never sent; queued copies without expiry or with 10 s still come, the latter with the time left", async () => {
    const s = await pool.raw(b, 5, "me-win", { properties: { receiveMaximum: 1 } });
    await subscribe(s, [{ topic: "me/win", qos: 1 }]);
    const p = await pool.raw(b, 5, "me-win-pub");
    await publish(p, "me/win", "first");
    await publish(p, "me/win", "short", 1, { properties: { messageExpiryInterval: 1 } });
    await publish(p, "me/win", "plain");
    await publish(p, "me/win", "long", 1, { properties: { messageExpiryInterval: 10 } });
    const first = await s.nextOf("publish");
    expect(text(first)).toBe("first");
    expect(await drainCmds(s)).toEqual([]); // the window holds the rest back
    await Bun.sleep(1300);
    // Free the window one slot at a time and collect what follows.
    const got: Packet[] = [];
    let last = first;
    for (;;) {
      s.send({ cmd: "puback", messageId: last.messageId });
      const next = await drainCmds(s);
      if (next.length === 0) break;
      expect(next.length).toBe(1); // Receive Maximum 1
      last = next[0]!;
      got.push(last);
    }
    expect(got.map(text)).toEqual(["plain", "long"]);
    expect(expiryOf(got[0]!)).toBeUndefined(); // none was set, none is invented
    const left = expiryOf(got[1]!)!;
    expect(left).toBeLessThanOrEqual(9); // 10 minus at least 1.3 s spent queued
    expect(left).toBeGreaterThanOrEqual(7);
  }, 10000);

  test("a live copy is forwarded at once with the received interval (or one less), to each v5 subscriber whatever its granted QoS; a 3.1.1 subscriber gets the message without properties", async () => {
    const s0 = await pool.raw(b, 5, "me-live0");
    const s2 = await pool.raw(b, 5, "me-live2");
    const s4 = await pool.raw(b, 4, "me-live4");
    await subscribe(s0, [{ topic: "me/live", qos: 0 }]);
    await subscribe(s2, [{ topic: "me/live", qos: 2 }]);
    await subscribe(s4, [{ topic: "me/live", qos: 1 }]);
    const p = await pool.raw(b, 5, "me-live-pub");
    await publish(p, "me/live", "x", 1, { properties: { messageExpiryInterval: 3600 } });
    const m0 = await s0.nextOf("publish");
    const m2 = await s2.nextOf("publish");
    const m4 = await s4.nextOf("publish");
    for (const m of [m0, m2]) {
      expect(expiryOf(m)).toBeGreaterThanOrEqual(3599);
      expect(expiryOf(m)).toBeLessThanOrEqual(3600);
    }
    expect([m0.qos, m2.qos]).toEqual([0, 1]);
    expect(m4.properties).toBeUndefined();
  });

  test("expiry applies to a 3.1.1 subscriber's offline queue too: expiry 1 s dropped after 1.2 s, the message without expiry delivered", async () => {
    const id = uid("me-311");
    const s = await pool.raw(b, 4, "x", { clientId: id, clean: false });
    await subscribe(s, [{ topic: "me/311", qos: 1 }]);
    await drop(b, s, id);
    const p = await pool.raw(b, 5, "me-311-pub");
    await publish(p, "me/311", "short", 1, { properties: { messageExpiryInterval: 1 } });
    await publish(p, "me/311", "kept");
    await Bun.sleep(1200);
    const r = await pool.raw(b, 4, "x", { clientId: id, clean: false });
    const got = await drainCmds(r);
    expect(got.map((m) => [m.cmd, text(m)])).toEqual([["publish", "kept"]]);
    r.send({ cmd: "puback", messageId: got[0]!.messageId });
    r.send({ cmd: "disconnect" });
  });
});

describe("QoS 2 and expiry", () => {
  test("a QoS 2 PUBLISH already sent is not expired [MQTT-4.3.3-7]: re-sent on resume (DUP, same id) after its expiry, a PUBREL still re-sent; a copy never sent is dropped", async () => {
    const id = uid("me-q2");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 2 } };
    const s = await pool.raw(b, 5, "x", opts);
    await subscribe(s, [{ topic: "me/q2", qos: 2 }]);
    const p = await pool.raw(b, 5, "me-q2-pub");
    for (const m of ["sent", "released", "queued"]) await publish(p, "me/q2", m, 2, { properties: { messageExpiryInterval: 1 } });
    const sent = await s.nextOf("publish");
    const released = await s.nextOf("publish");
    expect([text(sent), text(released)]).toEqual(["sent", "released"]);
    s.send({ cmd: "pubrec", messageId: released.messageId });
    expect((await s.nextOf("pubrel")).messageId).toBe(released.messageId);
    await drop(b, s, id);
    await Bun.sleep(1300);

    const r = await pool.raw(b, 5, "x", opts);
    const resent = await drainCmds(r);
    expect(resent.map((m) => [m.cmd, m.messageId, m.cmd === "publish" ? text(m) : null, m.dup ?? false])).toEqual([
      ["publish", sent.messageId, "sent", true],
      ["pubrel", released.messageId, null, false],
    ]);
    r.send({ cmd: "pubrec", messageId: sent.messageId });
    expect((await r.nextOf("pubrel")).messageId).toBe(sent.messageId);
    r.send({ cmd: "pubcomp", messageId: sent.messageId });
    r.send({ cmd: "pubcomp", messageId: released.messageId });
    // The never-sent copy expired in the queue: a marker is the next thing to arrive.
    await publish(p, "me/q2", "marker", 2);
    const after = await publishesUntil(r, (m) => text(m) === "marker");
    expect(after.map(text)).toEqual(["marker"]);
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  }, 10000);

  test("inbound QoS 2 is completed even if the message expired before PUBREL [MQTT-4.3.3-13]: a DUP re-send gets PUBREC and is not routed again; PUBREL gets PUBCOMP 0x00", async () => {
    const s = await pool.raw(b, 5, "me-in-sub");
    await subscribe(s, [{ topic: "me/inbound", qos: 2 }]);
    const p = await pool.raw(b, 5, "me-in-pub");
    const pub = { cmd: "publish", topic: "me/inbound", payload: Buffer.from("once"), qos: 2, messageId: 77, properties: { messageExpiryInterval: 1 } };
    p.send(pub);
    expect((await p.nextOf("pubrec")).messageId).toBe(77);
    await Bun.sleep(1200);
    p.send({ ...pub, dup: true });
    const rec = await p.nextOf("pubrec");
    expect([rec.messageId, rec.reasonCode]).toEqual([77, 0]);
    p.send({ cmd: "pubrel", messageId: 77 });
    const comp = await p.nextOf("pubcomp");
    expect([comp.messageId, comp.reasonCode]).toEqual([77, 0]); // not 0x92: the id was still known
    await publish(p, "me/inbound", "marker", 0);
    const got = await publishesUntil(s, (m) => text(m) === "marker");
    expect(got.map(text)).toEqual(["once", "marker"]);
  }, 10000);
});

describe("retained messages and wills expire as messages", () => {
  test("the expiry belongs to the message, not the topic: a retained message without expiry that replaced an expiring one stays; one with expiry 1 s that replaced a permanent one leaves nothing behind (§3.3.1.3)", async () => {
    const p = await pool.raw(b, 5, "me-ret-pub");
    await publish(p, "me/ret/a", "old expiring", 1, { retain: true, properties: { messageExpiryInterval: 1 } });
    await publish(p, "me/ret/a", "new permanent", 1, { retain: true });
    await publish(p, "me/ret/b", "old permanent", 1, { retain: true });
    await publish(p, "me/ret/b", "new expiring", 1, { retain: true, properties: { messageExpiryInterval: 1 } });
    await Bun.sleep(1200);
    const s = await pool.raw(b, 5, "me-ret-sub");
    await subscribe(s, [{ topic: "me/ret/+", qos: 1 }]);
    await publish(p, "me/ret/marker", "marker", 0);
    const got = await publishesUntil(s, (m) => text(m) === "marker");
    expect(got.map((m) => [m.topic, text(m), m.retain, expiryOf(m)])).toEqual([
      ["me/ret/a", "new permanent", true, undefined],
      ["me/ret/marker", "marker", false, undefined],
    ]);
    expect(b.broker.retainedMessage("me/ret/b")).toBeNull();
    await publish(p, "me/ret/a", "", 1, { retain: true });
  }, 10000);

  test("a will's Message Expiry applies to the copies queued for an offline subscriber: expiry 1 s is gone 1.2 s later, a will without expiry is delivered (§3.1.3.2.4, [MQTT-3.3.2-5])", async () => {
    const id = uid("me-will-sub");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const s = await pool.raw(b, 5, "x", opts);
    await subscribe(s, [{ topic: "me/will/+", qos: 1 }]);
    await drop(b, s, id);
    const short = await pool.raw(b, 5, "me-will-short", {
      will: { topic: "me/will/short", payload: Buffer.from("short"), qos: 1, retain: false, properties: { messageExpiryInterval: 1 } },
    });
    const none = await pool.raw(b, 5, "me-will-none", {
      will: { topic: "me/will/none", payload: Buffer.from("none"), qos: 1, retain: false },
    });
    short.destroy();
    none.destroy();
    const sess = () => b.broker.sessions.get(id)!;
    await waitFor(() => sess().queue.length === 2, 3000, "both wills queued");
    await Bun.sleep(1200);
    const r = await pool.raw(b, 5, "x", opts);
    const got = await drainCmds(r);
    expect(got.map((m) => [m.cmd, m.topic, text(m)])).toEqual([["publish", "me/will/none", "none"]]);
    r.send({ cmd: "puback", messageId: got[0]!.messageId });
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  }, 10000);
});
