/**
 * Retained messages (3.1.1 §3.3.1.3, 5 §3.3.1.3): storing, replacing,
 * deleting, subscribe-time delivery with RETAIN = 1, live forwarding with
 * RETAIN = 0, wildcard lookup, QoS downgrade, `$` topics, expiry, shared
 * subscriptions.
 *
 * Subscribe-time retained messages follow the SUBACK in the same batch, so a
 * live marker published after the SUBACK arrived comes after all of them:
 * collecting up to the marker shows exactly which retained messages were sent.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
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
const raw = (version: V, tag: string, opts: Record<string, unknown> = {}) => pool.raw(b, version, tag, opts);

let msgIds = 0;
/** Publish and wait for the end of the QoS flow, so the broker has handled it. */
async function pub(p: RawClient, topic: string, payload: string | Buffer, qos: Q, retain: boolean, properties?: Record<string, unknown>): Promise<void> {
  const messageId = ++msgIds;
  p.send({ cmd: "publish", topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos, retain, ...(qos > 0 ? { messageId } : {}), ...(properties ? { properties } : {}) });
  if (qos === 1) expect((await p.nextOf("puback")).messageId).toBe(messageId);
  if (qos === 2) {
    expect((await p.nextOf("pubrec")).messageId).toBe(messageId);
    p.send({ cmd: "pubrel", messageId });
    expect((await p.nextOf("pubcomp")).messageId).toBe(messageId);
  }
}

/** SUBSCRIBE one filter; returns the SUBACK (retained PUBLISHes that follow stay queued on the client). */
async function subscribe(c: RawClient, topic: string, qos: Q, opts: Record<string, unknown> = {}): Promise<Packet> {
  c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos, ...opts }] });
  const ack = await c.next();
  expect(ack.cmd).toBe("suback");
  return ack;
}

/** Collect PUBLISH packets until the one with payload "marker" (included). */
const untilMarker = (c: RawClient) => publishesUntil(c, (p) => p.payload.toString() === "marker");

/** Subscribe, then publish a live marker on `markerTopic` (which the filter must match) and return what arrived before it. */
async function subscribeAndCollect(c: RawClient, filter: string, qos: Q, markerTopic: string, p: RawClient, opts: Record<string, unknown> = {}): Promise<Packet[]> {
  const ack = await subscribe(c, filter, qos, opts);
  expect(ack.granted).toEqual([qos]);
  await pub(p, markerTopic, "marker", 0, false);
  const got = await untilMarker(c);
  return got.slice(0, -1);
}

function end(...cs: RawClient[]): void {
  for (const c of cs) c.destroy();
}

// ---------------------------------------------------------------------------

