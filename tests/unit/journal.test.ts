/**
 * `Journal` (lib/journal.ts) over a real `MemoryStore`, checked by reading
 * the store's `MemoryData` tables: only stored (persistent) sessions reach
 * the store, a message row is written once however many deliveries and
 * retained entries reference it, and it is deleted with the last reference
 * (DESIGN.md 3).
 */
import { describe, expect, test } from "bun:test";
import { Journal } from "../../lib/journal.ts";
import { Delivery, Message, type QoS } from "../../lib/message.ts";
import { Session } from "../../lib/session.ts";
import { MemoryData, MemoryStore } from "../../lib/store.ts";
import { Subscription } from "../../lib/topic-tree.ts";

/**
 * The journal writes at commit points (lib/journal.ts): reading the tables
 * here is one, so `data` commits before every read. The cancellation tests
 * below use the raw tables (`raw`) to see what was not written.
 */
function setup(): { data: MemoryData; raw: MemoryData; store: MemoryStore; j: Journal } {
  const raw = new MemoryData();
  const store = new MemoryStore(raw);
  const j = new Journal(store);
  const data = new Proxy(raw, {
    get(target, prop, receiver) {
      j.commit();
      return Reflect.get(target, prop, receiver);
    },
  });
  return { data, raw, store, j };
}

function message(topic = "a/b", payload = "hello", opts: { qos?: QoS; retain?: boolean } = {}): Message {
  return new Message(topic, Buffer.from(payload), opts.qos ?? 1, opts.retain ?? false, null, 0, "pub");
}

/** A persistent session, saved (so it is `stored`). */
function storedSession(j: Journal, id: string): Session {
  const s = new Session(id);
  s.expiryInterval = 60;
  j.saveSession(s);
  expect(s.stored).toBe(true);
  return s;
}

/** Queue a delivery of `msg` on `s` (seq assigned the way the session does). */
function enqueue(s: Session, msg: Message, qos: QoS = 1, subIds: number[] | null = null): Delivery {
  const d = new Delivery(msg, qos, false, subIds);
  d.seq = s.seq++;
  s.queue.push(d);
  return d;
}

function sub(s: Session, filter: string, qos: QoS = 1, subId = 0): Subscription<Session> {
  const x = new Subscription<Session>(s, filter, qos, false, false, 0, subId, null, filter);
  s.subs.set(filter, x);
  return x;
}

const k = (a: string, b: string | number) => `${a}\u0000${b}`;

