/**
 * "Acknowledged means stored" at the byte level: no PUBACK may reach the
 * wire while the state it acknowledges is still uncommitted — not at the end
 * of the batch, and not from a drain event that comes between a handler and
 * the batch's commit (a client that is both a slow reader and a publisher).
 * A real SqliteStore on a temp file; a real Broker and Connections over the
 * in-memory transport, so the test decides when the "socket" drains.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Store } from "../../lib/store.ts";
import { SqliteStore } from "../../lib/store-sqlite.ts";
import { Harness, settle } from "../helpers/harness.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-ack-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The real store, plus whether something written is not committed yet and how many commits made writes durable. */
function tracked(inner: Store): Store & { uncommitted: boolean; commits: number } {
  const state = { uncommitted: false, commits: 0 };
  const proxy = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "uncommitted") return state.uncommitted;
      if (prop === "commits") return state.commits;
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        if (prop === "commit" || prop === "close") {
          if (state.uncommitted) state.commits++;
          state.uncommitted = false;
        } else if (prop !== "load") {
          state.uncommitted = true;
        }
        return v.apply(target, args);
      };
    },
  });
  return proxy as Store & { uncommitted: boolean; commits: number };
}

/** Byte offset of the first occurrence of `needle` in the written stream, and the chunk record that carried it. */
function carrier<T extends { at: number; len: number }>(wire: T[], stream: Buffer, needle: Buffer): T | undefined {
  const i = stream.indexOf(needle);
  if (i < 0) return undefined;
  return wire.find((w) => i >= w.at && i < w.at + w.len);
}

describe("no acknowledgement on the wire before its commit (durability \"ack\")", () => {
  test("a drain event between a PUBLISH and the batch's commit writes only committed output: the PUBACK leaves after the commit", async () => {
    const store = tracked(new SqliteStore(join(dir, "a.db")));
    const h = new Harness({ store });
    try {
      const sub = await h.connected("persist-sub", 4, { clean: false });
      await sub.subscribe("a/#", 1);
      const pub = await h.connected("slow-pub", 4);

      // Record, for every chunk written to the publisher, how many commits had happened.
      const wire: { at: number; len: number; commits: number }[] = [];
      const chunks: Buffer[] = [];
      let offset = 0;
      const parse = pub.transport.onWrite!;
      pub.transport.onWrite = (chunk) => {
        wire.push({ at: offset, len: chunk.length, commits: store.commits });
        chunks.push(chunk);
        offset += chunk.length;
        parse(chunk);
      };

      // The publisher stops reading: its PUBACK for message 1 cannot be written.
      pub.transport.accept = 0;
      pub.publish("a/1", "one", 1, 1);
      await settle();
      expect(pub.conn.waitingDrain).toBe(true);
      expect(h.broker.journal.pending).toBe(false);

      // In one event-loop turn: message 2 arrives (its rows are recorded, not committed,
      // its PUBACK encoded) and then the socket drains.
      pub.publish("a/2", "two", 1, 2);
      expect(h.broker.journal.pending).toBe(true); // recorded, not committed
      const before = store.commits;
      pub.transport.drain();
      await settle();

      const stream = Buffer.concat(chunks);
      const ack1 = carrier(wire, stream, Buffer.from([0x40, 0x02, 0x00, 0x01]));
      const ack2 = carrier(wire, stream, Buffer.from([0x40, 0x02, 0x00, 0x02]));
      expect(ack1).toBeDefined(); // committed earlier: free to leave on the drain
      expect(ack2).toBeDefined();
      expect(ack2!.commits).toBeGreaterThan(before); // only after the commit of message 2
      expect(pub.take().filter((p) => p.cmd === "puback").map((p) => p.messageId)).toEqual([1, 2]);
      const got = sub.take().filter((p) => p.cmd === "publish");
      expect(got.map((p) => p.payload.toString())).toEqual(["one", "two"]);
    } finally {
      store.close();
    }
  });

  test("the same holds for SUBACK of a persistent session and for PUBREC", async () => {
    const store = tracked(new SqliteStore(join(dir, "b.db")));
    const h = new Harness({ store });
    try {
      const c = await h.connected("persist-both", 5, { clean: false, properties: { sessionExpiryInterval: 60 } });
      const other = await h.connected("other-sub", 4, { clean: false });
      await other.subscribe("q/#", 2);
      const wire: { at: number; len: number; commits: number }[] = [];
      const chunks: Buffer[] = [];
      let offset = 0;
      const parse = c.transport.onWrite!;
      c.transport.onWrite = (chunk) => {
        wire.push({ at: offset, len: chunk.length, commits: store.commits });
        chunks.push(chunk);
        offset += chunk.length;
        parse(chunk);
      };
      c.transport.accept = 0;
      c.publish("q/1", "x", 2, 1);
      await settle();
      expect(c.conn.waitingDrain).toBe(true);
      c.sendMany([
        { cmd: "subscribe", messageId: 7, subscriptions: [{ topic: "z/#", qos: 1 }] },
        { cmd: "publish", topic: "q/2", payload: Buffer.from("y"), qos: 2, messageId: 2 },
      ]);
      expect(h.broker.journal.pending).toBe(true); // recorded, not committed
      const before = store.commits;
      c.transport.drain();
      await settle();
      const stream = Buffer.concat(chunks);
      const suback = carrier(wire, stream, Buffer.from([0x90, 0x04, 0x00, 0x07])); // v5 SUBACK id 7: no properties, granted 1
      const pubrec2 = carrier(wire, stream, Buffer.from([0x50, 0x02, 0x00, 0x02]));
      expect(suback).toBeDefined();
      expect(pubrec2).toBeDefined();
      expect(suback!.commits).toBeGreaterThan(before);
      expect(pubrec2!.commits).toBeGreaterThan(before);
      expect(c.take().map((p) => `${p.cmd}:${p.messageId}`)).toEqual(["pubrec:1", "suback:7", "pubrec:2"]);
    } finally {
      store.close();
    }
  });
});

describe("under load, commits are deferred; acknowledgements wait for them", () => {
  test("50 QoS 1 PUBLISHes in one read to an offline persistent session: each PUBACK is written only once its message's rows are in the database", async () => {
    const store = tracked(new SqliteStore(join(dir, "c.db")));
    const h = new Harness({ store });
    try {
      const sub = await h.connected("offline-sub", 4, { clean: false });
      await sub.subscribe("d/#", 1);
      sub.drop(); // offline: every message is queued, none acknowledged by a subscriber
      await settle();
      const pub = await h.connected("busy-pub", 4);
      const early: number[] = [];
      const parse = pub.transport.onWrite!;
      pub.transport.onWrite = (chunk) => {
        const stored = store.load().deliveries.filter((d) => d.clientId === "offline-sub").length;
        for (let i = 0; i + 4 <= chunk.length; i += 4) {
          if (chunk[i] !== 0x40) continue;
          const id = (chunk[i + 2]! << 8) | chunk[i + 3]!;
          if (stored < id) early.push(id); // message `id` is the id-th queued: its row must be there
        }
        parse(chunk);
      };
      pub.sendMany(Array.from({ length: 50 }, (_, i) => ({ cmd: "publish", topic: "d/x", qos: 1, messageId: i + 1, payload: Buffer.from(`m${i}`) })));
      await settle(8);
      expect(pub.take().filter((p) => p.cmd === "puback").length).toBe(50);
      expect(early).toEqual([]);
    } finally {
      store.close();
    }
  });
});
