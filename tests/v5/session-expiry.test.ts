/**
 * MQTT 5 Session Expiry Interval (CHECKLIST area 3): 0 / N / 0xFFFFFFFF,
 * the value a DISCONNECT may set, the server's cap (limits.maxSessionExpiry,
 * told in CONNACK), and Session Present.
 *
 * Already covered elsewhere and not repeated here: expiry 1 s ends the
 * session, absent/0 ends it with the connection, CONNECT 0 → DISCONNECT 10
 * is 0x82 with the will published, CONNECT 100 → DISCONNECT 0 discards
 * (tests/protocol/05-session.test.ts); the cap with the default broker
 * (tests/protocol/01-connect.test.ts "CONNACK contents").
 *
 * The main broker runs with limits.maxSessionExpiry 0xFFFFFFFF (so "never"
 * is honoured); a second one with a 2 s cap checks that the cap is what
 * applies. Expiry runs on the broker's 250 ms housekeeping tick.
 */
import { describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { drop, expectDisconnect, publish, subscribe, text } from "./util.ts";

const b = useTestBroker({ limits: { maxSessionExpiry: 0xffffffff } });
const pool = usePool();

/** Connect with the given CONNECT options and return the CONNACK (any reason code). */
async function connack(rb: RunningBroker, opts: Record<string, unknown>, version: 4 | 5 = 5) {
  const c = await pool.socket(rb, version, opts.clientId as string);
  const ack = await c.handshake(opts);
  expect(ack.cmd).toBe("connack");
  return { c, ack };
}

const sessionOf = (rb: RunningBroker, id: string) => rb.broker.sessions.get(id);

describe("Session Expiry Interval 0 / N / 0xFFFFFFFF (v5 §3.1.2.11.2)", () => {
  test("0xFFFFFFFF under a 0xFFFFFFFF cap: not lowered (no Session Expiry in CONNACK), no expiry time is set at close, still resumable 1.5 s later [MQTT-3.1.2-23]", async () => {
    const id = uid("se-never");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 0xffffffff } };
    const { c, ack } = await connack(b, opts);
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.sessionExpiryInterval).toBeUndefined(); // the client's value applies (§3.2.2.3.2)
    await subscribe(c, [{ topic: "se/never", qos: 1 }]);
    await drop(b, c, id);
    expect(sessionOf(b, id)?.expiryInterval).toBe(0xffffffff);
    expect(sessionOf(b, id)?.expiresAt).toBe(0); // never
    await Bun.sleep(1500);
    const r = await connack(b, opts);
    expect(r.ack.sessionPresent).toBe(true);
    expect(sessionOf(b, id)?.subs.has("se/never")).toBe(true);
    r.c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    expect(await r.c.waitClose()).toBe(true);
    expect(sessionOf(b, id)).toBeUndefined();
  }, 10000);

  test("N = 1: state is kept while connected past N ([MQTT-4.1.0-1]); after the close it lives ~1 s, then is discarded with its subscription ([MQTT-4.1.0-2]) → PUBACK 0x10, Session Present 0", async () => {
    const id = uid("se-n1");
    const topic = "se/n1/t";
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } };
    const { c } = await connack(b, opts);
    await subscribe(c, [{ topic, qos: 1 }]);
    const p = await pool.raw(b, 5, "se-n1-pub");
    await Bun.sleep(1300); // longer than the interval, but connected
    expect((await publish(p, topic, "while connected"))!.reasonCode).toBe(0);
    const m = await c.nextOf("publish");
    expect(text(m)).toBe("while connected");
    c.send({ cmd: "puback", messageId: m.messageId });

    await drop(b, c, id);
    const closedAt = Date.now();
    await Bun.sleep(400);
    expect(sessionOf(b, id)).toBeDefined(); // not discarded at once
    await waitFor(() => sessionOf(b, id) === undefined, 3000, "session expired");
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(900);
    // The subscription left with the session: nobody matches any more.
    expect((await publish(p, topic, "after expiry"))!.reasonCode).toBe(0x10);
    const r = await connack(b, opts);
    expect(r.ack.sessionPresent).toBe(false);
    expect(sessionOf(b, id)?.subs.size).toBe(0);
  }, 10000);

  test("a resumed session takes the new CONNECT's interval: stored with 60, resumed with 0 → ends with that connection", async () => {
    const id = uid("se-resume0");
    const { c } = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    await subscribe(c, [{ topic: "se/resume0", qos: 1 }]);
    await drop(b, c, id);
    const r = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    expect(r.ack.sessionPresent).toBe(true);
    expect(sessionOf(b, id)?.expiryInterval).toBe(0);
    r.c.destroy();
    await waitFor(() => sessionOf(b, id) === undefined, 2000, "session ended with the connection");
  });

  test("a resumed session takes the new CONNECT's interval: stored with 1, resumed with 60 → still there 1.5 s after the close", async () => {
    const id = uid("se-resume60");
    const { c } = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } });
    await drop(b, c, id);
    const r = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(r.ack.sessionPresent).toBe(true);
    await drop(b, r.c, id);
    await Bun.sleep(1500);
    const again = await connack(b, { clientId: id, clean: true });
    expect(again.ack.sessionPresent).toBe(false); // Clean Start 1 discards it now
  }, 10000);
});

