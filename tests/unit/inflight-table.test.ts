/**
 * The per-session delivery structures of lib/session.ts: `InflightTable`
 * (outbound deliveries in flight by packet id, and the packet id allocator),
 * `DeliveryQueue` (FIFO of deliveries waiting) and `PacketIdSet` (inbound
 * QoS 2 ids awaiting PUBREL).
 *
 * Packet ids: non-zero, at most 65535, and a new PUBLISH must not reuse an id
 * that is still in flight (3.1.1 [MQTT-2.3.1-1] / [MQTT-2.3.1-4],
 * 5 [MQTT-2.2.1-3] / [MQTT-2.2.1-4]).
 */
import { describe, expect, test } from "bun:test";
import { Delivery, Message } from "../../lib/message.ts";
import { DeliveryQueue, InflightTable, PacketIdSet } from "../../lib/session.ts";

const EMPTY = new Message("t", Buffer.alloc(0), 1, false, null, 0, "");

/** A delivery with a payload of `size` bytes (shared empty message when 0, so big tables stay cheap). */
function delivery(packetId: number, seq: number, size = 0): Delivery {
  const msg = size === 0 ? EMPTY : new Message("t", Buffer.alloc(size, 0x61), 1, false, null, 0, "");
  const d = new Delivery(msg, 1, false, null);
  d.packetId = packetId;
  d.seq = seq;
  return d;
}

describe("InflightTable: packet id allocation", () => {
  test("ids start at 1 and run in sequence (never 0) [MQTT-2.3.1-1] / [MQTT-2.2.1-3]", () => {
    const t = new InflightTable();
    const ids: number[] = [];
    for (let i = 0; i < 100; i++) {
      const id = t.nextId();
      ids.push(id);
      t.add(delivery(id, i));
    }
    expect(ids).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(t.count).toBe(100);
  });

  test("ids that were never added are not reserved: the sequence still advances", () => {
    const t = new InflightTable();
    expect([t.nextId(), t.nextId(), t.nextId()]).toEqual([1, 2, 3]);
    expect(t.count).toBe(0);
  });

  test("continues the sequence after a remove instead of reusing the lowest free id", () => {
    const t = new InflightTable();
    for (let i = 1; i <= 5; i++) t.add(delivery(t.nextId(), i));
    t.remove(2);
    t.remove(1);
    expect(t.nextId()).toBe(6);
  });

  test("never returns an id still in flight, including restored ones [MQTT-2.3.1-4] / [MQTT-2.2.1-4]", () => {
    const t = new InflightTable();
    const restored = [1, 2, 5, 17, 33, 100, 65535];
    restored.forEach((id, i) => t.add(delivery(id, i)));
    const live = new Set(restored);
    for (let i = 0; i < 2000; i++) {
      const id = t.nextId();
      expect(id).toBeGreaterThanOrEqual(1);
      expect(id).toBeLessThanOrEqual(65535);
      if (live.has(id)) throw new Error(`nextId returned ${id}, which is in flight`);
      // Keep a sliding window of 20 of our own ids in flight too.
      t.add(delivery(id, 100 + i));
      live.add(id);
      if (i >= 20) {
        const old = [...live].find((x) => !restored.includes(x))!;
        expect(t.remove(old)).toBeDefined();
        live.delete(old);
      }
    }
    for (const id of restored) expect(t.get(id)?.packetId).toBe(id);
  });

  test("wraps from 65535 to 1, never 0 [MQTT-2.3.1-1] / [MQTT-2.2.1-3]", () => {
    const t = new InflightTable();
    let id = 0;
    for (let i = 1; i <= 65535; i++) {
      id = t.nextId();
      if (id !== i) throw new Error(`call ${i} returned ${id}`);
    }
    expect(id).toBe(65535);
    expect(t.nextId()).toBe(1);
    expect(t.nextId()).toBe(2);
  });

  test("after the wrap, ids still in flight are skipped [MQTT-2.3.1-4] / [MQTT-2.2.1-4]", () => {
    const t = new InflightTable();
    // In flight: 1, 2, 3 and 65534 (as if restored).
    for (const [i, pid] of [1, 2, 3, 65534].entries()) t.add(delivery(pid, i));
    let id = 0;
    let prev = 0;
    while (id < 65533) {
      id = t.nextId();
      expect(id).toBeGreaterThan(prev); // increasing until the wrap
      expect([0, 1, 2, 3, 65534]).not.toContain(id);
      prev = id;
    }
    expect(id).toBe(65533);
    expect(t.nextId()).toBe(65535); // 65534 is in flight
    expect(t.nextId()).toBe(4); // wrapped; 1..3 are in flight
    expect(t.count).toBe(4);
  });

  test("65535 in flight: every id 1..65535 used once, then nextId throws", () => {
    const t = new InflightTable();
    const seen = new Uint8Array(65536);
    for (let i = 0; i < 65535; i++) {
      const id = t.nextId();
      if (id === 0 || seen[id]) throw new Error(`bad id ${id} at ${i}`);
      seen[id] = 1;
      t.add(delivery(id, i));
    }
    expect(t.count).toBe(65535);
    expect(() => t.nextId()).toThrow(/65535/);
    // Freeing one makes exactly that id available again.
    const d = t.remove(40000)!;
    expect(d.packetId).toBe(40000);
    expect(t.nextId()).toBe(40000);
    t.add(d);
    expect(() => t.nextId()).toThrow();
    expect(t.get(1)?.packetId).toBe(1);
    expect(t.get(65535)?.packetId).toBe(65535);
  });
});

