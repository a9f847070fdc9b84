/**
 * Will messages: when they are published (socket loss, protocol error, v5
 * DISCONNECT reason codes, Will Delay, session end) and when not (normal
 * DISCONNECT, reconnect within the delay); what the published will looks like
 * (topic, payload, QoS, RETAIN, v5 properties and expiry).
 *
 * At broker shutdown the wills of connected clients are published (the
 * server closes without having received DISCONNECT, v5 §3.1.2.5), before any
 * subscriber is disconnected; shutdown.publishWills false discards them.
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { startTestBroker, useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { type Packet, RawClient } from "../helpers/raw.ts";

const b = useTestBroker();

type Version = 3 | 4 | 5;

/** An MQTT.js subscriber on `topic` (QoS 2 granted unless told). */
async function watch(topic: string, qos: 0 | 1 | 2 = 2, version: 4 | 5 = 4): Promise<TestClient> {
  const w = await connectClient(b.port, { protocolVersion: version });
  await w.client.subscribeAsync(topic, { qos });
  return w;
}

/** A raw subscriber, for exact fields. */
async function rawWatch(topic: string, qos: 0 | 1 | 2, version: 4 | 5 = 4): Promise<RawClient> {
  const c = await RawClient.connected(b.port, version);
  c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos }] });
  const ack = await c.nextOf("suback");
  expect(ack.granted).toEqual([qos]);
  return c;
}

function will(topic: string, payload: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { topic, payload: Buffer.from(payload), qos: 1, retain: false, ...extra };
}

async function drop(c: RawClient, clientId: string): Promise<void> {
  c.destroy();
  await waitFor(() => (b.broker.sessions.get(clientId)?.conn ?? null) === null, 3000, `${clientId} detached`);
}

describe("will published when the connection ends without DISCONNECT", () => {
  for (const version of [3, 4, 5] as Version[]) {
    test(`v${version}: socket destroyed → will published once, topic/payload/QoS as given [MQTT-3.1.2-8]`, async () => {
      const topic = `will/drop/${version}`;
      const w = await watch(topic);
      const id = `w-drop-${version}`;
      const c = await RawClient.connected(b.port, version, { clientId: id, will: will(topic, `bye ${version}`) });
      c.destroy();
      await w.waitMessages(1, 5000);
      await Bun.sleep(200);
      expect(w.messages.map((m) => [m.topic, m.payload.toString(), m.qos, m.retain])).toEqual([[topic, `bye ${version}`, 1, false]]);
      expect(b.broker.sessions.has(id)).toBe(false);
      await w.end();
    });
  }

  for (const version of [4, 5] as const) {
    test(`v${version}: protocol error after CONNACK (reserved packet type 0) → connection closed and will published (§3.1.2.5) [MQTT-3.1.2-8]`, async () => {
      const topic = `will/proterr/${version}`;
      const w = await watch(topic);
      const c = await RawClient.connected(b.port, version, { clientId: `w-proterr-${version}`, will: will(topic, "garbage") });
      c.write([0x00, 0x00, 0xde, 0xad]);
      expect(await c.waitClose()).toBe(true);
      const got = c.pending();
      if (version === 5) {
        // v5: DISCONNECT with a Malformed Packet / Protocol Error code first ([MQTT-4.13.1-1]).
        expect(got.length).toBe(1);
        expect(got[0]!.cmd).toBe("disconnect");
        expect([0x81, 0x82]).toContain(got[0]!.reasonCode);
      } else {
        expect(got).toEqual([]); // 3.1.1 has no server DISCONNECT
      }
      await w.waitMessages(1, 5000);
      expect(w.messages[0]!.payload.toString()).toBe("garbage");
      await w.end();
    });
  }

  test("Will Flag 0: nothing is published when the socket drops [MQTT-3.1.2-12]", async () => {
    const topic = "will/none";
    const w = await watch("will/#");
    const c = await RawClient.connected(b.port, 4, { clientId: "w-none" });
    await drop(c, "w-none");
    await Bun.sleep(500);
    expect(w.messages.filter((m) => m.topic === topic)).toEqual([]);
    await w.end();
  });
});

