/**
 * PUBLISH flows: QoS 0/1/2 inbound and outbound, across protocol levels
 * (3.1.1 = 4, 5), exactly-once, packet identifiers, ordering, no live
 * retransmission, v5 properties and topic aliases, payload and topic bytes.
 *
 * "Nothing else arrived" is checked with a marker published after the message
 * under test: the broker writes to a subscriber in processing order, so any
 * wrong copy would arrive before the marker.
 */
import { describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";
import { type Packet, publishesUntil, RawClient } from "../helpers/raw.ts";

const b = useTestBroker();
const pool = usePool();

const VERSIONS = [4, 5] as const;
type V = 4 | 5;
type Q = 0 | 1 | 2;

/** Connect a raw client with a known Client ID (closed after the test). */
const raw = (version: V, tag: string, opts: Record<string, unknown> = {}, rb: RunningBroker = b) => pool.raw(rb, version, tag, opts);

async function subscribe(c: RawClient, topic: string, qos: Q, opts: Record<string, unknown> = {}): Promise<void> {
  c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos, ...opts }] });
  const ack = await c.next();
  expect(ack.cmd).toBe("suback");
  expect(ack.granted).toEqual([qos]);
}

/** Acknowledge an outbound PUBLISH the way a well-behaved client does (QoS 2: PUBREC, expect PUBREL, PUBCOMP). */
async function ackPublish(c: RawClient, p: Packet): Promise<void> {
  if (p.qos === 1) c.send({ cmd: "puback", messageId: p.messageId });
  if (p.qos === 2) {
    c.send({ cmd: "pubrec", messageId: p.messageId });
    const rel = await c.nextOf("pubrel");
    expect(rel.messageId).toBe(p.messageId);
    c.send({ cmd: "pubcomp", messageId: p.messageId });
  }
}

function end(...cs: RawClient[]): void {
  for (const c of cs) c.destroy();
}

// ---------------------------------------------------------------------------

describe("QoS flows across protocol levels [MQTT-3.3.4-1] [MQTT-4.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.3-1] [MQTT-2.3.1-6]/5 [MQTT-2.2.1-5]", () => {
  for (const pv of VERSIONS) {
    for (const sv of VERSIONS) {
      for (const qos of [0, 1, 2] as const) {
        test(`QoS ${qos}: v${pv} publisher → v${sv} subscriber, acks echo ids, outbound id non-zero with DUP=0`, async () => {
          const topic = `qf/${pv}${sv}${qos}`;
          const s = await raw(sv, "qfsub");
          await subscribe(s, topic, 2);
          const p = await raw(pv, "qfpub");
          const payload = Buffer.from(`hello ${pv}->${sv} q${qos}`);
          p.send({ cmd: "publish", topic, payload, qos, retain: false, ...(qos > 0 ? { messageId: 0x1234 } : {}) });
          if (qos === 1) {
            const a = await p.next();
            expect([a.cmd, a.messageId]).toEqual(["puback", 0x1234]);
            if (pv === 5) expect(a.reasonCode).toBe(0);
          } else if (qos === 2) {
            const rec = await p.next();
            expect([rec.cmd, rec.messageId]).toEqual(["pubrec", 0x1234]);
            if (pv === 5) expect(rec.reasonCode).toBe(0);
            p.send({ cmd: "pubrel", messageId: 0x1234 });
            const comp = await p.next();
            expect([comp.cmd, comp.messageId]).toEqual(["pubcomp", 0x1234]);
            if (pv === 5) expect(comp.reasonCode).toBe(0);
          }
          const m = await s.next();
          expect(m.cmd).toBe("publish");
          expect(m.topic).toBe(topic);
          expect(Buffer.from(m.payload)).toEqual(payload);
          expect(m.qos).toBe(qos);
          expect(m.retain).toBe(false);
          expect(m.dup).toBe(false); // [MQTT-4.3.2-1] / [MQTT-4.3.3-1]: DUP 0 on first send
          if (qos > 0) {
            expect(m.messageId).toBeGreaterThan(0); // 3.1.1 [MQTT-2.3.1-1] / 5 [MQTT-2.2.1-3]
            await ackPublish(s, m);
          }
          // Outbound delivery complete: nothing left in flight for the subscriber.
          await waitFor(() => b.broker.sessions.get(s.id)?.inflight.count === 0, 2000, "in-flight empty");
          expect(p.closed || s.closed).toBe(false);
          end(s, p);
        });
      }
    }
  }

  for (const [pv, sv] of [
    [4, 5],
    [5, 4],
  ] as const) {
    test(`MQTT.js: v${pv} publisher → v${sv} subscriber at QoS 0, 1 and 2, in order`, async () => {
      const topic = `qfjs/${pv}${sv}`;
      const s = await connectClient(b.port, { protocolVersion: sv });
      await s.client.subscribeAsync(topic, { qos: 2 });
      const p = await connectClient(b.port, { protocolVersion: pv });
      for (const qos of [0, 1, 2] as const) await p.client.publishAsync(topic, `q${qos}`, { qos });
      await s.waitMessages(3);
      expect(s.messages.map((m) => [m.topic, m.payload.toString(), m.qos, m.retain, m.dup])).toEqual([
        [topic, "q0", 0, false, false],
        [topic, "q1", 1, false, false],
        [topic, "q2", 2, false, false],
      ]);
      await Promise.all([s.end(), p.end()]);
    });
  }
});

