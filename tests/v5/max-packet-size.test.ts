/**
 * MQTT 5 Maximum Packet Size (CHECKLIST 9e), both directions.
 *
 * Ours: told in CONNACK and enforced from the fixed header, before the body
 * is buffered (DISCONNECT 0x95, [MQTT-3.2.2-15]). The broker runs with
 * limits.maxPacketSize 2048.
 * The client's: nothing larger is ever sent to it ([MQTT-3.1.2-24]); a
 * PUBLISH that would be larger is dropped for that client alone and treated
 * as delivered ([MQTT-3.1.2-25]), counted in broker.dropped; a Reason String
 * that would not fit is left out ([MQTT-3.14.2-3]).
 *
 * Already covered in tests/protocol/10-malformed.test.ts: a PUBLISH header
 * over the limit → 0x95 before the body (v5 and 3.1.1), the largest
 * Remaining Length, a CONNECT header over the limit, exactly the limit vs one
 * byte more for a PUBLISH.
 */
import { describe, expect, test } from "bun:test";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { field, frame, u32, varint } from "../helpers/bytes.ts";
import { uid, usePool } from "../helpers/pool.ts";
import type { RawClient } from "../helpers/raw.ts";
import { drop, expectDisconnect, framesOf, publish, subscribe, text } from "./util.ts";

const b = useTestBroker({ limits: { maxPacketSize: 2048 } });
const pool = usePool();

const payload = (n: number, tag = "p") => Buffer.concat([Buffer.from(tag), Buffer.alloc(n - tag.length, 0x2e)]);

/** Publish `marker` last and collect the subscriber's PUBLISH payload tags up to it (acknowledging QoS 1). */
async function tagsUntilMarker(s: RawClient): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const m = await s.nextOf("publish");
    if (m.qos === 1) s.send({ cmd: "puback", messageId: m.messageId });
    const t = text(m).replace(/\.+$/, "");
    out.push(t);
    if (t === "marker") return out;
  }
}

describe("ours: limits.maxPacketSize 2048, told in CONNACK and enforced [MQTT-3.2.2-15] (v5 §3.2.2.3.6)", () => {
  test("CONNACK says 2048; a SUBSCRIBE header announcing 3000 bytes → DISCONNECT 0x95 before any body byte is sent; the will is published", async () => {
    const w = await pool.raw(b, 5, "mps-will-watch");
    await subscribe(w, [{ topic: "mps/will", qos: 1 }]);
    const c = await pool.socket(b, 5, "");
    const ack = await c.handshake({ clientId: uid("mps-big"), will: { topic: "mps/will", payload: Buffer.from("too large"), qos: 1, retain: false } });
    expect(ack.properties?.maximumPacketSize).toBe(2048);
    c.write(Buffer.concat([Buffer.from([0x82]), varint(3000)]));
    const d = await expectDisconnect(c, 0x95);
    expect(d.properties?.sessionExpiryInterval).toBeUndefined();
    const m = await w.nextOf("publish");
    expect([m.topic, text(m)]).toEqual(["mps/will", "too large"]);
  });

  test("a PUBLISH of exactly 2048 bytes is accepted and routed", async () => {
    const s = await pool.raw(b, 5, "mps-exact-sub");
    await subscribe(s, [{ topic: "mps/exact", qos: 0 }]);
    const c = await pool.raw(b, 5, "mps-exact");
    // 30 | RL (2 bytes: 2045) | 00 09 "mps/exact" | 00 (no properties) | payload
    const n = 2048 - 3 - 11 - 1;
    await publish(c, "mps/exact", payload(n, "exact"), 0);
    const m = await s.nextOf("publish");
    expect((m.payload as Buffer).length).toBe(n);
    expect(c.closed).toBe(false);
  });
});