describe("Journal: messages are stored once and reference-counted", () => {
  test("saveDelivery for 3 stored sessions: one messages row, three delivery rows", () => {
    const { data, j } = setup();
    const msg = message("a/b", "payload", { qos: 2 });
    const sessions = ["c1", "c2", "c3"].map((id) => storedSession(j, id));
    for (const s of sessions) j.saveDelivery(s, enqueue(s, msg, 2));
    expect(data.messages.size).toBe(1);
    expect(data.deliveries.size).toBe(3);
    expect(msg.storeId).not.toBe(0);
    expect(msg.storeRefs).toBe(3);
    const row = data.messages.get(msg.storeId)!;
    expect(row).toMatchObject({ id: msg.storeId, topic: "a/b", qos: 2, retain: false, props: null, expiresAt: 0, origin: "pub" });
    expect(row.payload.toString()).toBe("payload");
    for (const s of sessions) {
      expect(data.deliveries.get(k(s.id, 0))).toMatchObject({ clientId: s.id, seq: 0, messageId: msg.storeId, packetId: 0, qos: 2, released: false });
    }
  });

  test("saving a delivery again updates its row without taking another reference", () => {
    const { data, j } = setup();
    const s = storedSession(j, "c1");
    const msg = message();
    const d = enqueue(s, msg, 2, [3, 9]);
    j.saveDelivery(s, d);
    expect(d.stored).toBe(true);
    d.packetId = 7;
    j.saveDelivery(s, d);
    d.released = true;
    j.saveDelivery(s, d);
    expect(msg.storeRefs).toBe(1);
    expect(data.messages.size).toBe(1);
    expect(data.deliveries.size).toBe(1);
    const row = data.deliveries.get(k("c1", 0))!;
    expect(row).toMatchObject({ packetId: 7, released: true, subIds: [3, 9] });
    expect(row.subIds).not.toBe(d.subIds); // copied
  });

  test("the message row goes with the last dropDelivery", () => {
    const { data, j } = setup();
    const msg = message();
    const ss = ["c1", "c2", "c3"].map((id) => storedSession(j, id));
    const ds = ss.map((s) => {
      const d = enqueue(s, msg);
      j.saveDelivery(s, d);
      return d;
    });
    j.commit(); // ids are assigned when the insert is applied
    const id = msg.storeId;
    j.dropDelivery(ss[0]!, ds[0]!);
    expect(data.messages.has(id)).toBe(true);
    expect(data.deliveries.size).toBe(2);
    j.dropDelivery(ss[1]!, ds[1]!);
    expect(data.messages.has(id)).toBe(true);
    expect(msg.storeRefs).toBe(1);
    j.dropDelivery(ss[2]!, ds[2]!);
    expect(data.messages.size).toBe(0);
    expect(data.deliveries.size).toBe(0);
    expect(msg.storeId).toBe(0);
    expect(msg.storeRefs).toBe(0);
    for (const d of ds) expect(d.stored).toBe(false);
    // Dropping again is a no-op (no negative counts, nothing else deleted).
    j.dropDelivery(ss[0]!, ds[0]!);
    expect(msg.storeRefs).toBe(0);
  });

  test("a message referenced again after its row went gets a new row", () => {
    const { data, j } = setup();
    const s = storedSession(j, "c1");
    const msg = message();
    const d1 = enqueue(s, msg);
    j.saveDelivery(s, d1);
    j.commit(); // ids are assigned when the insert is applied
    const first = msg.storeId;
    j.dropDelivery(s, d1);
    const d2 = enqueue(s, msg);
    j.saveDelivery(s, d2);
    j.commit();
    expect(msg.storeId).not.toBe(0);
    expect(msg.storeId).not.toBe(first);
    expect([...data.messages.keys()]).toEqual([msg.storeId]);
    expect(data.deliveries.get(k("c1", 1))!.messageId).toBe(msg.storeId);
  });

  test("retained + deliveries share one row; it stays while retained, goes on deleteRetained", () => {
    const { data, j } = setup();
    const msg = message("r/t", "keep", { retain: true });
    j.setRetained(msg, null);
    expect(data.retained.get("r/t")).toBe(msg.storeId);
    const ss = ["c1", "c2"].map((id) => storedSession(j, id));
    const ds = ss.map((s) => {
      const d = enqueue(s, msg);
      j.saveDelivery(s, d);
      return d;
    });
    expect(data.messages.size).toBe(1);
    expect(msg.storeRefs).toBe(3);
    j.dropDelivery(ss[0]!, ds[0]!);
    j.dropDelivery(ss[1]!, ds[1]!);
    expect(data.messages.has(msg.storeId)).toBe(true); // still retained
    expect(msg.storeRefs).toBe(1);
    j.commit(); // ids are assigned when the insert is applied
    const id = msg.storeId;
    j.deleteRetained("r/t", msg);
    expect(data.retained.size).toBe(0);
    expect(data.messages.has(id)).toBe(false);
    expect(msg.storeId).toBe(0);
  });

  test("deleteRetained first: the row stays for the delivery, then goes with it", () => {
    const { data, j } = setup();
    const msg = message("r/t", "x", { retain: true });
    j.setRetained(msg, null);
    const s = storedSession(j, "c1");
    const d = enqueue(s, msg);
    j.saveDelivery(s, d);
    j.commit(); // ids are assigned when the insert is applied
    const id = msg.storeId;
    j.deleteRetained("r/t", msg);
    expect(data.retained.size).toBe(0);
    expect(data.messages.has(id)).toBe(true);
    j.dropDelivery(s, d);
    expect(data.messages.size).toBe(0);
  });

  test("retained replaced by another message: the old row goes unless a delivery holds it", () => {
    const { data, j } = setup();
    const m1 = message("r/t", "one", { retain: true });
    const m2 = message("r/t", "two", { retain: true });
    const m3 = message("r/t", "three", { retain: true });
    j.setRetained(m1, null);
    j.commit(); // ids are assigned when the insert is applied
    const id1 = m1.storeId;
    j.setRetained(m2, m1);
    expect(data.messages.has(id1)).toBe(false);
    expect(m1.storeId).toBe(0);
    expect(data.retained.get("r/t")).toBe(m2.storeId);
    expect([...data.messages.keys()]).toEqual([m2.storeId]);

    // m2 is also queued for a stored session: replacing it keeps its row until the delivery goes.
    const s = storedSession(j, "c1");
    const d = enqueue(s, m2);
    j.saveDelivery(s, d);
    j.commit(); // ids are assigned when the insert is applied
    const id2 = m2.storeId;
    j.setRetained(m3, m2);
    expect(data.retained.get("r/t")).toBe(m3.storeId);
    expect(data.messages.has(id2)).toBe(true);
    expect(m2.storeRefs).toBe(1);
    j.dropDelivery(s, d);
    expect(data.messages.has(id2)).toBe(false);
    expect([...data.messages.keys()]).toEqual([m3.storeId]);
  });

  test("setRetained of the message that is already retained keeps one reference", () => {
    const { data, j } = setup();
    const m = message("r/t", "same", { retain: true });
    j.setRetained(m, null);
    j.setRetained(m, m);
    expect(m.storeRefs).toBe(1);
    expect(data.messages.size).toBe(1);
    expect(data.retained.get("r/t")).toBe(m.storeId);
  });
});