describe("outbound DUP and MQTT 3.1 interop", () => {
  for (const qos of [1, 2] as const) {
    test(`QoS ${qos}: an inbound DUP=1 PUBLISH is forwarded with DUP=0 (first send) [MQTT-3.3.1-3]`, async () => {
      const s = await raw(5, "dupsub");
      await subscribe(s, `dup/${qos}`, 2);
      const p = await raw(4, "duppub");
      p.send({ cmd: "publish", topic: `dup/${qos}`, payload: Buffer.from("d"), qos, messageId: 3, dup: true });
      const m = await s.nextOf("publish");
      expect([m.payload.toString(), m.qos, m.dup]).toEqual(["d", qos, false]);
      end(s, p);
    });
  }

  test("MQTT 3.1 (MQIsdp, level 3) client ↔ v5 client at QoS 2, both directions", async () => {
    const old = await RawClient.connected(b.port, 3, { clientId: uid("mqisdp") });
    const v5 = await raw(5, "mqisdp5");
    old.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "mqisdp/to3", qos: 2 }] });
    expect((await old.next()).granted).toEqual([2]);
    await subscribe(v5, "mqisdp/to5", 2);
    old.send({ cmd: "publish", topic: "mqisdp/to5", payload: Buffer.from("from 3.1"), qos: 2, messageId: 4 });
    expect((await old.nextOf("pubrec")).messageId).toBe(4);
    old.send({ cmd: "pubrel", messageId: 4 });
    expect((await old.nextOf("pubcomp")).messageId).toBe(4);
    const m5 = await v5.nextOf("publish");
    expect([m5.topic, m5.payload.toString(), m5.qos]).toEqual(["mqisdp/to5", "from 3.1", 2]);
    await ackPublish(v5, m5);
    v5.send({ cmd: "publish", topic: "mqisdp/to3", payload: Buffer.from("from 5"), qos: 2, messageId: 5 });
    const m3 = await old.nextOf("publish");
    expect([m3.topic, m3.payload.toString(), m3.qos, m3.dup]).toEqual(["mqisdp/to3", "from 5", 2, false]);
    await ackPublish(old, m3);
    old.destroy();
    end(v5);
  });
});

describe("QoS 2 exactly once (3.1.1 [MQTT-4.3.3-2], 5 [MQTT-4.3.3-8]..[MQTT-4.3.3-12])", () => {
  for (const v of VERSIONS) {
    test(`v${v}: PUBLISH 7 repeated with DUP before PUBREL → two PUBRECs, one delivery; PUBREL → PUBCOMP 7`, async () => {
      const topic = `eo/${v}`;
      const s = await raw(v, "eosub");
      await subscribe(s, topic, 2);
      const p = await raw(v, "eopub");
      p.send({ cmd: "publish", topic, payload: Buffer.from("once"), qos: 2, messageId: 7 });
      const rec1 = await p.next();
      expect([rec1.cmd, rec1.messageId]).toEqual(["pubrec", 7]);
      p.send({ cmd: "publish", topic, payload: Buffer.from("once"), qos: 2, messageId: 7, dup: true });
      const rec2 = await p.next();
      expect([rec2.cmd, rec2.messageId]).toEqual(["pubrec", 7]);
      expect(b.broker.sessions.get(p.id)!.inboundQos2.has(7)).toBe(true);
      p.send({ cmd: "pubrel", messageId: 7 });
      const comp = await p.next();
      expect([comp.cmd, comp.messageId]).toEqual(["pubcomp", 7]);
      if (v === 5) expect(comp.reasonCode).toBe(0);
      expect(b.broker.sessions.get(p.id)!.inboundQos2.has(7)).toBe(false);
      p.send({ cmd: "publish", topic, payload: Buffer.from("marker"), qos: 0 });
      const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
      expect(got.map((m) => [m.payload.toString(), m.qos])).toEqual([
        ["once", 2],
        ["marker", 0],
      ]);
      end(s, p);
    });

    test(`v${v}: after PUBCOMP, a PUBLISH reusing id 7 is a new message and is delivered again (5 [MQTT-4.3.3-12])`, async () => {
      const topic = `eo2/${v}`;
      const s = await raw(v, "eo2sub");
      await subscribe(s, topic, 0);
      const p = await raw(v, "eo2pub");
      for (const payload of ["first", "second"]) {
        p.send({ cmd: "publish", topic, payload: Buffer.from(payload), qos: 2, messageId: 7 });
        expect((await p.nextOf("pubrec")).messageId).toBe(7);
        p.send({ cmd: "pubrel", messageId: 7 });
        expect((await p.nextOf("pubcomp")).messageId).toBe(7);
      }
      const got = await publishesUntil(s, (m) => m.payload.toString() === "second");
      expect(got.map((m) => m.payload.toString())).toEqual(["first", "second"]);
      end(s, p);
    });

    test(`v${v}: PUBREL for unknown id 9 → PUBCOMP 9${v === 5 ? " with 0x92" : ""} (§4.3.3 / 5 §3.7.2.1); connection stays`, async () => {
      const p = await raw(v, "pubrel9");
      p.send({ cmd: "pubrel", messageId: 9 });
      const comp = await p.next();
      expect([comp.cmd, comp.messageId]).toEqual(["pubcomp", 9]);
      if (v === 5) expect(comp.reasonCode).toBe(0x92);
      else expect(comp.length).toBe(2);
      p.send({ cmd: "pingreq" });
      expect((await p.next()).cmd).toBe("pingresp");
      end(p);
    });
  }

  test("v4: QoS 1 id reused after PUBACK (even with DUP) is a new message (3.1.1 [MQTT-4.3.2-2], 5 [MQTT-4.3.2-5])", async () => {
    const s = await raw(4, "q1reusesub");
    await subscribe(s, "q1reuse", 1);
    const p = await raw(4, "q1reusepub");
    p.send({ cmd: "publish", topic: "q1reuse", payload: Buffer.from("a"), qos: 1, messageId: 5 });
    expect((await p.nextOf("puback")).messageId).toBe(5);
    p.send({ cmd: "publish", topic: "q1reuse", payload: Buffer.from("b"), qos: 1, messageId: 5, dup: true });
    expect((await p.nextOf("puback")).messageId).toBe(5);
    const got = await publishesUntil(s, (m) => m.payload.toString() === "b");
    expect(got.map((m) => m.payload.toString())).toEqual(["a", "b"]);
    end(s, p);
  });
});