describe("InflightTable: entries", () => {
  test("add / get / remove by id", () => {
    const t = new InflightTable();
    expect(t.get(1)).toBeUndefined(); // empty table
    expect(t.remove(1)).toBeUndefined();
    const a = delivery(5, 0);
    const b = delivery(6, 1);
    t.add(a);
    t.add(b);
    expect(t.count).toBe(2);
    expect(t.get(5)).toBe(a);
    expect(t.get(6)).toBe(b);
    expect(t.get(21)).toBeUndefined(); // same slot as 5 in a small table, other id
    expect(t.get(0)).toBeUndefined();
    expect(t.remove(21)).toBeUndefined();
    expect(t.count).toBe(2);
    expect(t.remove(5)).toBe(a);
    expect(t.remove(5)).toBeUndefined(); // already gone
    expect(t.get(5)).toBeUndefined();
    expect(t.get(6)).toBe(b);
    expect(t.count).toBe(1);
  });

  test("count and payload bytes follow add and remove", () => {
    const t = new InflightTable();
    t.add(delivery(1, 0, 10));
    t.add(delivery(2, 1, 0));
    t.add(delivery(3, 2, 250));
    expect(t.count).toBe(3);
    expect(t.bytes).toBe(260);
    t.remove(1);
    expect(t.bytes).toBe(250);
    t.remove(99); // not in flight: no change
    expect(t.count).toBe(2);
    expect(t.bytes).toBe(250);
    t.remove(3);
    t.remove(2);
    expect(t.count).toBe(0);
    expect(t.bytes).toBe(0);
  });

  test("ordered() returns deliveries by seq, not by packet id", () => {
    const t = new InflightTable();
    const ds = [delivery(5, 3), delivery(1, 1), delivery(65535, 0), delivery(17, 2), delivery(33, 4)];
    for (const d of ds) t.add(d);
    expect(t.ordered().map((d) => d.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(t.ordered().map((d) => d.packetId)).toEqual([65535, 1, 17, 5, 33]);
    t.remove(17);
    expect(t.ordered().map((d) => d.packetId)).toEqual([65535, 1, 5, 33]);
    expect(new InflightTable().ordered()).toEqual([]);
  });

  test("grows while restored ids collide in a slot (1, 17, 33, 65535)", () => {
    const t = new InflightTable();
    const ds = [1, 17, 33, 65535].map((id, i) => delivery(id, i, i + 1));
    for (const d of ds) t.add(d);
    expect(t.count).toBe(4);
    expect(t.bytes).toBe(1 + 2 + 3 + 4);
    for (const d of ds) expect(t.get(d.packetId)).toBe(d);
    expect(t.get(49)).toBeUndefined();
    // New ids avoid them.
    for (let i = 0; i < 100; i++) {
      const id = t.nextId();
      expect([1, 17, 33, 65535]).not.toContain(id);
    }
  });

  test("grows to a full-size table when ids only differ in high bits (1 + k·4096)", () => {
    const t = new InflightTable();
    const ds = Array.from({ length: 16 }, (_, k) => delivery(1 + k * 4096, k));
    for (const d of ds) t.add(d);
    expect(t.count).toBe(16);
    for (const d of ds) expect(t.get(d.packetId)).toBe(d);
    expect(t.ordered()).toEqual(ds);
    for (const d of ds) expect(t.remove(d.packetId)).toBe(d);
    expect(t.count).toBe(0);
  });

  test("clear() empties the table; it is usable afterwards", () => {
    const t = new InflightTable();
    for (let i = 0; i < 40; i++) t.add(delivery(t.nextId(), i, 3));
    expect(t.bytes).toBe(120);
    t.clear();
    expect(t.count).toBe(0);
    expect(t.bytes).toBe(0);
    expect(t.get(1)).toBeUndefined();
    expect(t.remove(1)).toBeUndefined();
    expect(t.ordered()).toEqual([]);
    t.clear(); // twice is harmless
    const id = t.nextId();
    expect(id).toBeGreaterThanOrEqual(1);
    const d = delivery(id, 0, 7);
    t.add(d);
    t.add(delivery(1, 1)); // an id from before the clear is free again
    expect(t.get(id)).toBe(d);
    expect(t.count).toBe(2);
    expect(t.bytes).toBe(7);
  });
});

describe("DeliveryQueue", () => {
  test("FIFO order, length, peek and bytes", () => {
    const q = new DeliveryQueue();
    expect(q.length).toBe(0);
    expect(q.peek()).toBeUndefined();
    expect(q.shift()).toBeUndefined();
    const ds = [delivery(0, 0, 1), delivery(0, 1, 2), delivery(0, 2, 3)];
    for (const d of ds) q.push(d);
    expect(q.length).toBe(3);
    expect(q.bytes).toBe(6);
    expect(q.peek()).toBe(ds[0]!);
    expect(q.shift()).toBe(ds[0]!);
    expect(q.bytes).toBe(5);
    q.push(delivery(0, 3, 4));
    expect(q.toArray().map((d) => d.seq)).toEqual([1, 2, 3]);
    expect(q.shift()!.seq).toBe(1);
    expect(q.shift()!.seq).toBe(2);
    expect(q.shift()!.seq).toBe(3);
    expect(q.shift()).toBeUndefined();
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
  });

  test("compaction after many shifts keeps order and bytes", () => {
    const q = new DeliveryQueue();
    let pushed = 0;
    let expected = 0;
    for (let i = 0; i < 3000; i++) q.push(delivery(0, pushed++, 1));
    // Shift past the compaction threshold (head > 1024 and more than half consumed) with pushes interleaved.
    for (let i = 0; i < 2500; i++) {
      expect(q.shift()!.seq).toBe(expected++);
      if (i % 3 === 0) q.push(delivery(0, pushed++, 1));
    }
    expect(q.length).toBe(pushed - expected);
    expect(q.bytes).toBe(pushed - expected);
    expect(q.peek()!.seq).toBe(expected);
    const rest = q.toArray().map((d) => d.seq);
    expect(rest).toEqual(Array.from({ length: pushed - expected }, (_, i) => expected + i));
    while (q.length > 0) expect(q.shift()!.seq).toBe(expected++);
    expect(expected).toBe(pushed);
    expect(q.bytes).toBe(0);
  });

  test("wrapped around its ring: growing and trimTo keep order and bytes", () => {
    const q = new DeliveryQueue();
    let pushed = 0;
    let expected = 0;
    for (let i = 0; i < 12; i++) q.push(delivery(0, pushed++, 1));
    for (let i = 0; i < 10; i++) expect(q.shift()!.seq).toBe(expected++);
    // Head near the end of the array: these wrap, then force a grow while wrapped.
    for (let i = 0; i < 40; i++) q.push(delivery(0, pushed++, 1));
    expect(q.toArray().map((d) => d.seq)).toEqual(Array.from({ length: pushed - expected }, (_, i) => expected + i));
    const cut = q.trimTo(5, Infinity);
    expect(cut.map((d) => d.seq)).toEqual(Array.from({ length: pushed - expected - 5 }, (_, i) => expected + 5 + i));
    expect(q.length).toBe(5);
    expect(q.bytes).toBe(5);
    while (q.length > 0) expect(q.shift()!.seq).toBe(expected++);
    expect(q.bytes).toBe(0);
    expect(q.trimTo(0, 0)).toEqual([]);
  });

  test("toArray is a copy; clear empties", () => {
    const q = new DeliveryQueue();
    expect(q.toArray()).toEqual([]);
    q.push(delivery(0, 0, 5));
    q.push(delivery(0, 1, 5));
    const a = q.toArray();
    a.pop();
    expect(q.length).toBe(2);
    q.clear();
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
    expect(q.toArray()).toEqual([]);
    q.push(delivery(0, 2, 1));
    expect(q.toArray().map((d) => d.seq)).toEqual([2]);
    // A fresh queue is unaffected by another's pushes (the shared empty array is never written).
    expect(new DeliveryQueue().length).toBe(0);
  });
});

describe("PacketIdSet", () => {
  test("add / has / delete / size / iterate / clear", () => {
    const s = new PacketIdSet();
    expect(s.size).toBe(0);
    expect(s.has(1)).toBe(false);
    expect(s.delete(1)).toBe(false);
    expect([...s]).toEqual([]);
    s.add(7);
    s.add(65535);
    s.add(7);
    expect(s.size).toBe(2);
    expect(s.has(7)).toBe(true);
    expect([...s].sort((a, b) => a - b)).toEqual([7, 65535]);
    expect(s.delete(7)).toBe(true);
    expect(s.delete(7)).toBe(false);
    expect(s.size).toBe(1);
    s.clear();
    expect(s.size).toBe(0);
    expect(s.has(65535)).toBe(false);
    expect([...s]).toEqual([]);
    s.add(1);
    expect(s.has(1)).toBe(true);
  });
});