describe("Journal: only stored sessions reach the store", () => {
  test("a clean session (expiry 0) writes nothing, whatever is called", () => {
    const { data, j } = setup();
    const s = new Session("clean");
    j.saveSession(s);
    expect(s.stored).toBe(false);
    const x = sub(s, "a/#");
    j.saveSubscription(s, x);
    const d = enqueue(s, message());
    j.saveDelivery(s, d);
    d.packetId = 1;
    j.saveDelivery(s, d);
    j.addInbound(s, 5);
    j.deleteInbound(s, 5);
    j.deleteSubscription(s, "a/#");
    j.dropDelivery(s, d);
    j.deleteSession(s);
    expect(d.stored).toBe(false);
    expect(d.msg.storeId).toBe(0);
    expect(data.sessions.size + data.subscriptions.size + data.deliveries.size + data.inbound.size + data.messages.size).toBe(0);
  });

  test("a persistent session not yet saved (stored = false) writes nothing", () => {
    const { data, j } = setup();
    const s = new Session("p");
    s.expiryInterval = 60;
    j.saveSubscription(s, sub(s, "x"));
    j.saveDelivery(s, enqueue(s, message()));
    j.addInbound(s, 3);
    expect(data.sessions.size + data.subscriptions.size + data.deliveries.size + data.inbound.size + data.messages.size).toBe(0);
  });

  test("an ended persistent session is not written", () => {
    const { data, j } = setup();
    const s = new Session("gone");
    s.expiryInterval = 60;
    s.ended = true;
    j.saveSession(s);
    expect(s.stored).toBe(false);
    expect(data.sessions.size).toBe(0);
  });

  test("a message routed to a clean and a stored session: one row, one reference", () => {
    const { data, j } = setup();
    const msg = message();
    const clean = new Session("clean");
    const kept = storedSession(j, "kept");
    j.saveDelivery(clean, enqueue(clean, msg));
    j.saveDelivery(kept, enqueue(kept, msg));
    expect(msg.storeRefs).toBe(1);
    expect(data.messages.size).toBe(1);
    expect([...data.deliveries.keys()]).toEqual([k("kept", 0)]);
  });

  test("subscriptions and inbound ids of a stored session are written and deleted", () => {
    const { data, j } = setup();
    const s = storedSession(j, "c1");
    j.saveSubscription(s, sub(s, "$share/g/a/+", 2, 4));
    expect(data.subscriptions.get(k("c1", "$share/g/a/+"))).toEqual({ clientId: "c1", filter: "$share/g/a/+", qos: 2, noLocal: false, rap: false, rh: 0, subId: 4 });
    j.addInbound(s, 42);
    expect(data.inbound.has(k("c1", 42))).toBe(true);
    j.deleteInbound(s, 42);
    j.deleteSubscription(s, "$share/g/a/+");
    expect(data.subscriptions.size + data.inbound.size).toBe(0);
  });
});