describe("outbound QoS 2 flow [MQTT-4.3.3-1]..[MQTT-4.3.3-6]", () => {
  for (const v of VERSIONS) {
    test(`v${v}: subscriber PUBREC → broker PUBREL (same id), PUBCOMP frees the id`, async () => {
      const s = await raw(v, "out2sub");
      await subscribe(s, "out2/t", 2);
      const p = await raw(4, "out2pub");
      p.send({ cmd: "publish", topic: "out2/t", payload: Buffer.from("x"), qos: 2, messageId: 1 });
      const m = await s.next();
      expect([m.cmd, m.qos, m.dup]).toEqual(["publish", 2, false]);
      expect(m.messageId).toBeGreaterThan(0);
      const sess = b.broker.sessions.get(s.id)!;
      expect(sess.inflight.get(m.messageId as number)?.released).toBe(false);
      s.send({ cmd: "pubrec", messageId: m.messageId });
      const rel = await s.next();
      expect([rel.cmd, rel.messageId]).toEqual(["pubrel", m.messageId]);
      if (v === 5) expect(rel.reasonCode).toBe(0);
      expect(sess.inflight.get(m.messageId as number)?.released).toBe(true);
      s.send({ cmd: "pubcomp", messageId: m.messageId });
      await waitFor(() => sess.inflight.count === 0, 2000, "PUBCOMP processed");
      end(s, p);
    });
  }
});

describe("delivered QoS = min(published, granted) (3.1.1 [MQTT-3.8.4-6], 5 [MQTT-3.8.4-8])", () => {
  for (const v of VERSIONS) {
    for (const granted of [0, 1, 2] as const) {
      test(`v${v} subscriber granted QoS ${granted}: publishes at QoS 0, 1, 2 arrive at ${[0, 1, 2].map((q) => Math.min(q, granted)).join(", ")}`, async () => {
        const topic = `minq/${v}/${granted}`;
        const s = await raw(v, "minqsub");
        await subscribe(s, topic, granted);
        const p = await raw(4, "minqpub");
        for (const qos of [0, 1, 2] as const) {
          p.send({ cmd: "publish", topic, payload: Buffer.from(`q${qos}`), qos, ...(qos > 0 ? { messageId: 10 + qos } : {}) });
        }
        const got: Packet[] = [];
        for (let i = 0; i < 3; i++) {
          const m = await s.nextOf("publish");
          got.push(m);
          await ackPublish(s, m);
        }
        expect(got.map((m) => [m.payload.toString(), m.qos])).toEqual([
          ["q0", 0],
          ["q1", Math.min(1, granted)],
          ["q2", Math.min(2, granted)],
        ]);
        end(s, p);
      });
    }
  }
});