describe("wills at broker shutdown", () => {
  /** A subscriber on will/stop/#, then `n` clients with wills, then stop(): what the subscriber got before its own DISCONNECT. */
  async function atStop(publishWills: boolean | undefined, n: number): Promise<Packet[]> {
    const rb = await startTestBroker(publishWills === undefined ? {} : { shutdown: { publishWills } });
    const sub = await RawClient.connected(rb.port, 5, { clientId: "stop-sub" });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "will/stop/#", qos: 1 }] });
    await sub.nextOf("suback");
    const clients: RawClient[] = [];
    for (let i = 0; i < n; i++) clients.push(await RawClient.connected(rb.port, i % 2 === 0 ? 4 : 5, { clientId: `stop-w-${i}`, will: will(`will/stop/${i}`, `gone ${i}`) }));
    await rb.stop();
    expect(await sub.waitClose(3000)).toBe(true);
    const got = sub.pending();
    // The subscriber's own DISCONNECT comes last: every will was routed while it was still connected.
    expect(got.at(-1)).toMatchObject({ cmd: "disconnect", reasonCode: 0x8b });
    for (const c of clients) c.destroy();
    sub.destroy();
    return got.filter((p) => p.cmd === "publish");
  }

  test("by default every connected client's will is published, 3.1.1 and v5, before subscribers are disconnected (§3.1.2.5) [MQTT-3.1.2-8]", async () => {
    // Several clients connected after the subscriber: a single close pass would close the
    // subscriber before some of them and so lose their wills.
    const pubs = await atStop(undefined, 6);
    expect(pubs.map((p) => [p.topic, p.payload.toString()]).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => [`will/stop/${i}`, `gone ${i}`]));
  });

  test("shutdown.publishWills false: no will is published at shutdown", async () => {
    expect(await atStop(false, 3)).toEqual([]);
  });
});

describe("DISCONNECT and the will", () => {
  for (const version of [3, 4] as Version[]) {
    test(`v${version}: DISCONNECT first → will discarded, not published [MQTT-3.1.2-10] [MQTT-3.14.4-3]`, async () => {
      const topic = `will/disc/${version}`;
      const w = await watch(topic);
      const id = `w-disc-${version}`;
      const c = await RawClient.connected(b.port, version, { clientId: id, will: will(topic, "must not") });
      c.send({ cmd: "disconnect" });
      expect(await c.waitClose()).toBe(true);
      await Bun.sleep(500);
      expect(w.messages).toEqual([]);
      await w.end();
    });
  }

  const v5cases: [number, boolean, string][] = [
    [0x00, false, "[MQTT-3.14.4-3] [MQTT-3.1.2-10]"],
    [0x04, true, "(§3.14.2.1 Disconnect with Will Message)"],
    [0x80, true, "(§3.14.2.1: any reason other than 0x00 keeps the will)"],
  ];
  for (const [rc, published, ids] of v5cases) {
    test(`v5: DISCONNECT 0x${rc.toString(16).padStart(2, "0")} → will ${published ? "published" : "not published"} ${ids}`, async () => {
      const topic = `will/v5disc/${rc}`;
      const w = await watch(topic);
      const c = await RawClient.connected(b.port, 5, { clientId: `w-v5disc-${rc}`, will: will(topic, `rc ${rc}`) });
      c.send({ cmd: "disconnect", reasonCode: rc });
      expect(await c.waitClose()).toBe(true);
      expect(c.pending()).toEqual([]); // the server answers a client DISCONNECT with nothing
      if (published) {
        await w.waitMessages(1, 5000);
        await Bun.sleep(200);
        expect(w.messages.map((m) => m.payload.toString())).toEqual([`rc ${rc}`]);
      } else {
        await Bun.sleep(500);
        expect(w.messages).toEqual([]);
      }
      await w.end();
    });
  }

  test("v5: DISCONNECT with remaining length 0 means reason 0x00 → will not published (§3.14.2.1)", async () => {
    const topic = "will/v5disc/short";
    const w = await watch(topic);
    const c = await RawClient.connected(b.port, 5, { clientId: "w-v5disc-short", will: will(topic, "must not") });
    c.write([0xe0, 0x00]);
    expect(await c.waitClose()).toBe(true);
    await Bun.sleep(500);
    expect(w.messages).toEqual([]);
    await w.end();
  });
});