describe("stored and delivered on subscribe with RETAIN=1 ([MQTT-3.3.1-5], 3.1.1 [MQTT-3.3.1-6], 5 [MQTT-3.3.1-9])", () => {
  for (const pv of VERSIONS) {
    for (const sv of VERSIONS) {
      test(`v${pv} publisher, v${sv} subscriber: payload, QoS and topic as published, RETAIN=1, DUP=0`, async () => {
        const topic = `rs/${pv}${sv}`;
        const p = await raw(pv, "rspub");
        await pub(p, topic, `stored ${pv}`, 1, true);
        expect(b.broker.retainedMessage(topic)?.payload.toString()).toBe(`stored ${pv}`);
        const s = await raw(sv, "rssub");
        // v5: RETAIN is 1 for subscribe-time delivery even with Retain As Published 0 (§3.3.1.3).
        expect((await subscribe(s, topic, 2, sv === 5 ? { rap: false } : {})).granted).toEqual([2]);
        const m = await s.next();
        expect([m.cmd, m.topic, m.payload.toString(), m.qos, m.retain, m.dup]).toEqual(["publish", topic, `stored ${pv}`, 1, true, false]);
        expect(m.messageId).toBeGreaterThan(0);
        s.send({ cmd: "puback", messageId: m.messageId });
        await pub(p, topic, "", 0, true);
        end(p, s);
      });
    }
  }

  test("v5: the retained message keeps its properties (Content Type, Correlation Data, User Properties, PFI)", async () => {
    const p = await raw(5, "rsprop");
    await pub(p, "rsprop/t", "{}", 1, true, {
      contentType: "application/json",
      correlationData: Buffer.from([1, 2, 3]),
      userProperties: { origin: "sensor", unit: "°C" },
      payloadFormatIndicator: true,
    });
    const s = await raw(5, "rspropsub");
    await subscribe(s, "rsprop/t", 1);
    const m = await s.nextOf("publish");
    expect(m.retain).toBe(true);
    expect(m.properties?.contentType).toBe("application/json");
    expect(Buffer.from(m.properties?.correlationData)).toEqual(Buffer.from([1, 2, 3]));
    expect({ ...m.properties?.userProperties }).toEqual({ origin: "sensor", unit: "°C" });
    expect(m.properties?.payloadFormatIndicator).toBe(true);
    await pub(p, "rsprop/t", "", 0, true);
    end(p, s);
  });

  test("MQTT.js: retained publish, later subscriber gets it with retain=true", async () => {
    const p = await connectClient(b.port, { protocolVersion: 5 });
    await p.client.publishAsync("rsjs/t", "js", { qos: 1, retain: true });
    const s = await connectClient(b.port, { protocolVersion: 4 });
    await s.client.subscribeAsync("rsjs/t", { qos: 1 });
    await s.waitMessages(1);
    expect(s.messages.map((m) => [m.topic, m.payload.toString(), m.retain, m.qos])).toEqual([["rsjs/t", "js", true, 1]]);
    await p.client.publishAsync("rsjs/t", "", { qos: 1, retain: true });
    await Promise.all([p.end(), s.end()]);
  });
});

describe("replace and delete", () => {
  test("a newer retained message replaces the old one, a QoS 0 one included (3.1.1 [MQTT-3.3.1-7])", async () => {
    const p = await raw(4, "rrep");
    await pub(p, "rrep/t", "one", 2, true);
    await pub(p, "rrep/t", "two", 1, true);
    await pub(p, "rrep/t", "three", 0, true);
    await pub(p, "rrep/t", "marker", 0, false);
    const s = await raw(4, "rrepsub");
    const got = await subscribeAndCollect(s, "rrep/t", 2, "rrep/t", p);
    expect(got.map((m) => [m.payload.toString(), m.qos, m.retain])).toEqual([["three", 0, true]]);
    expect(b.broker.retainedMessage("rrep/t")?.payload.toString()).toBe("three");
    await pub(p, "rrep/t", "", 0, true);
    end(p, s);
  });

  test("RETAIN=0 neither stores nor touches the retained message (3.1.1 [MQTT-3.3.1-12], 5 [MQTT-3.3.1-8])", async () => {
    const p = await raw(5, "rkeep");
    await pub(p, "rkeep/t", "kept", 1, true);
    await pub(p, "rkeep/t", "live only", 1, false);
    await pub(p, "rkeep/u", "never retained", 1, false);
    expect(b.broker.retainedMessage("rkeep/u")).toBeNull();
    const s = await raw(5, "rkeepsub");
    const got = await subscribeAndCollect(s, "rkeep/#", 1, "rkeep/m", p);
    expect(got.map((m) => [m.topic, m.payload.toString(), m.retain])).toEqual([["rkeep/t", "kept", true]]);
    await pub(p, "rkeep/t", "", 0, true);
    end(p, s);
  });

  for (const v of VERSIONS) {
    test(`v${v}: an empty retained payload deletes it, is not stored, and is still delivered live (3.1.1 [MQTT-3.3.1-10]/[MQTT-3.3.1-11], 5 [MQTT-3.3.1-6]/[MQTT-3.3.1-7])`, async () => {
      const topic = `rdel/${v}`;
      const p = await raw(v, "rdelpub");
      const existing = await raw(v, "rdelold");
      expect((await subscribe(existing, topic, 1)).granted).toEqual([1]);
      await pub(p, topic, "x", 1, true);
      const retainedBefore = b.broker.retainedCount;
      await pub(p, topic, "", 1, true);
      expect(b.broker.retainedMessage(topic)).toBeNull();
      expect(b.broker.retainedCount).toBe(retainedBefore - 1);
      const live = [await existing.nextOf("publish"), await existing.nextOf("publish")];
      expect(live.map((m) => [m.payload.length, m.retain, m.qos])).toEqual([
        [1, false, 1],
        [0, false, 1],
      ]);
      // A new subscriber gets nothing.
      const fresh = await raw(v, "rdelnew");
      expect(await subscribeAndCollect(fresh, topic, 1, topic, p)).toEqual([]);
      // Deleting a topic that has no retained message is harmless and stores nothing.
      await pub(p, `${topic}/none`, "", 0, true);
      expect(b.broker.retainedMessage(`${topic}/none`)).toBeNull();
      end(p, existing, fresh);
    });
  }
});