describe("ordering (3.1.1 [MQTT-4.6.0-5], 5 [MQTT-4.6.0-5]/[MQTT-4.6.0-6])", () => {
  for (const v of VERSIONS) {
    test(`v${v}: 100 QoS 1 messages on one topic arrive in order`, async () => {
      const topic = `ord100/${v}`;
      const s = await connectClient(b.port, { protocolVersion: v });
      await s.client.subscribeAsync(topic, { qos: 1 });
      const p = await connectClient(b.port, { protocolVersion: v });
      await Promise.all(Array.from({ length: 100 }, (_, i) => p.client.publishAsync(topic, String(i), { qos: 1 })));
      await s.waitMessages(100, 5000);
      expect(s.messages.map((m) => Number(m.payload.toString()))).toEqual(Array.from({ length: 100 }, (_, i) => i));
      expect(s.messages.every((m) => m.qos === 1 && !m.dup)).toBe(true);
      await Promise.all([s.end(), p.end()]);
    });
  }

  test("5 publishers interleaved on one topic: each publisher's messages keep their order", async () => {
    const topic = "ord5/t";
    const s = await connectClient(b.port, { protocolVersion: 5 });
    await s.client.subscribeAsync(topic, { qos: 2 });
    const pubs = await Promise.all(Array.from({ length: 5 }, (_, i) => connectClient(b.port, { protocolVersion: i % 2 === 0 ? 5 : 4 })));
    const N = 40;
    await Promise.all(
      pubs.map(async (p, i) => {
        const sends: Promise<unknown>[] = [];
        for (let n = 0; n < N; n++) {
          sends.push(p.client.publishAsync(topic, `${i}:${n}`, { qos: 1 }));
          if (n % 8 === 7) await Bun.sleep(0); // let the publishers interleave
        }
        await Promise.all(sends);
      }),
    );
    await s.waitMessages(5 * N, 5000);
    const seqs: number[][] = [[], [], [], [], []];
    for (const m of s.messages) {
      const [i, n] = m.payload.toString().split(":").map(Number);
      seqs[i!]!.push(n!);
    }
    for (const seq of seqs) expect(seq).toEqual(Array.from({ length: N }, (_, n) => n));
    await Promise.all([s.end(), ...pubs.map((p) => p.end())]);
  });
});