describe("Journal: sessions becoming stored and being deleted", () => {
  test("saveSession of a session becoming stored writes its subscriptions, in-flight and queued deliveries and inbound ids", () => {
    const { data, j } = setup();
    const s = new Session("c1");
    s.version = 5;
    sub(s, "a/#", 1);
    sub(s, "b/+", 2, 7);
    const shared = message("a/x", "shared");
    const only = message("b/y", "only");
    // In flight: seq 0 (QoS 2, PUBREL sent) and seq 1; queued: seq 2, 3.
    const f0 = enqueue(s, shared, 2);
    const f1 = enqueue(s, only, 1, [7]);
    s.queue.clear();
    f0.packetId = 10;
    f0.released = true;
    f1.packetId = 11;
    s.inflight.add(f1);
    s.inflight.add(f0);
    const q2 = enqueue(s, shared, 1);
    const q3 = enqueue(s, only, 2);
    s.inboundQos2.add(5);
    s.inboundQos2.add(6);
    // Clean so far: nothing written.
    j.saveSession(s);
    expect(s.stored).toBe(false);
    expect(data.sessions.size).toBe(0);

    s.expiryInterval = 60;
    s.will = { topic: "w", payload: Buffer.from("bye"), qos: 1, retain: false, props: null, delay: 0, expiry: -1 };
    j.saveSession(s);
    expect(s.stored).toBe(true);
    expect(data.sessions.get("c1")).toMatchObject({ clientId: "c1", version: 5, expiryInterval: 60, expiresAt: 0, connected: false, willAt: 0 });
    expect(data.sessions.get("c1")!.will!.topic).toBe("w");
    expect([...data.subscriptions.keys()].sort()).toEqual([k("c1", "a/#"), k("c1", "b/+")]);
    expect(data.subscriptions.get(k("c1", "b/+"))).toMatchObject({ qos: 2, subId: 7 });
    expect(data.messages.size).toBe(2);
    expect(shared.storeRefs).toBe(2);
    expect(only.storeRefs).toBe(2);
    for (const d of [f0, f1, q2, q3]) expect(d.stored).toBe(true);
    expect(data.deliveries.get(k("c1", 0))).toMatchObject({ messageId: shared.storeId, packetId: 10, released: true, qos: 2 });
    expect(data.deliveries.get(k("c1", 1))).toMatchObject({ messageId: only.storeId, packetId: 11, released: false, subIds: [7] });
    expect(data.deliveries.get(k("c1", 2))).toMatchObject({ messageId: shared.storeId, packetId: 0 });
    expect(data.deliveries.get(k("c1", 3))).toMatchObject({ messageId: only.storeId, packetId: 0, qos: 2 });
    expect(data.deliveries.size).toBe(4);
    expect([...data.inbound].sort()).toEqual([k("c1", 5), k("c1", 6)]);

    // Saving again (e.g. on disconnect) only rewrites the session row.
    s.expiresAt = 12345;
    j.saveSession(s);
    expect(data.sessions.get("c1")!.expiresAt).toBe(12345);
    expect(shared.storeRefs).toBe(2);
    expect(only.storeRefs).toBe(2);
    expect(data.messages.size).toBe(2);
    expect(data.deliveries.size).toBe(4);
  });

  test("deleteSession releases references: a row goes when nothing else holds it, stays when retained or queued elsewhere", () => {
    const { data, j } = setup();
    const s1 = storedSession(j, "c1");
    const s2 = storedSession(j, "c2");
    const both = message("t/both", "both");
    const mine = message("t/mine", "mine");
    const kept = message("t/ret", "retained", { retain: true });
    j.setRetained(kept, null);
    // c1: `both` in flight, `mine` and `kept` queued; c2: `both` queued.
    const f = enqueue(s1, both);
    s1.queue.clear();
    f.packetId = 1;
    s1.inflight.add(f);
    j.saveDelivery(s1, f);
    const dm = enqueue(s1, mine);
    const dk = enqueue(s1, kept);
    j.saveDelivery(s1, dm);
    j.saveDelivery(s1, dk);
    j.saveDelivery(s2, enqueue(s2, both));
    j.saveSubscription(s1, sub(s1, "t/#"));
    j.addInbound(s1, 9);
    j.commit(); // ids are assigned when the insert is applied
    const ids = { both: both.storeId, mine: mine.storeId, kept: kept.storeId };
    expect(data.messages.size).toBe(3);

    j.deleteSession(s1);
    expect(s1.stored).toBe(false);
    for (const d of [f, dm, dk]) expect(d.stored).toBe(false);
    expect(data.sessions.has("c1")).toBe(false);
    expect([...data.deliveries.keys()]).toEqual([k("c2", 0)]);
    expect(data.subscriptions.size).toBe(0);
    expect(data.inbound.size).toBe(0);
    expect(data.messages.has(ids.mine)).toBe(false); // last reference
    expect(mine.storeId).toBe(0);
    expect(data.messages.has(ids.both)).toBe(true); // c2 still queues it
    expect(both.storeRefs).toBe(1);
    expect(data.messages.has(ids.kept)).toBe(true); // still retained
    expect(kept.storeRefs).toBe(1);

    // Deleting again is a no-op.
    j.deleteSession(s1);
    expect(both.storeRefs).toBe(1);

    j.deleteSession(s2);
    expect(data.messages.has(ids.both)).toBe(false);
    expect([...data.messages.keys()]).toEqual([ids.kept]);
    expect(data.sessions.size + data.deliveries.size).toBe(0);
  });

  test("saveSession of a session no longer persistent deletes it and releases its references", () => {
    const { data, j } = setup();
    const s = storedSession(j, "c1");
    const msg = message();
    j.saveDelivery(s, enqueue(s, msg));
    expect(data.messages.size).toBe(1);
    s.expiryInterval = 0;
    j.saveSession(s);
    expect(s.stored).toBe(false);
    expect(data.sessions.size + data.deliveries.size + data.messages.size).toBe(0);
    expect(msg.storeRefs).toBe(0);
  });

  test("a session stored again after deletion re-references its deliveries", () => {
    const { data, j } = setup();
    const s = storedSession(j, "c1");
    const msg = message();
    const d = enqueue(s, msg);
    j.saveDelivery(s, d);
    j.deleteSession(s);
    expect(data.messages.size).toBe(0);
    j.saveSession(s);
    expect(s.stored).toBe(true);
    expect(d.stored).toBe(true);
    expect(msg.storeRefs).toBe(1);
    expect(data.messages.size).toBe(1);
    expect(data.deliveries.get(k("c1", 0))!.messageId).toBe(msg.storeId);
  });
});