describe("will QoS and RETAIN", () => {
  test("Will Retain 1: retained; a later subscriber gets it with RETAIN=1, an existing 3.1.1 subscriber with RETAIN=0 [MQTT-3.1.2-17] [MQTT-3.3.1-9]", async () => {
    const topic = "will/retain/on";
    const live = await rawWatch(topic, 1);
    const c = await RawClient.connected(b.port, 4, { clientId: "w-ret1", will: will(topic, "retained will", { retain: true }) });
    c.destroy();
    const p = await live.nextOf("publish", 5000);
    expect(p.payload.toString()).toBe("retained will");
    expect(p.retain).toBe(false);
    live.send({ cmd: "puback", messageId: p.messageId });

    const later = await RawClient.connected(b.port, 4);
    later.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic, qos: 1 }] });
    const got = await later.drain(300);
    const pubs = got.filter((x) => x.cmd === "publish");
    expect(pubs.map((x) => [x.topic, x.payload.toString(), x.retain, x.qos])).toEqual([[topic, "retained will", true, 1]]);
    // clean up the retained message
    later.send({ cmd: "publish", topic, payload: Buffer.alloc(0), qos: 0, retain: true });
    later.destroy();
    live.destroy();
  });

  test("Will Retain 0: published as a normal message, not retained [MQTT-3.1.2-16]", async () => {
    const topic = "will/retain/off";
    const w = await watch(topic);
    const c = await RawClient.connected(b.port, 4, { clientId: "w-ret0", will: will(topic, "plain will") });
    c.destroy();
    await w.waitMessages(1, 5000);
    const later = await RawClient.connected(b.port, 4);
    later.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic, qos: 1 }] });
    const got = await later.drain(300);
    expect(got.map((x) => x.cmd)).toEqual(["suback"]);
    later.destroy();
    await w.end();
  });

  test("Will QoS 1: a QoS 2 subscriber receives it at QoS 1, a QoS 0 subscriber at QoS 0 (§3.1.2.6) [MQTT-3.8.4-6]", async () => {
    const topic = "will/qos1";
    const s2 = await rawWatch(topic, 2);
    const s0 = await rawWatch(topic, 0);
    const c = await RawClient.connected(b.port, 4, { clientId: "w-qos1", will: will(topic, "q1", { qos: 1 }) });
    c.destroy();
    const p2 = await s2.nextOf("publish", 5000);
    const p0 = await s0.nextOf("publish", 5000);
    expect([p2.qos, p2.payload.toString(), p2.dup]).toEqual([1, "q1", false]);
    expect(p2.messageId).toBeGreaterThan(0);
    expect([p0.qos, p0.payload.toString()]).toEqual([0, "q1"]);
    expect(p0.messageId).toBeUndefined();
    s2.send({ cmd: "puback", messageId: p2.messageId });
    s2.destroy();
    s0.destroy();
  });

  test("Will QoS 2: a QoS 2 subscriber receives it at QoS 2 (§3.1.2.6)", async () => {
    const topic = "will/qos2";
    const s2 = await rawWatch(topic, 2);
    const c = await RawClient.connected(b.port, 4, { clientId: "w-qos2", will: will(topic, "q2", { qos: 2 }) });
    c.destroy();
    const p = await s2.nextOf("publish", 5000);
    expect([p.qos, p.payload.toString()]).toEqual([2, "q2"]);
    s2.destroy();
  });
});

describe("invalid will topic", () => {
  for (const bad of ["will/+/x", "will/#"]) {
    test(`3.1.1: will topic "${bad}" → connection closed without an accepting CONNACK (§4.7, [MQTT-3.1.4-1])`, async () => {
      const id = `w-bad311-${bad.includes("#") ? "hash" : "plus"}`;
      const c = await RawClient.connect(b.port, 4);
      c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: id, will: will(bad, "x") });
      expect(await c.waitClose()).toBe(true);
      const got = c.pending();
      expect(got.filter((p) => p.cmd !== "connack" || p.returnCode === 0)).toEqual([]);
      expect(b.broker.sessions.has(id)).toBe(false);
    });

    test(`v5: will topic "${bad}" → CONNACK 0x90 and close (§4.7)`, async () => {
      const id = `w-bad5-${bad.includes("#") ? "hash" : "plus"}`;
      const c = await RawClient.connect(b.port, 5);
      const ack = await c.handshake({ clientId: id, will: will(bad, "x") });
      expect(ack.cmd).toBe("connack");
      expect(ack.reasonCode).toBe(0x90);
      expect(ack.sessionPresent).toBe(false);
      expect(await c.waitClose()).toBe(true);
      expect(b.broker.sessions.has(id)).toBe(false);
    });
  }
});