describe("Session Expiry Interval changed on DISCONNECT (§3.14.2.2.2)", () => {
  test("CONNECT 60, DISCONNECT with 1 → the new value applies: kept right after the close, discarded about 1 s later", async () => {
    const id = uid("se-d60to1");
    const { c } = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    await subscribe(c, [{ topic: "se/d60to1", qos: 1 }]);
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 1 } });
    expect(await c.waitClose()).toBe(true);
    expect(c.pending()).toEqual([]); // the server answers a DISCONNECT with nothing
    expect(sessionOf(b, id)?.expiryInterval).toBe(1);
    expect(sessionOf(b, id)).toBeDefined();
    await waitFor(() => sessionOf(b, id) === undefined, 3000, "session expired after the new interval");
  }, 10000);

  test("CONNECT 1, DISCONNECT with 0xFFFFFFFF → never expires: resumable 1.5 s later", async () => {
    const id = uid("se-d1tomax");
    const { c } = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } });
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0xffffffff } });
    expect(await c.waitClose()).toBe(true);
    expect(sessionOf(b, id)?.expiresAt).toBe(0);
    await Bun.sleep(1500);
    const r = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    expect(r.ack.sessionPresent).toBe(true);
  }, 10000);

  test("CONNECT without Session Expiry (absent = 0), DISCONNECT 0x00 with 1 → DISCONNECT 0x82 without Session Expiry [MQTT-3.14.2-2]; the will IS published; no session is kept", async () => {
    const id = uid("se-absent-bad");
    const willTopic = `se/will/${id}`;
    const w = await pool.raw(b, 5, "se-willwatch");
    await subscribe(w, [{ topic: willTopic, qos: 1 }]);
    const c = await pool.raw(b, 5, "x", {
      clientId: id,
      will: { topic: willTopic, payload: Buffer.from("invalid disconnect"), qos: 1, retain: false },
    });
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 1 } });
    const d = await expectDisconnect(c, 0x82);
    expect(d.properties?.sessionExpiryInterval).toBeUndefined();
    const m = await w.nextOf("publish");
    expect([m.topic, text(m)]).toEqual([willTopic, "invalid disconnect"]);
    w.send({ cmd: "puback", messageId: m.messageId });
    expect(sessionOf(b, id)).toBeUndefined();
  });

  test("CONNECT 0, DISCONNECT with 0 is no change and no error: normal close, will discarded", async () => {
    const id = uid("se-zero-zero");
    const willTopic = `se/will/${id}`;
    const w = await pool.raw(b, 5, "se-willwatch0");
    await subscribe(w, [{ topic: willTopic, qos: 1 }]);
    const c = await pool.raw(b, 5, "x", {
      clientId: id,
      properties: { sessionExpiryInterval: 0 },
      will: { topic: willTopic, payload: Buffer.from("must not"), qos: 1, retain: false },
    });
    c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    expect(await c.waitClose()).toBe(true);
    expect(c.pending()).toEqual([]);
    // Marker: anything the will produced would arrive before it.
    const p = await pool.raw(b, 5, "se-marker");
    await publish(p, willTopic, "marker", 0);
    expect(text(await w.nextOf("publish"))).toBe("marker");
  });
});