describe("Journal: countRestoredRef", () => {
  test("restored references keep a row until the last of them is released", () => {
    // Write: `m` retained and queued for c1.
    const data = new MemoryData();
    {
      const j = new Journal(new MemoryStore(data));
      const m = message("r/t", "restored", { retain: true });
      j.setRetained(m, null);
      const s = storedSession(j, "c1");
      j.saveDelivery(s, enqueue(s, m));
      expect(m.storeRefs).toBe(2);
      j.commit();
    }
    // "Restart": a new Journal over the same tables, rebuilt the way lib/restore.ts does.
    const j = new Journal(new MemoryStore(data));
    const snap = j.load();
    expect(snap.messages.length).toBe(1);
    const row = snap.messages[0]!;
    const m = new Message(row.topic, row.payload, row.qos, row.retain, row.props, row.expiresAt, row.origin);
    m.storeId = row.id;
    expect(m.storeRefs).toBe(0);
    j.countRestoredRef(m); // the retained row
    const s = new Session("c1");
    s.expiryInterval = 60;
    s.stored = true;
    const x = snap.deliveries[0]!;
    const d = new Delivery(m, x.qos, x.retain, x.subIds);
    d.seq = x.seq;
    d.stored = true;
    d.row = true; // its row exists
    j.countRestoredRef(m); // the delivery row
    s.queue.push(d);
    expect(m.storeRefs).toBe(2);
    expect(data.messages.size).toBe(1); // counting writes nothing

    j.dropDelivery(s, d);
    j.commit();
    expect(data.messages.has(row.id)).toBe(true);
    expect(data.deliveries.size).toBe(0);
    // A new delivery of the restored message shares the existing row.
    const s2 = storedSession(j, "c2");
    const d2 = enqueue(s2, m);
    j.saveDelivery(s2, d2);
    j.commit();
    expect(m.storeId).toBe(row.id);
    expect(data.messages.size).toBe(1);
    j.deleteRetained("r/t", m);
    j.commit();
    expect(data.messages.has(row.id)).toBe(true);
    j.dropDelivery(s2, d2);
    j.commit();
    expect(data.messages.size).toBe(0);
    expect(m.storeRefs).toBe(0);
    expect(m.storeId).toBe(0);
  });
});