describe("v5 Will Delay Interval", () => {
  /**
   * A v5 client with a session that outlives the connection (Session Expiry
   * `sessionExpiry` s) and a will delayed by `willDelay` s drops its socket:
   * no will 0.5 s later, then the will `payload` within 5 s. Returns the watcher.
   */
  async function dropWithDelayedWill(topic: string, id: string, payload: string, sessionExpiry: number, willDelay: number): Promise<TestClient> {
    const w = await watch(topic);
    const c = await RawClient.connected(b.port, 5, {
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: sessionExpiry },
      will: will(topic, payload, { properties: { willDelayInterval: willDelay } }),
    });
    await drop(c, id);
    await Bun.sleep(500);
    expect(w.messages).toEqual([]);
    await w.waitMessages(1, 4500);
    expect(w.messages.map((m) => m.payload.toString())).toEqual([payload]);
    return w;
  }

  test("delay 2 s, reconnect (Clean Start 0, expiry 60) within 0.5 s → no will, even 3 s after the drop [MQTT-3.1.3-9] [MQTT-3.1.2-8]", async () => {
    const topic = "will/delay/cancel";
    const w = await watch(topic);
    const id = "w-delay-cancel";
    const opts = { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await RawClient.connected(b.port, 5, { ...opts, will: will(topic, "cancelled", { properties: { willDelayInterval: 2 } }) });
    const dropped = Date.now();
    await drop(c, id);
    const r = await RawClient.connected(b.port, 5, opts);
    expect(Date.now() - dropped).toBeLessThan(500);
    await Bun.sleep(3000 - (Date.now() - dropped));
    expect(w.messages).toEqual([]);
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await r.waitClose();
    await w.end();
  });

  test("delay 2 s, no reconnect → not yet after 0.5 s, published within 5 s; the session survives [MQTT-3.1.2-8]", async () => {
    const id = "w-delay-fire";
    const w = await dropWithDelayedWill("will/delay/fire", id, "delayed", 60, 2);
    expect(b.broker.sessions.has(id)).toBe(true);
    // The published will is removed from the session ([MQTT-3.1.2-10] 5): resuming and dropping again publishes nothing.
    const r = await RawClient.connected(b.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    await drop(r, id);
    await Bun.sleep(300);
    expect(w.messages.length).toBe(1);
    const end = await RawClient.connected(b.port, 5, { clientId: id, clean: true });
    end.send({ cmd: "disconnect", reasonCode: 0 });
    await end.waitClose();
    await w.end();
  });

  test("delay 60 s, session expiry 1 s → the will is published when the session ends, within 5 s [MQTT-3.1.2-8]", async () => {
    const id = "w-delay-expiry";
    const w = await dropWithDelayedWill("will/delay/expiry", id, "session over", 1, 60);
    expect(b.broker.sessions.has(id)).toBe(false);
    await w.end();
  });

  test("delay 2 s, session expiry 0 → the session ends at once and so the will is published at once (within 1.5 s) [MQTT-3.1.2-8]", async () => {
    const topic = "will/delay/noexpiry";
    const w = await watch(topic);
    const c = await RawClient.connected(b.port, 5, {
      clientId: "w-delay-noexp",
      will: will(topic, "no session", { properties: { willDelayInterval: 2 } }),
    });
    c.destroy();
    await w.waitMessages(1, 1500);
    expect(w.messages[0]!.payload.toString()).toBe("no session");
    await w.end();
  });
});

describe("v5 will properties", () => {
  /** A User Property entry with a one-character name and value, as encoded. */
  const up = (k: string, v: string) => Buffer.from([0x26, 0, 1, k.charCodeAt(0), 0, 1, v.charCodeAt(0)]);

  /**
   * Connect a raw v5 client whose will (QoS 0, payload "ordered") carries
   * `userProperties` as mqtt-packet encodes them, except that the name of the
   * entry `from` (a name and value) is changed in place to `to` (one
   * character, so no length changes); CONNACK 0x00 is checked, then the socket
   * is destroyed so the will goes out.
   */
  async function connectWithEditedWillUserProps(clientId: string, topic: string, userProperties: Record<string, string>, from: [string, string], to: string): Promise<void> {
    const connect = mqtt.generate(
      {
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 5,
        clean: true,
        keepalive: 0,
        clientId,
        will: { topic, payload: Buffer.from("ordered"), qos: 0, retain: false, properties: { userProperties } },
      } as unknown as mqtt.Packet,
      { protocolVersion: 5 },
    );
    const at = connect.indexOf(up(...from));
    expect(at).toBeGreaterThan(0);
    connect[at + 3] = to.charCodeAt(0);
    const c = await RawClient.connect(b.port, 5);
    c.write(connect);
    const ack = await c.next();
    expect(ack.cmd).toBe("connack");
    expect(ack.reasonCode).toBe(0);
    c.destroy();
  }

  test("Payload Format Indicator, Content Type, Response Topic, Correlation Data, User Properties arrive unchanged (§3.1.3.2.3–7) [MQTT-3.1.3-10]", async () => {
    const topic = "will/props";
    const s = await rawWatch(topic, 1, 5);
    const c = await RawClient.connected(b.port, 5, {
      clientId: "w-props",
      will: will(topic, "with props", {
        properties: {
          payloadFormatIndicator: true,
          contentType: "text/plain",
          responseTopic: "will/props/reply",
          correlationData: Buffer.from([1, 2, 3, 0xff]),
          userProperties: { a: "1", b: "2" },
        },
      }),
    });
    c.destroy();
    const p = await s.nextOf("publish", 5000);
    expect(p.payload.toString()).toBe("with props");
    const props = p.properties ?? {};
    expect(props.payloadFormatIndicator).toBe(true);
    expect(props.contentType).toBe("text/plain");
    expect(props.responseTopic).toBe("will/props/reply");
    expect(Buffer.from(props.correlationData as Buffer).equals(Buffer.from([1, 2, 3, 0xff]))).toBe(true);
    expect(props.userProperties).toEqual({ a: "1", b: "2" });
    expect(props.messageExpiryInterval).toBeUndefined(); // absent on the will = no expiry
    s.send({ cmd: "puback", messageId: p.messageId });
    s.destroy();
  });

  test("will User Properties keep their order, interleaved keys included (a=1, b=2, a=3) [MQTT-3.1.3-10]", async () => {
    const topic = "will/props/order";
    const s = await rawWatch(topic, 0, 5);
    // mqtt-packet groups equal keys, so encode a=1, b=2, c=3 and rename c to a (same length).
    await connectWithEditedWillUserProps("w-props-order", topic, { a: "1", b: "2", c: "3" }, ["c", "3"], "a");
    const p = await s.nextOf("publish", 5000);
    expect(p.properties?.userProperties).toEqual({ a: ["1", "3"], b: "2" });
    const bytes = Buffer.concat(s.received);
    expect(bytes.indexOf(Buffer.concat([up("a", "1"), up("b", "2"), up("a", "3")]))).toBeGreaterThan(0);
    s.destroy();
  });

  test("will User Properties keep their order with an integer-like name (z=1, 7=2) [MQTT-3.1.3-10]", async () => {
    const topic = "will/props/order-int";
    const s = await rawWatch(topic, 0, 5);
    // mqtt-packet would encode the object {z, 7} as 7 first (JS key order): encode z, y and rename y to 7.
    await connectWithEditedWillUserProps("w-props-order-int", topic, { z: "1", y: "2" }, ["y", "2"], "7");
    const p = await s.nextOf("publish", 5000);
    expect(p.properties?.userProperties).toEqual({ z: "1", "7": "2" });
    const bytes = Buffer.concat(s.received);
    expect(bytes.indexOf(Buffer.concat([up("z", "1"), up("7", "2")]))).toBeGreaterThan(0);
    s.destroy();
  });

  test("will Message Expiry Interval is forwarded as the published message's expiry (§3.1.3.2.4) [MQTT-3.3.2-6]", async () => {
    const topic = "will/expiry/fwd";
    const s = await rawWatch(topic, 1, 5);
    const c = await RawClient.connected(b.port, 5, {
      clientId: "w-exp-fwd",
      will: will(topic, "expiring", { properties: { messageExpiryInterval: 100 } }),
    });
    c.destroy();
    const p = await s.nextOf("publish", 5000);
    const e = p.properties?.messageExpiryInterval as number | undefined;
    expect(e).toBeDefined();
    expect(e!).toBeLessThanOrEqual(100);
    expect(e!).toBeGreaterThanOrEqual(90);
    s.send({ cmd: "puback", messageId: p.messageId });
    s.destroy();
  });

  test("retained will with Message Expiry 1 s is gone 2 s later: a new subscriber gets nothing (5 §3.3.1.3, [MQTT-3.3.2-5])", async () => {
    const topic = "will/expiry/retained";
    const live = await rawWatch(topic, 1, 5);
    const c = await RawClient.connected(b.port, 5, {
      clientId: "w-exp-ret",
      will: will(topic, "short-lived", { retain: true, properties: { messageExpiryInterval: 1 } }),
    });
    c.destroy();
    const p: Packet = await live.nextOf("publish", 5000);
    expect(p.payload.toString()).toBe("short-lived");
    live.send({ cmd: "puback", messageId: p.messageId });
    await Bun.sleep(2000);
    const later = await RawClient.connected(b.port, 5);
    later.send({ cmd: "subscribe", messageId: 4, subscriptions: [{ topic, qos: 1 }] });
    const got = await later.drain(300);
    expect(got.map((x) => x.cmd)).toEqual(["suback"]);
    later.destroy();
    live.destroy();
  });
});