describe("packet identifiers in flight are never reused (3.1.1 [MQTT-2.3.1-4], 5 [MQTT-2.2.1-4]); in-flight window = limits.maxInflight", () => {
  const ib = useTestBroker({ limits: { maxInflight: 10 } });

  for (const v of VERSIONS) {
    test(`v${v}: a subscriber that never acks gets 10 distinct ids, then nothing until it acks one, then exactly one more`, async () => {
      const topic = `inflight/${v}`;
      const s = await raw(v, "inflsub", {}, ib);
      await subscribe(s, topic, 1);
      const p = await raw(4, "inflpub", {}, ib);
      for (let i = 0; i < 15; i++) p.send({ cmd: "publish", topic, payload: Buffer.from(`m${i}`), qos: 1, messageId: i + 1 });
      // A QoS 0 marker is not limited by the window: it overtakes the queued QoS 1 messages.
      p.send({ cmd: "publish", topic, payload: Buffer.from("marker"), qos: 0 });
      const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
      const q1 = got.slice(0, -1);
      expect(q1.map((m) => m.payload.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
      const ids = q1.map((m) => m.messageId as number);
      expect(ids.every((id) => id > 0 && id <= 65535)).toBe(true);
      expect(new Set(ids).size).toBe(10);
      expect(q1.every((m) => m.qos === 1 && !m.dup)).toBe(true);
      const sess = ib.broker.sessions.get(s.id)!;
      expect(sess.inflight.count).toBe(10);
      expect(sess.queue.length).toBe(5);

      // Ack the third one: exactly one more arrives, with an id not among the 9 still in flight.
      s.send({ cmd: "puback", messageId: ids[2] });
      const m10 = await s.nextOf("publish");
      expect(m10.payload.toString()).toBe("m10");
      const stillInFlight = ids.filter((_, i) => i !== 2);
      expect(stillInFlight).not.toContain(m10.messageId);
      p.send({ cmd: "publish", topic, payload: Buffer.from("marker2"), qos: 0 });
      expect((await s.nextOf("publish")).payload.toString()).toBe("marker2");

      // Ack everything: the rest arrive, in order, ids still unique among those in flight.
      const inFlight = new Set([...stillInFlight, m10.messageId as number]);
      const rest: string[] = [];
      for (const id of [...inFlight]) s.send({ cmd: "puback", messageId: id });
      while (rest.length < 4) {
        const m = await s.nextOf("publish");
        expect(inFlight.has(m.messageId as number)).toBe(false);
        rest.push(m.payload.toString());
        s.send({ cmd: "puback", messageId: m.messageId });
      }
      expect(rest).toEqual(["m11", "m12", "m13", "m14"]);
      await waitFor(() => sess.inflight.count === 0 && sess.queue.length === 0, 2000, "all acknowledged");
      end(s, p);
    });
  }
});

describe("packet identifiers wrap around without reusing one in flight (3.1.1 [MQTT-2.3.1-4], 5 [MQTT-2.2.1-4])", () => {
  test("first delivery left unacknowledged while 65,600 more pass: its id is never handed out again", async () => {
    const s = await raw(4, "wrapsub");
    await subscribe(s, "wrap/t", 1);
    const p = await raw(4, "wrappub");
    p.send({ cmd: "publish", topic: "wrap/t", payload: Buffer.from("held"), qos: 1, messageId: 1 });
    await p.nextOf("puback");
    const held = await s.nextOf("publish");
    const heldId = held.messageId as number;
    expect(heldId).toBeGreaterThan(0);
    const N = 65_600;
    // Chunks stay below the session queue limit (maxQueuedMessages) so nothing is dropped.
    const CHUNK = 500;
    const bad: number[] = [];
    let received = 0;
    for (let sent = 0; sent < N; sent += CHUNK) {
      const n = Math.min(CHUNK, N - sent);
      const frames: Buffer[] = [];
      // Hand-built QoS 1 PUBLISH "wrap/t", empty payload, publisher packet id i + 1.
      for (let i = 0; i < n; i++) frames.push(Buffer.from([0x32, 0x0a, 0x00, 0x06, 0x77, 0x72, 0x61, 0x70, 0x2f, 0x74, ((i + 1) >> 8) & 0xff, (i + 1) & 0xff]));
      p.write(Buffer.concat(frames));
      for (let i = 0; i < n; i++) {
        const m = await s.nextOf("publish", 5000);
        const id = m.messageId as number;
        if (id === 0 || id === heldId) bad.push(id);
        received++;
        s.write([0x40, 0x02, id >> 8, id & 0xff]); // PUBACK at once: frees the window slot
      }
      for (let i = 0; i < n; i++) await p.nextOf("puback", 5000);
    }
    expect(received).toBe(N);
    expect(bad).toEqual([]);
    // The held delivery is still in flight under its original id.
    const sess = b.broker.sessions.get(s.id)!;
    await waitFor(() => sess.inflight.count === 1, 3000, "only the held delivery in flight");
    expect(sess.inflight.get(heldId)?.msg.payload.toString()).toBe("held");
  }, 20_000);
});

describe("v5: no retransmission on a live connection [MQTT-4.4.0-1]", () => {
  test("unacknowledged QoS 1 PUBLISH, QoS 2 PUBLISH and PUBREL are not re-sent while connected", async () => {
    const s = await raw(5, "noretry");
    await subscribe(s, "noretry/t", 2);
    const p = await raw(5, "noretrypub");
    p.send({ cmd: "publish", topic: "noretry/t", payload: Buffer.from("q1"), qos: 1, messageId: 1 });
    p.send({ cmd: "publish", topic: "noretry/t", payload: Buffer.from("q2a"), qos: 2, messageId: 2 });
    p.send({ cmd: "publish", topic: "noretry/t", payload: Buffer.from("q2b"), qos: 2, messageId: 3 });
    const got = [await s.next(), await s.next(), await s.next()];
    expect(got.map((m) => [m.cmd, m.payload.toString(), m.qos, m.dup])).toEqual([
      ["publish", "q1", 1, false],
      ["publish", "q2a", 2, false],
      ["publish", "q2b", 2, false],
    ]);
    // PUBREC the last one only: a single PUBREL comes back.
    s.send({ cmd: "pubrec", messageId: got[2]!.messageId });
    const rel = await s.next();
    expect([rel.cmd, rel.messageId]).toEqual(["pubrel", got[2]!.messageId]);
    // Several housekeeping ticks (250 ms each) pass: nothing is sent again.
    await Bun.sleep(1300);
    expect(s.pending()).toEqual([]);
    expect(b.broker.sessions.get(s.id)!.inflight.count).toBe(3);
    end(s, p);
  });
});

describe("acknowledgement reason codes", () => {
  test("v5: PUBACK / PUBREC 0x10 when nobody is subscribed, 0x00 when someone is (§3.4.2.1)", async () => {
    const p = await raw(5, "rc10");
    p.send({ cmd: "publish", topic: "rc10/nobody", payload: Buffer.from("x"), qos: 1, messageId: 1 });
    const a = await p.next();
    expect([a.cmd, a.messageId, a.reasonCode]).toEqual(["puback", 1, 0x10]);
    p.send({ cmd: "publish", topic: "rc10/nobody", payload: Buffer.from("x"), qos: 2, messageId: 2 });
    const r = await p.next();
    expect([r.cmd, r.messageId, r.reasonCode]).toEqual(["pubrec", 2, 0x10]);
    p.send({ cmd: "pubrel", messageId: 2 });
    const c = await p.next();
    expect([c.cmd, c.messageId, c.reasonCode]).toEqual(["pubcomp", 2, 0]);
    const s = await raw(4, "rc10sub");
    await subscribe(s, "rc10/somebody", 0);
    p.send({ cmd: "publish", topic: "rc10/somebody", payload: Buffer.from("x"), qos: 1, messageId: 3 });
    const a2 = await p.next();
    expect([a2.cmd, a2.messageId, a2.reasonCode]).toEqual(["puback", 3, 0]);
    end(p, s);
  });

  test("3.1.1: PUBACK has remaining length 2 even when nobody is subscribed", async () => {
    const p = await raw(4, "rc4");
    const before = p.received.length;
    p.send({ cmd: "publish", topic: "rc4/nobody", payload: Buffer.from("x"), qos: 1, messageId: 0x0a0b });
    await p.next();
    expect(Buffer.concat(p.received.slice(before))).toEqual(Buffer.from([0x40, 0x02, 0x0a, 0x0b]));
    end(p);
  });
});

describe("$SYS topics are the broker's (§4.7.2)", () => {
  test("v5: PUBLISH to $SYS/x → PUBACK / PUBREC 0x87 and not delivered", async () => {
    const s = await raw(5, "syssub");
    s.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [
        { topic: "$SYS/#", qos: 1 },
        { topic: "$test/sys", qos: 0 },
      ],
    });
    expect((await s.next()).granted).toEqual([1, 0]);
    const p = await raw(5, "syspub");
    p.send({ cmd: "publish", topic: "$SYS/x", payload: Buffer.from("fake"), qos: 1, messageId: 1 });
    const a = await p.next();
    expect([a.cmd, a.messageId, a.reasonCode]).toEqual(["puback", 1, 0x87]);
    p.send({ cmd: "publish", topic: "$SYS/x", payload: Buffer.from("fake2"), qos: 2, messageId: 2 });
    const r = await p.next();
    expect([r.cmd, r.messageId, r.reasonCode]).toEqual(["pubrec", 2, 0x87]);
    p.send({ cmd: "publish", topic: "$SYS/x", payload: Buffer.from("fake0"), qos: 0 });
    p.send({ cmd: "publish", topic: "$test/sys", payload: Buffer.from("marker"), qos: 0 });
    const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
    // The broker's own $SYS/broker/... topics (sys.ts) may arrive; nothing a client published to $SYS does.
    expect(got.map((m) => m.topic).filter((t) => !t.startsWith("$SYS/broker/"))).toEqual(["$test/sys"]);
    expect(p.closed).toBe(false);
    end(s, p);
  });

  test("3.1.1: PUBLISH to $SYS/x is acknowledged normally and dropped (3.1.1 [MQTT-3.3.5-2])", async () => {
    const s = await raw(4, "syssub4");
    s.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [
        { topic: "$SYS/#", qos: 1 },
        { topic: "$test/sys4", qos: 0 },
      ],
    });
    expect((await s.next()).granted).toEqual([1, 0]);
    const p = await raw(4, "syspub4");
    p.send({ cmd: "publish", topic: "$SYS/x", payload: Buffer.from("fake"), qos: 1, messageId: 1, retain: true });
    const a = await p.next();
    expect([a.cmd, a.messageId, a.length]).toEqual(["puback", 1, 2]);
    expect(b.broker.retainedMessage("$SYS/x")).toBeNull();
    p.send({ cmd: "publish", topic: "$test/sys4", payload: Buffer.from("marker"), qos: 0 });
    const got = await publishesUntil(s, (m) => m.payload.toString() === "marker");
    expect(got.map((m) => m.topic).filter((t) => !t.startsWith("$SYS/broker/"))).toEqual(["$test/sys4"]);
    expect(p.closed).toBe(false);
    end(s, p);
  });
});