describe("capped by limits.maxSessionExpiry (2 s) and told in CONNACK (v5 §3.2.2.3.2)", () => {
  const k = useTestBroker({ limits: { maxSessionExpiry: 2 } });

  test("a value within the cap is not echoed in CONNACK", async () => {
    const { ack } = await connack(k, { clientId: uid("cap-1"), properties: { sessionExpiryInterval: 1 } });
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.sessionExpiryInterval).toBeUndefined();
  });

  test("the cap is what applies: v5 asking 60 (told 2), v5 DISCONNECT asking 0xFFFFFFFF, and a 3.1.1 Clean Session 0 session all expire ~2 s after the close", async () => {
    const asked = uid("cap-asked");
    const a = await connack(k, { clientId: asked, clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(a.ack.reasonCode).toBe(0);
    expect(a.ack.properties?.sessionExpiryInterval).toBe(2);
    expect(sessionOf(k, asked)?.expiryInterval).toBe(2);

    const viaDisc = uid("cap-disc");
    const d = await connack(k, { clientId: viaDisc, clean: false, properties: { sessionExpiryInterval: 1 } });
    expect(d.ack.properties?.sessionExpiryInterval).toBeUndefined();

    const v311 = uid("cap-311");
    const o = await connack(k, { clientId: v311, clean: false }, 4);
    expect(o.ack.returnCode).toBe(0);

    for (const c of [a.c, d.c, o.c]) await subscribe(c, [{ topic: "cap/t", qos: 1 }]);
    d.c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0xffffffff } });
    expect(await d.c.waitClose()).toBe(true);
    await drop(k, a.c, asked);
    await drop(k, o.c, v311);
    expect(sessionOf(k, viaDisc)?.expiryInterval).toBe(2); // the DISCONNECT value is capped too
    await Bun.sleep(800);
    for (const id of [asked, viaDisc, v311]) expect(sessionOf(k, id)).toBeDefined();
    await waitFor(() => [asked, viaDisc, v311].every((id) => sessionOf(k, id) === undefined), 4000, "all three sessions expired");
    const again = await connack(k, { clientId: asked, clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(again.ack.sessionPresent).toBe(false);
  }, 10000);
});

describe("Session Present [MQTT-3.2.2-2] [MQTT-3.2.2-3] [MQTT-3.2.2-4]", () => {
  test("Clean Start 1 on a stored session: Session Present 0, and its subscription and queued messages are gone", async () => {
    const id = uid("sp-clean");
    const topic = "sp/clean/t";
    const { c } = await connack(b, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    await subscribe(c, [{ topic, qos: 1 }]);
    await drop(b, c, id);
    const p = await pool.raw(b, 5, "sp-pub");
    expect((await publish(p, topic, "queued"))!.reasonCode).toBe(0);
    expect(sessionOf(b, id)?.queue.length).toBe(1);
    const r = await connack(b, { clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } });
    expect(r.ack.sessionPresent).toBe(false);
    expect(sessionOf(b, id)?.subs.size).toBe(0);
    // Nothing queued arrives, and the topic has no subscriber any more.
    expect((await publish(p, topic, "later"))!.reasonCode).toBe(0x10);
    r.c.send({ cmd: "pingreq" });
    expect((await r.c.next()).cmd).toBe("pingresp");
    r.c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test("a refused CONNECT (Receive Maximum 0 → 0x82) for a stored session says Session Present 0 and leaves the session stored", async () => {
    const id = uid("sp-refused");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const { c } = await connack(b, opts);
    await subscribe(c, [{ topic: "sp/refused", qos: 1 }]);
    await drop(b, c, id);
    const bad = await connack(b, { ...opts, properties: { sessionExpiryInterval: 60, receiveMaximum: 0 } });
    expect(bad.ack.reasonCode).toBe(0x82);
    expect(bad.ack.sessionPresent).toBe(false); // [MQTT-3.2.2-6] 5: non-zero reason → Session Present 0
    expect(await bad.c.waitClose()).toBe(true);
    const ok = await connack(b, opts);
    expect(ok.ack.sessionPresent).toBe(true);
    expect(sessionOf(b, id)?.subs.has("sp/refused")).toBe(true);
    ok.c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test("Clean Start 0 for an id with no session: Session Present 0; the new session is kept (expiry 60) and resumed next time", async () => {
    const id = uid("sp-new");
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await connack(b, opts);
    expect(first.ack.sessionPresent).toBe(false);
    await drop(b, first.c, id);
    const second = await connack(b, opts);
    expect(second.ack.sessionPresent).toBe(true);
    second.c.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    expect(await second.c.waitClose()).toBe(true);
  });
});