describe("Journal: changes cancelled before they are applied cost nothing", () => {
  /** Counts the store's writes. */
  function counting(store: MemoryStore): { n: number } {
    const c = { n: 0 };
    for (const m of ["addMessage", "deleteMessage", "saveDelivery", "deleteDelivery", "addInbound", "deleteInbound", "setRetained", "deleteRetained"] as const) {
      const f = store[m].bind(store) as (...a: unknown[]) => unknown;
      (store as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
        c.n++;
        return f(...a);
      };
    }
    return c;
  }

  test("a delivery saved and dropped before the commit writes no delivery row and no message row", () => {
    const { raw, store, j } = setup();
    const s = storedSession(j, "c1");
    j.commit();
    const writes = counting(store);
    const msg = message();
    const d = enqueue(s, msg);
    j.saveDelivery(s, d);
    d.packetId = 5;
    j.saveDelivery(s, d); // coalesced into the pending insert
    j.dropDelivery(s, d); // acknowledged before the commit
    j.commit();
    expect(writes.n).toBe(0);
    expect(raw.messages.size).toBe(0);
    expect(raw.deliveries.size).toBe(0);
    expect(msg.storeRefs).toBe(0);
  });

  test("commitKeeping(1) leaves the last epoch's ops cancellable: saved in one turn, acknowledged in the next, never written", () => {
    const { raw, store, j } = setup();
    const s = storedSession(j, "c1");
    j.commit();
    const writes = counting(store);
    const d = enqueue(s, message());
    j.saveDelivery(s, d); // turn 1
    const e1 = j.openEpoch;
    j.commitKeeping(1); // end of turn 1: nothing of turn 1 applied yet
    expect(raw.deliveries.size).toBe(0);
    expect(j.committedEpoch).toBe(e1 - 1);
    j.dropDelivery(s, d); // turn 2: the ack
    j.commitKeeping(1); // end of turn 2: turn 1 is committed, with nothing left to write
    expect(j.committedEpoch).toBe(e1);
    expect(writes.n).toBe(0);
    expect(raw.messages.size + raw.deliveries.size).toBe(0);
  });

  test("commitKeeping(Infinity, maxOps): many turns stay cancellable; only the oldest epochs beyond maxOps ops are applied", () => {
    const { raw, store, j } = setup();
    const s = storedSession(j, "c1");
    j.commit();
    const writes = counting(store);
    // 10 turns, one delivery each (2 ops: its message and its row); the first 5 acknowledged 6 turns later.
    const ds: Delivery[] = [];
    for (let turn = 0; turn < 10; turn++) {
      const d = enqueue(s, message("a/b", `m${turn}`));
      j.saveDelivery(s, d);
      ds.push(d);
      if (turn >= 6) j.dropDelivery(s, ds[turn - 6]!);
      j.commitKeeping(Infinity, 100);
    }
    expect(writes.n).toBe(0); // 20 ops, under the budget: nothing applied
    // Turns 0-3 were acknowledged: at the head of the window, their cancelled ops are already gone.
    expect(j.unappliedOps).toBe(12);
    expect(j.cancelled).toBe(8);
    // A budget of 6 ops: the oldest epochs go until at most 6 remain (the last 3 turns).
    j.commitKeeping(Infinity, 6);
    expect(j.unappliedOps).toBe(6);
    // Turns 4-6 are written, 7-9 are kept.
    expect([...raw.deliveries.values()].map((x) => x.seq)).toEqual([ds[4]!.seq, ds[5]!.seq, ds[6]!.seq]);
    expect(writes.n).toBe(6);
    // Kept: turns 7-9 and the (empty) epoch just closed; everything before is committed.
    expect(j.committedEpoch).toBe(j.openEpoch - 5);
    j.commit();
    expect(raw.deliveries.size).toBe(6);
    expect(j.pending).toBe(false);
  });

  test("a delivery still unacknowledged at the next commit point is written with its latest state, then deleted by a row delete", () => {
    const { raw, j } = setup();
    const s = storedSession(j, "c1");
    const msg = message();
    const d = enqueue(s, msg);
    j.saveDelivery(s, d);
    j.commitKeeping(1);
    d.packetId = 9; // sent meanwhile
    j.saveDelivery(s, d);
    j.commitKeeping(1);
    expect(raw.deliveries.get(k("c1", d.seq))?.packetId).toBe(9);
    expect(raw.messages.size).toBe(1);
    j.dropDelivery(s, d);
    j.commit();
    expect(raw.deliveries.size).toBe(0);
    expect(raw.messages.size).toBe(0);
  });

  test("an inbound QoS 2 id released by PUBREL before the commit is never written [MQTT-4.3.3-10]", () => {
    const { raw, store, j } = setup();
    const s = storedSession(j, "c1");
    j.commit();
    const writes = counting(store);
    j.addInbound(s, 7);
    j.deleteInbound(s, 7);
    j.commit();
    expect(writes.n).toBe(0);
    expect(raw.inbound.size).toBe(0);
    j.addInbound(s, 8);
    j.commit();
    expect(raw.inbound.has(k("c1", 8))).toBe(true);
    j.deleteInbound(s, 8);
    j.commit();
    expect(raw.inbound.size).toBe(0);
  });

  test("a retained message replaced before its insert was applied: only the newer one is written", () => {
    const { raw, j } = setup();
    const m1 = message("r/t", "old", { retain: true });
    const m2 = message("r/t", "new", { retain: true });
    j.setRetained(m1, null);
    j.setRetained(m2, m1);
    j.commit();
    expect([...raw.messages.values()].map((m) => m.payload.toString())).toEqual(["new"]);
    expect(raw.retained.get("r/t")).toBe(m2.storeId);
  });
});