describe("v5 properties pass through ([MQTT-3.3.2-4], [MQTT-3.3.2-15]..[MQTT-3.3.2-18], [MQTT-3.3.2-6])", () => {
  test("Payload Format Indicator, Content Type, Response Topic, Correlation Data, User Properties unchanged; Message Expiry forwarded", async () => {
    const s = await raw(5, "propsub");
    await subscribe(s, "props/t", 1);
    const s4 = await raw(4, "propsub4");
    await subscribe(s4, "props/t", 1);
    const p = await raw(5, "proppub");
    const correlationData = Buffer.from([0x00, 0xff, 0x10, 0x80]);
    p.send({
      cmd: "publish",
      topic: "props/t",
      payload: Buffer.from("{}"),
      qos: 1,
      messageId: 1,
      properties: {
        payloadFormatIndicator: true,
        messageExpiryInterval: 100,
        contentType: "application/json; charset=utf-8",
        responseTopic: "props/reply/é",
        correlationData,
        userProperties: { a: "1", b: "two", "clé": "välue" },
      },
    });
    expect((await p.nextOf("puback")).reasonCode).toBe(0);
    const m = await s.nextOf("publish");
    const pr = m.properties!;
    expect(pr.payloadFormatIndicator).toBe(true);
    expect(pr.contentType).toBe("application/json; charset=utf-8");
    expect(pr.responseTopic).toBe("props/reply/é");
    expect(Buffer.from(pr.correlationData)).toEqual(correlationData);
    expect({ ...pr.userProperties }).toEqual({ a: "1", b: "two", "clé": "välue" });
    expect(pr.messageExpiryInterval).toBeGreaterThan(0);
    expect(pr.messageExpiryInterval).toBeLessThanOrEqual(100);
    expect(pr.messageExpiryInterval).toBeGreaterThanOrEqual(99);
    expect(pr.topicAlias).toBeUndefined(); // the publisher sent none and we allowed none
    expect(pr.subscriptionIdentifier).toBeUndefined();
    expect(m.payload.toString()).toBe("{}");
    // A 3.1.1 subscriber gets the same message without properties.
    const m4 = await s4.nextOf("publish");
    expect([m4.topic, m4.payload.toString(), m4.properties]).toEqual(["props/t", "{}", undefined]);
    end(s, s4, p);
  });

  test("the same properties reach an MQTT.js v5 subscriber from an MQTT.js v5 publisher", async () => {
    const s = await connectClient(b.port, { protocolVersion: 5 });
    await s.client.subscribeAsync("propsjs/t", { qos: 1 });
    const p = await connectClient(b.port, { protocolVersion: 5 });
    await p.client.publishAsync("propsjs/t", "hi", {
      qos: 1,
      properties: { contentType: "text/plain", responseTopic: "propsjs/r", correlationData: Buffer.from("cid"), userProperties: { k: "v" }, payloadFormatIndicator: true },
    });
    await s.waitMessages(1);
    const pr = s.messages[0]!.properties!;
    expect(pr.contentType).toBe("text/plain");
    expect(pr.responseTopic).toBe("propsjs/r");
    expect(Buffer.from(pr.correlationData as Buffer).toString()).toBe("cid");
    expect({ ...(pr.userProperties as object) }).toEqual({ k: "v" });
    expect(pr.payloadFormatIndicator).toBe(true);
    expect(pr.messageExpiryInterval).toBeUndefined(); // none was sent: none is invented
    await Promise.all([s.end(), p.end()]);
  });
});