describe("the client's Maximum Packet Size [MQTT-3.1.2-24] [MQTT-3.1.2-25]", () => {
  test("the client's Maximum Packet Size sent twice (even the same value) → CONNACK 0x82 (v5 §3.1.2.11.4)", async () => {
    const props = Buffer.concat([Buffer.from([0x27]), u32(500), Buffer.from([0x27]), u32(500)]);
    const c = await pool.socket(b, 5, "");
    c.write(frame(0x10, field("MQTT"), Buffer.from([5, 0x02, 0, 0]), varint(props.length), props, field(uid("mps-twice"))));
    const ack = await c.next();
    expect([ack.cmd, ack.reasonCode]).toEqual(["connack", 0x82]);
    expect(await c.waitClose()).toBe(true);
  });

  test("limit 100: QoS 0 payload 90 (a 100-byte PUBLISH) arrives, 91 is skipped; QoS 1 88 arrives, 89 is skipped; the connection stays, broker.dropped counts 2, an unlimited subscriber gets all", async () => {
    const small = await pool.raw(b, 5, "mps-small", { properties: { maximumPacketSize: 100 } });
    const big = await pool.raw(b, 5, "mps-unlimited");
    for (const c of [small, big]) await subscribe(c, [{ topic: "mps/t", qos: 1 }]);
    const p = await pool.raw(b, 5, "mps-pub");
    const dropped = b.broker.dropped;
    await publish(p, "mps/t", payload(90, "q0fit"), 0);
    await publish(p, "mps/t", payload(91, "q0big"), 0);
    await publish(p, "mps/t", payload(88, "q1fit"), 1);
    await publish(p, "mps/t", payload(89, "q1big"), 1);
    await publish(p, "mps/t", "marker", 1);
    expect(await tagsUntilMarker(small)).toEqual(["q0fit", "q1fit", "marker"]);
    expect(await tagsUntilMarker(big)).toEqual(["q0fit", "q0big", "q1fit", "q1big", "marker"]);
    expect(b.broker.dropped - dropped).toBe(2);
    // Every frame the small client got is within its limit, the 100-byte one included.
    const sizes = framesOf(small).map((f) => f.length);
    expect(Math.max(...sizes)).toBe(100);
    expect(small.closed).toBe(false);
  });

  test("everything the broker adds counts: a Subscription Identifier of 268435455 (5 bytes) and the publisher's User Properties move the limit", async () => {
    const s = await pool.raw(b, 5, "mps-props", { properties: { maximumPacketSize: 100 } });
    await subscribe(s, [{ topic: "mps/s", qos: 0 }], { subscriptionIdentifier: 268435455 });
    const p = await pool.raw(b, 5, "mps-props-pub");
    await publish(p, "mps/s", payload(85, "idfit"), 0); // 10 + 5 + 85 = 100
    await publish(p, "mps/s", payload(86, "idbig"), 0);
    // A user property x=y is 7 bytes (26 00 01 78 00 01 79): 10 + 5 + 7 + 78 = 100 fits, 79 does not.
    await publish(p, "mps/s", payload(79, "upbig"), 0, { properties: { userProperties: { x: "y" } } });
    await publish(p, "mps/s", payload(78, "upfit"), 0, { properties: { userProperties: { x: "y" } } });
    await publish(p, "mps/s", "marker", 0);
    expect(await tagsUntilMarker(s)).toEqual(["idfit", "upfit", "marker"]);
    expect(Math.max(...framesOf(s).map((f) => f.length))).toBe(100);
  });

  test("a retained message too large for the client is skipped on SUBSCRIBE (and counted); a small one on another topic still comes", async () => {
    const p = await pool.raw(b, 5, "mps-ret-pub");
    await publish(p, "mps/ret/big", payload(500, "rbig"), 1, { retain: true });
    await publish(p, "mps/ret/small", "rsmall", 1, { retain: true });
    const dropped = b.broker.dropped;
    const s = await pool.raw(b, 5, "mps-ret", { properties: { maximumPacketSize: 200 } });
    await subscribe(s, [{ topic: "mps/ret/+", qos: 1 }]);
    await publish(p, "mps/ret/live", "marker", 0);
    expect(await tagsUntilMarker(s)).toEqual(["rsmall", "marker"]);
    expect(b.broker.dropped - dropped).toBe(1);
    for (const t of ["big", "small"]) await publish(p, `mps/ret/${t}`, "", 1, { retain: true });
  });

  test("treated as delivered: on a resumed session with a smaller limit, an in-flight and a queued message that no longer fit are neither sent nor kept; the small one arrives", async () => {
    const id = uid("mps-resume");
    const s = await pool.raw(b, 5, "x", { clientId: id, clean: false, properties: { sessionExpiryInterval: 60, maximumPacketSize: 1000 } });
    await subscribe(s, [{ topic: "mps/rs", qos: 1 }]);
    const p = await pool.raw(b, 5, "mps-resume-pub");
    await publish(p, "mps/rs", payload(500, "inflight"), 1);
    expect(text(await s.nextOf("publish")).startsWith("inflight")).toBe(true); // not acknowledged
    await drop(b, s, id);
    await publish(p, "mps/rs", payload(500, "queued"), 1);
    await publish(p, "mps/rs", "small", 1);
    const dropped = b.broker.dropped;
    const r = await pool.raw(b, 5, "x", { clientId: id, clean: false, properties: { sessionExpiryInterval: 0, maximumPacketSize: 100 } });
    await publish(p, "mps/rs", "marker", 1);
    expect(await tagsUntilMarker(r)).toEqual(["small", "marker"]);
    expect(b.broker.dropped - dropped).toBe(2);
    // Once our PUBACKs for "small" and the marker are in, nothing is left: the big ones were not kept.
    await waitFor(() => b.broker.sessions.get(id)?.inflight.count === 0, 2000, "in-flight table empty");
    expect(b.broker.sessions.get(id)?.queue.length).toBe(0);
  });

  test("a DISCONNECT whose Reason String would exceed the client's limit (20) is sent without it [MQTT-3.14.2-3]; with room (64) the Reason String is there", async () => {
    for (const limit of [20, 64]) {
      const c = await pool.raw(b, 5, `mps-disc${limit}`, { properties: { maximumPacketSize: limit } });
      const before = framesOf(c).length;
      c.send({ cmd: "publish", topic: "mps/+/bad", payload: Buffer.from("x"), qos: 0 });
      const d = await expectDisconnect(c, 0x82);
      const frames = framesOf(c).slice(before);
      expect(frames.length).toBe(1);
      expect(frames[0]!.length).toBeLessThanOrEqual(limit);
      if (limit === 20) expect(d.properties?.reasonString).toBeUndefined();
      else expect(typeof d.properties?.reasonString).toBe("string");
    }
  });

  test("no packet at all exceeds a client limit of 20 bytes, CONNACK included [MQTT-3.1.2-24] (optional CONNACK properties must give way)", async () => {
    const c = await pool.socket(b, 5, "");
    const id = uid("mps-tiny");
    const ack = await c.handshake({ clientId: id, properties: { maximumPacketSize: 20 } });
    expect(ack.reasonCode).toBe(0);
    await subscribe(c, [{ topic: "mps/tiny", qos: 1 }]);
    c.send({ cmd: "pingreq" });
    expect((await c.next()).cmd).toBe("pingresp");
    const sizes = framesOf(c).map((f) => [f[0]! >> 4, f.length]);
    expect(sizes.filter(([, n]) => n! > 20)).toEqual([]);
  });
});