describe("live forwarding clears RETAIN (3.1.1 [MQTT-3.3.1-9], 5 [MQTT-3.3.1-12])", () => {
  test("the same retained publish: existing 3.1.1 and v5 (RAP 0) subscribers see RETAIN=0, a new subscriber RETAIN=1", async () => {
    const s4 = await raw(4, "rlive4");
    const s5 = await raw(5, "rlive5");
    await subscribe(s4, "rlive/t", 1);
    await subscribe(s5, "rlive/t", 1, { rap: false });
    const p = await raw(4, "rlivepub");
    await pub(p, "rlive/t", "now", 1, true);
    for (const s of [s4, s5]) {
      const m = await s.nextOf("publish");
      expect([m.payload.toString(), m.retain, m.qos]).toEqual(["now", false, 1]);
    }
    const late = await raw(4, "rlivelate");
    await subscribe(late, "rlive/t", 1);
    const m = await late.nextOf("publish");
    expect([m.payload.toString(), m.retain]).toEqual(["now", true]);
    await pub(p, "rlive/t", "", 0, true);
    end(s4, s5, p, late);
  });
});

describe("wildcard subscriptions get every matching retained message [MQTT-4.7.1-2] [MQTT-4.7.1-3]", () => {
  const topics = ["rw", "rw/", "rw/a", "rw/b/c", "rwx/a", "x/rw", "a/rwz", "b/rwz", "/rwz", "a/rwz/c"];
  const cases: [string, string[], string][] = [
    ["rw/#", ["rw", "rw/", "rw/a", "rw/b/c"], "rw/m"],
    ["rw/+", ["rw/", "rw/a"], "rw/m"],
    ["+/rwz", ["/rwz", "a/rwz", "b/rwz"], "m/rwz"],
    ["+/rwz/#", ["/rwz", "a/rwz", "a/rwz/c", "b/rwz"], "m/rwz"],
    ["rw/b/c", ["rw/b/c"], "rw/b/c"],
  ];
  let p: RawClient;
  beforeAll(async () => {
    // Not in the pool: it lives for the whole describe block.
    p = await RawClient.connected(b.port, 4, { clientId: uid("rwpub") });
    for (const t of topics) await pub(p, t, `v:${t}`, 1, true);
  });
  afterAll(async () => {
    for (const t of topics) await pub(p, t, "", 0, true);
    p.destroy();
  });

  for (const [filter, expected, marker] of cases) {
    test(`${filter} receives ${expected.join(", ")} with RETAIN=1`, async () => {
      const s = await raw(5, "rwsub");
      const got = await subscribeAndCollect(s, filter, 0, marker, p);
      // The order among retained messages is not specified: compare as sorted lists.
      expect(got.map((m) => m.topic).sort()).toEqual([...expected].sort());
      for (const m of got) expect([m.payload.toString(), m.retain]).toEqual([`v:${m.topic}`, true]);
      end(s);
    });
  }
});