describe("v5 inbound Topic Alias §3.3.2.3.4", () => {
  test("topic + alias 1, then empty topic + alias 1 → the subscriber sees the real topic twice, without an alias", async () => {
    const s = await raw(5, "aliassub");
    await subscribe(s, "alias/x", 1);
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: uid("aliaspub") });
    expect(ack.properties?.topicAliasMaximum).toBeGreaterThanOrEqual(1);
    c.send({ cmd: "publish", topic: "alias/x", payload: Buffer.from("one"), qos: 1, messageId: 1, properties: { topicAlias: 1 } });
    expect((await c.nextOf("puback")).messageId).toBe(1);
    c.send({ cmd: "publish", topic: "", payload: Buffer.from("two"), qos: 1, messageId: 2, properties: { topicAlias: 1 } });
    expect((await c.nextOf("puback")).messageId).toBe(2);
    c.send({ cmd: "publish", topic: "", payload: Buffer.from("three"), qos: 0, properties: { topicAlias: 1 } });
    const got = await publishesUntil(s, (m) => m.payload.toString() === "three");
    expect(got.map((m) => [m.topic, m.payload.toString(), m.properties?.topicAlias])).toEqual([
      ["alias/x", "one", undefined],
      ["alias/x", "two", undefined],
      ["alias/x", "three", undefined],
    ]);
    end(s, c);
  });

  test("re-binding an alias to a new topic takes effect", async () => {
    const s = await raw(5, "aliasrb");
    s.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "aliasrb/#", qos: 0 }] });
    await s.nextOf("suback");
    const c = await raw(5, "aliasrbpub");
    c.send({ cmd: "publish", topic: "aliasrb/a", payload: Buffer.from("1"), qos: 0, properties: { topicAlias: 3 } });
    c.send({ cmd: "publish", topic: "aliasrb/b", payload: Buffer.from("2"), qos: 0, properties: { topicAlias: 3 } });
    c.send({ cmd: "publish", topic: "", payload: Buffer.from("3"), qos: 0, properties: { topicAlias: 3 } });
    const got = await publishesUntil(s, (m) => m.payload.toString() === "3");
    expect(got.map((m) => m.topic)).toEqual(["aliasrb/a", "aliasrb/b", "aliasrb/b"]);
    end(s, c);
  });

  test("alias above the announced Topic Alias Maximum → DISCONNECT 0x94 ([MQTT-3.3.2-9])", async () => {
    const c = await RawClient.connect(b.port, 5);
    const ack = await c.handshake({ clientId: uid("aliasmax") });
    const max = ack.properties?.topicAliasMaximum as number;
    expect(max).toBe(b.broker.limits.topicAliasMaximum);
    c.send({ cmd: "publish", topic: "alias/max", payload: Buffer.from("x"), qos: 0, properties: { topicAlias: max + 1 } });
    const d = await c.next();
    expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x94]);
    expect(await c.waitClose()).toBe(true);
  });

  test("alias 0 → DISCONNECT 0x94 ([MQTT-3.3.2-8])", async () => {
    const c = await raw(5, "alias0");
    c.send({ cmd: "publish", topic: "alias/zero", payload: Buffer.from("x"), qos: 0, properties: { topicAlias: 0 } });
    const d = await c.next();
    expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x94]);
    expect(await c.waitClose()).toBe(true);
  });

  test("empty topic with an alias never bound on this connection → DISCONNECT 0x82", async () => {
    const c = await raw(5, "aliasunbound");
    c.send({ cmd: "publish", topic: "", payload: Buffer.from("x"), qos: 0, properties: { topicAlias: 2 } });
    const d = await c.next();
    expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x82]);
    expect(await c.waitClose()).toBe(true);
  });

  test("alias bindings do not survive a reconnect, even when the session resumes ([MQTT-3.3.2-7])", async () => {
    const id = uid("aliasresume");
    const c1 = await RawClient.connected(b.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    c1.send({ cmd: "publish", topic: "alias/resume", payload: Buffer.from("x"), qos: 1, messageId: 1, properties: { topicAlias: 1 } });
    await c1.nextOf("puback");
    c1.send({ cmd: "disconnect", reasonCode: 0 });
    await c1.waitClose();
    const c2 = await RawClient.connect(b.port, 5);
    const ack = await c2.handshake({ clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    expect(ack.sessionPresent).toBe(true);
    c2.send({ cmd: "publish", topic: "", payload: Buffer.from("y"), qos: 1, messageId: 2, properties: { topicAlias: 1 } });
    const d = await c2.next();
    expect([d.cmd, d.reasonCode]).toEqual(["disconnect", 0x82]);
    expect(await c2.waitClose()).toBe(true);
  });
});

describe("topic and payload bytes are delivered intact", () => {
  for (const v of VERSIONS) {
    test(`v${v}: topics containing EF BB BF (U+FEFF) keep those bytes (§1.5.4 [MQTT-1.5.4-3])`, async () => {
      const topics = ["bom/\uFEFFx", "\uFEFFbom", "bom/a\uFEFF"];
      const s = await raw(v, "bomsub");
      s.send({
        cmd: "subscribe",
        messageId: 1,
        subscriptions: [
          { topic: "bom/#", qos: 1 },
          { topic: "\uFEFFbom", qos: 1 },
        ],
      });
      expect((await s.next()).granted).toEqual([1, 1]);
      const p = await raw(v, "bompub");
      const before = s.received.length;
      topics.forEach((topic, i) => p.send({ cmd: "publish", topic, payload: Buffer.from(`p${i}`), qos: 1, messageId: i + 1 }));
      const got: Packet[] = [];
      for (let i = 0; i < topics.length; i++) got.push(await s.nextOf("publish"));
      expect(got.map((m) => m.topic)).toEqual(topics);
      const bytes = Buffer.concat(s.received.slice(before));
      for (const t of topics) {
        const enc = Buffer.from(t, "utf8");
        expect(enc.includes(Buffer.from([0xef, 0xbb, 0xbf]))).toBe(true);
        // length prefix + the exact UTF-8 bytes
        expect(bytes.includes(Buffer.concat([Buffer.from([enc.length >> 8, enc.length & 0xff]), enc]))).toBe(true);
      }
      end(s, p);
    });

    test(`v${v}: payloads of 0 bytes and of 100 KB arrive byte for byte`, async () => {
      const s = await raw(v, "paysub");
      await subscribe(s, "pay/t", 1);
      const p = await raw(v, "paypub");
      const big = Buffer.alloc(100 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
      p.send({ cmd: "publish", topic: "pay/t", payload: Buffer.alloc(0), qos: 1, messageId: 1 });
      p.send({ cmd: "publish", topic: "pay/t", payload: big, qos: 1, messageId: 2 });
      p.send({ cmd: "publish", topic: "pay/t", payload: Buffer.alloc(0), qos: 0 });
      const m0 = await s.nextOf("publish");
      expect(m0.payload.length).toBe(0);
      expect(m0.qos).toBe(1);
      const m1 = await s.nextOf("publish", 5000);
      expect(m1.payload.length).toBe(big.length);
      expect(Buffer.compare(Buffer.from(m1.payload), big)).toBe(0);
      const m2 = await s.nextOf("publish");
      expect([m2.payload.length, m2.qos]).toEqual([0, 0]);
      end(s, p);
    });
  }

  test("MQTT.js: 100 KB binary payload through v4 → v5", async () => {
    const s = await connectClient(b.port, { protocolVersion: 5 });
    await s.client.subscribeAsync("payjs/t", { qos: 2 });
    const p = await connectClient(b.port, { protocolVersion: 4 });
    const big = Buffer.from(Array.from({ length: 100 * 1024 }, (_, i) => (i * 31) & 0xff));
    await p.client.publishAsync("payjs/t", big, { qos: 2 });
    await s.waitMessages(1);
    expect(Buffer.compare(s.messages[0]!.payload, big)).toBe(0);
    await Promise.all([s.end(), p.end()]);
  });
});