describe("retained QoS = min(retained QoS, granted QoS) (3.1.1 [MQTT-3.8.4-6], 5 [MQTT-3.8.4-8])", () => {
  for (const granted of [0, 1, 2] as const) {
    test(`granted ${granted}: retained QoS 0/1/2 arrive at ${[0, 1, 2].map((q) => Math.min(q, granted)).join("/")}`, async () => {
      const p = await raw(4, "rqpub");
      for (const q of [0, 1, 2] as const) await pub(p, `rq${granted}/${q}`, `q${q}`, q, true);
      const s = await raw(4, "rqsub");
      const got = await subscribeAndCollect(s, `rq${granted}/#`, granted, `rq${granted}/m`, p);
      expect(got.map((m) => [m.topic, m.qos, m.retain]).sort()).toEqual(
        [0, 1, 2].map((q) => [`rq${granted}/${q}`, Math.min(q, granted), true]),
      );
      for (const q of [0, 1, 2] as const) await pub(p, `rq${granted}/${q}`, "", 0, true);
      end(p, s);
    });
  }
});

describe("$ topics and retained messages [MQTT-4.7.2-1]", () => {
  test("a retained $rt/x is not sent to # or +/x subscribers, but is to $rt/# and $rt/+", async () => {
    const p = await raw(4, "rdolpub");
    await pub(p, "$rt/x", "dollar", 1, true);
    await pub(p, "rdol/x", "plain", 1, true);
    expect(b.broker.retainedMessage("$rt/x")?.payload.toString()).toBe("dollar");

    const all = await raw(4, "rdolall");
    const gotAll = await subscribeAndCollect(all, "#", 0, "rdol/m", p);
    expect(gotAll.map((m) => m.topic)).toContain("rdol/x");
    expect(gotAll.filter((m) => m.topic.startsWith("$"))).toEqual([]);

    const plus = await raw(4, "rdolplus");
    const gotPlus = await subscribeAndCollect(plus, "+/x", 0, "rdol/x", p);
    expect(gotPlus.map((m) => m.topic)).toContain("rdol/x");
    expect(gotPlus.filter((m) => m.topic.startsWith("$"))).toEqual([]);

    const plusHash = await raw(5, "rdolph");
    const gotPh = await subscribeAndCollect(plusHash, "+/#", 0, "rdol/m", p);
    expect(gotPh.filter((m) => m.topic.startsWith("$"))).toEqual([]);

    for (const f of ["$rt/#", "$rt/+"]) {
      const d = await raw(4, "rdoldol");
      const got = await subscribeAndCollect(d, f, 0, "$rt/m", p);
      expect(got.map((m) => [m.topic, m.payload.toString(), m.retain])).toEqual([["$rt/x", "dollar", true]]);
      end(d);
    }
    await pub(p, "$rt/x", "", 0, true);
    await pub(p, "rdol/x", "", 0, true);
    end(p, all, plus, plusHash);
  });
});

describe("retained messages are not session state (3.1.1 [MQTT-3.1.2-7], 5 §4.1)", () => {
  for (const v of VERSIONS) {
    test(`v${v}: the retained message survives the end of the publisher's session`, async () => {
      const topic = `rsurv/${v}`;
      const p = await raw(v, "rsurvpub");
      await pub(p, topic, "outlives", 2, true);
      p.send({ cmd: "disconnect" });
      await p.waitClose();
      await waitFor(() => !b.broker.sessions.has(p.id), 2000, "publisher session ended");
      const s = await raw(v, "rsurvsub");
      const got = await subscribeAndCollect(s, topic, 2, topic, await raw(4, "rsurvmark"));
      expect(got.map((m) => [m.payload.toString(), m.qos, m.retain])).toEqual([["outlives", 2, true]]);
      const cleaner = await raw(4, "rsurvclean");
      await pub(cleaner, topic, "", 0, true);
      end(s, cleaner);
    });
  }

  test("3.1.1: a persistent publisher session discarded by a clean reconnect keeps its retained message", async () => {
    const id = uid("rsurvp");
    const p = await RawClient.connected(b.port, 4, { clientId: id, clean: false });
    await pub(p, "rsurvp/t", "kept", 1, true);
    p.destroy();
    await p.waitClose();
    const p2 = await RawClient.connected(b.port, 4, { clientId: id, clean: true });
    const s = await raw(4, "rsurvpsub");
    const got = await subscribeAndCollect(s, "rsurvp/t", 1, "rsurvp/t", p2);
    expect(got.map((m) => [m.payload.toString(), m.retain])).toEqual([["kept", true]]);
    await pub(p2, "rsurvp/t", "", 0, true);
    end(p2, s);
  });
});

describe("v5 retained messages and Message Expiry (§3.3.1.3, [MQTT-3.3.2-5], [MQTT-3.3.2-6])", () => {
  test("expiry 1 s: delivered at once, gone after 2 s; expiry 10 s: still delivered, with the remaining lifetime", async () => {
    const p = await raw(5, "rexppub");
    await pub(p, "rexp/short", "short", 1, true, { messageExpiryInterval: 1 });
    await pub(p, "rexp/long", "long", 1, true, { messageExpiryInterval: 10 });
    const s1 = await raw(5, "rexpsub");
    const now = await subscribeAndCollect(s1, "rexp/#", 1, "rexp/m", p);
    const byTopic = Object.fromEntries(now.map((m) => [m.topic, m]));
    expect(Object.keys(byTopic).sort()).toEqual(["rexp/long", "rexp/short"]);
    expect(byTopic["rexp/short"]!.properties?.messageExpiryInterval).toBe(1);
    expect(byTopic["rexp/long"]!.properties?.messageExpiryInterval).toBeLessThanOrEqual(10);
    expect(byTopic["rexp/long"]!.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(9);

    await Bun.sleep(2100);
    for (const v of VERSIONS) {
      const s = await raw(v, "rexplate");
      const later = await subscribeAndCollect(s, "rexp/#", 1, "rexp/m", p);
      expect(later.map((m) => m.topic)).toEqual(["rexp/long"]);
      expect(later[0]!.retain).toBe(true);
      if (v === 5) {
        // [MQTT-3.3.2-6]: the forwarded value is the received one minus the time spent in the server.
        const left = later[0]!.properties?.messageExpiryInterval as number;
        expect(left).toBeGreaterThanOrEqual(1);
        expect(left).toBeLessThanOrEqual(8);
      }
      end(s);
    }
    expect(b.broker.retainedMessage("rexp/short")).toBeNull();
    await pub(p, "rexp/long", "", 0, true);
    end(p, s1);
  });
});

describe("v5 shared subscriptions get no retained messages (§3.8.4, §4.8.2)", () => {
  for (const rh of [0, 1]) {
    test(`$share/g/rshare/t with Retain Handling ${rh}: no retained message; a plain subscriber gets it`, async () => {
      const p = await raw(5, "rsharepub");
      await pub(p, `rshare${rh}/t`, "retained", 1, true);
      const member = await raw(5, "rsharemem");
      const got = await subscribeAndCollect(member, `$share/g/rshare${rh}/t`, 1, `rshare${rh}/t`, p, { rh });
      expect(got).toEqual([]);
      const plain = await raw(5, "rshareplain");
      const gotPlain = await subscribeAndCollect(plain, `rshare${rh}/t`, 1, `rshare${rh}/t`, p, { rh });
      expect(gotPlain.map((m) => [m.payload.toString(), m.retain])).toEqual([["retained", true]]);
      await pub(p, `rshare${rh}/t`, "", 0, true);
      end(p, member, plain);
    });
  }
});
