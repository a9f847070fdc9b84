/**
 * The conformance suite every `Store` must pass (DESIGN.md 3; aedes-persistence
 * `abstract.js`, hono's shared case suites). `storeContract(name, open, reopen)`
 * registers one describe() block:
 *
 * - `open()` returns a new, empty store (for SQLite: on a new temp file);
 * - `reopen()` returns another store over the same data as the last `open()`
 *   (MemoryStore: a new MemoryStore over the same MemoryData; SQLite: a new
 *   SqliteStore on the same path). It may be called while the previous store
 *   is still open, which stands for a crash: nothing was closed.
 *
 * Every store handed out is closed after each test (errors ignored).
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Will } from "../../lib/session.ts";
import type { Snapshot, Store, StoredDelivery, StoredMessage, StoredSession, StoredSubscription } from "../../lib/store.ts";

type NewMessage = Omit<StoredMessage, "id">;

/** Bytes that are not valid UTF-8, a NUL and every byte value, so no text round trip can pass by accident. */
const binary = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x00, ...Array.from({ length: 256 }, (_, i) => i)]);

function message(topic: string, payload: Buffer | string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    topic,
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
    qos: 1,
    retain: false,
    props: null,
    expiresAt: 0,
    origin: "pub",
    ...extra,
  };
}

const will: Will = {
  topic: "wills/c1",
  payload: Buffer.from([0x00, 0x01, 0xff, 0x7f]),
  qos: 2,
  retain: true,
  props: Buffer.from([0x03, 0x00, 0x04, 0x74, 0x65, 0x78, 0x74]), // Content Type "text"
  delay: 30,
  expiry: 120,
};

function session(clientId: string, extra: Partial<StoredSession> = {}): StoredSession {
  return { clientId, version: 4, expiryInterval: 604800, expiresAt: 0, connected: false, will: null, willAt: 0, ...extra };
}

function subscription(clientId: string, filter: string, extra: Partial<StoredSubscription> = {}): StoredSubscription {
  return { clientId, filter, qos: 1, noLocal: false, rap: false, rh: 0, subId: 0, ...extra };
}

function delivery(clientId: string, seq: number, messageId: number, extra: Partial<StoredDelivery> = {}): StoredDelivery {
  return { clientId, seq, messageId, packetId: 0, qos: 1, retain: false, released: false, subIds: null, ...extra };
}

const byClient = <T extends { clientId: string }>(rows: T[], id: string) => rows.filter((r) => r.clientId === id);
const sortedBy = <T>(rows: T[], key: (r: T) => string) => [...rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
const inboundIds = (snap: Snapshot, id: string) =>
  byClient(snap.inbound, id)
    .map((r) => r.packetId)
    .sort((a, b) => a - b);
const bytes = (b: Buffer | null) => (b === null ? null : [...b]);

/** Compare a stored message field by field (payload and props as exact bytes). */
function expectMessage(got: StoredMessage | undefined, want: NewMessage & { id: number }): void {
  expect(got).toBeDefined();
  const g = got!;
  expect({ ...g, payload: bytes(g.payload), props: bytes(g.props) }).toEqual({ ...want, payload: bytes(want.payload), props: bytes(want.props) });
  expect(Buffer.isBuffer(g.payload)).toBe(true);
}

function expectSession(got: StoredSession | undefined, want: StoredSession): void {
  expect(got).toBeDefined();
  const g = got!;
  const norm = (s: StoredSession) => ({ ...s, will: s.will === null ? null : { ...s.will, payload: bytes(s.will.payload), props: bytes(s.will.props) } });
  expect(norm(g)).toEqual(norm(want));
}

/**
 * A fixed population of rows covering every field; returns what was written
 * (with the ids the store assigned) so a test can compare a later load().
 */
function populate(st: Store) {
  const m1 = message("a/b", binary, {
    qos: 2,
    retain: true,
    props: Buffer.from([0x01, 0x01, 0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76]), // Payload Format 1, User Property k=v
    expiresAt: 1_900_000_000_123,
    origin: "publisher-1",
  });
  const m2 = message("x/y/z", "hello", { qos: 1 });
  const m3 = message("retained/t", "kept", { qos: 0, retain: true, origin: "" });
  const m4 = message("empty/payload", Buffer.alloc(0), { qos: 2 });
  const id1 = st.addMessage(m1);
  const id2 = st.addMessage(m2);
  const id3 = st.addMessage(m3);
  const id4 = st.addMessage(m4);
  const messages = [
    { ...m1, id: id1 },
    { ...m2, id: id2 },
    { ...m3, id: id3 },
    { ...m4, id: id4 },
  ];

  st.setRetained("retained/t", id3);
  st.setRetained("a/b", id1);

  const sessions = [
    session("c1", { version: 5, expiryInterval: 3600, expiresAt: 1_800_000_000_000, connected: false, will, willAt: 1_800_000_030_000 }),
    session("c2", { version: 4, expiryInterval: 604800, connected: true }),
    session("c3", { version: 3, expiryInterval: 0xffffffff }),
  ];
  for (const s of sessions) st.saveSession(s);

  const subscriptions = [
    subscription("c1", "a/+", { qos: 2, noLocal: true, rap: true, rh: 2, subId: 268_435_455 }),
    subscription("c1", "$share/g/x/#", { qos: 1, subId: 7 }),
    subscription("c2", "#", { qos: 0, rh: 1 }),
    subscription("c3", "x/y/z", { qos: 1 }),
  ];
  for (const s of subscriptions) st.saveSubscription(s);

  // Written out of order: load() must return them by client, then seq.
  const deliveries = [
    delivery("c1", 7, id4, { packetId: 0, qos: 2 }),
    delivery("c1", 2, id1, { packetId: 65535, qos: 2, retain: true, released: true, subIds: [268_435_455, 7] }),
    delivery("c1", 5, id2, { packetId: 3, qos: 1, subIds: [7] }),
    delivery("c2", 1, id2, { packetId: 0, qos: 1 }),
    delivery("c2", 0, id1, { packetId: 1, qos: 2, released: false }),
  ];
  for (const d of deliveries) st.saveDelivery(d);

  st.addInbound("c1", 9);
  st.addInbound("c1", 65535);
  st.addInbound("c2", 1);
  return { messages, sessions, subscriptions, deliveries };
}

/** Everything `populate` wrote is in `snap`, exactly. */
function expectPopulated(snap: Snapshot, w: ReturnType<typeof populate>): void {
  expect(snap.messages.length).toBe(w.messages.length);
  for (const m of w.messages) expectMessage(snap.messages.find((x) => x.id === m.id), m);
  expect(new Set(snap.messages.map((m) => m.id)).size).toBe(w.messages.length);

  expect(sortedBy(snap.retained, (r) => r.topic)).toEqual([
    { topic: "a/b", messageId: w.messages[0]!.id },
    { topic: "retained/t", messageId: w.messages[2]!.id },
  ]);

  expect(snap.sessions.length).toBe(3);
  for (const s of w.sessions) expectSession(snap.sessions.find((x) => x.clientId === s.clientId), s);

  const subKey = (s: StoredSubscription) => `${s.clientId}\u0000${s.filter}`;
  expect(sortedBy(snap.subscriptions, subKey)).toEqual(sortedBy(w.subscriptions, subKey));

  // Ordered by client, then seq.
  const [d7, d2, d5, d1c2, d0c2] = w.deliveries;
  expect(snap.deliveries).toEqual([d2!, d5!, d7!, d0c2!, d1c2!]);

  expect(inboundIds(snap, "c1")).toEqual([9, 65535]);
  expect(inboundIds(snap, "c2")).toEqual([1]);
  expect(inboundIds(snap, "c3")).toEqual([]);
  expect(snap.inbound.length).toBe(3);
}

/**
 * `die(store)` leaves the store as a killed process would (no commit, no
 * close); the default does nothing, which is right for a store that holds no
 * lock. A store that excludes a second opener (SqliteStore) must release its
 * lock without committing.
 */
export function storeContract(name: string, open: () => Store, reopen: () => Store, die: (st: Store) => void = () => {}): void {
  describe(`Store contract: ${name}`, () => {
    const opened: Store[] = [];
    const track = (s: Store) => {
      opened.push(s);
      return s;
    };
    const fresh = () => track(open());
    const again = () => track(reopen());
    afterEach(() => {
      // Close newest first; a crash-style test leaves an older handle open too.
      for (const s of opened.splice(0).reverse()) {
        try {
          s.close();
        } catch {}
      }
    });

    test("an empty store loads empty", () => {
      const st = fresh();
      expect(st.load()).toEqual({ messages: [], retained: [], sessions: [], subscriptions: [], deliveries: [], inbound: [] });
    });

    test("write then load returns every row: messages (payload bytes, props), retained, sessions (will, willAt), subscriptions (options, subId), deliveries (by seq), inbound ids", () => {
      const st = fresh();
      const w = populate(st);
      st.commit();
      expectPopulated(st.load(), w);
    });

    test("addMessage returns distinct ids; loaded rows are independent copies of the payload", () => {
      const st = fresh();
      const ids = Array.from({ length: 20 }, (_, i) => st.addMessage(message(`t/${i}`, `p${i}`)));
      expect(new Set(ids).size).toBe(20);
      for (const id of ids) st.saveDelivery(delivery("c", id, id));
      st.saveSession(session("c"));
      st.commit();
      const snap = st.load();
      expect(snap.messages.map((m) => m.payload.toString()).sort()).toEqual(ids.map((_, i) => `p${i}`).sort());
      for (const m of snap.messages) expect(m.topic).toBe(`t/${m.payload.toString().slice(1)}`);
    });

    test("saveDelivery with the same (clientId, seq) replaces the row (e.g. queued -> in flight -> PUBREL pending)", () => {
      const st = fresh();
      const id = st.addMessage(message("t", "p", { qos: 2 }));
      st.saveSession(session("c"));
      st.saveDelivery(delivery("c", 4, id, { qos: 2 }));
      st.saveDelivery(delivery("c", 4, id, { qos: 2, packetId: 17, subIds: [3] }));
      st.saveDelivery(delivery("c", 4, id, { qos: 2, packetId: 17, released: true, subIds: [3] }));
      // Same seq for another client is another row.
      st.saveDelivery(delivery("other", 4, id, { qos: 1 }));
      st.commit();
      const snap = st.load();
      expect(byClient(snap.deliveries, "c")).toEqual([delivery("c", 4, id, { qos: 2, packetId: 17, released: true, subIds: [3] })]);
      expect(byClient(snap.deliveries, "other")).toEqual([delivery("other", 4, id, { qos: 1 })]);
    });

    test("saveSession and saveSubscription replace by key; setRetained replaces by topic", () => {
      const st = fresh();
      const a = st.addMessage(message("r", "old", { retain: true }));
      const b = st.addMessage(message("r", "new", { retain: true }));
      st.setRetained("r", a);
      st.setRetained("r", b);
      st.saveSession(session("c", { version: 4, connected: true }));
      st.saveSession(session("c", { version: 5, expiryInterval: 60, expiresAt: 123, connected: false, will, willAt: 456 }));
      st.saveSubscription(subscription("c", "f/#", { qos: 0 }));
      st.saveSubscription(subscription("c", "f/#", { qos: 2, noLocal: true, rap: true, rh: 1, subId: 12 }));
      st.commit();
      const snap = st.load();
      expect(snap.retained).toEqual([{ topic: "r", messageId: b }]);
      expect(snap.sessions.length).toBe(1);
      expectSession(snap.sessions[0], session("c", { version: 5, expiryInterval: 60, expiresAt: 123, connected: false, will, willAt: 456 }));
      expect(snap.subscriptions).toEqual([subscription("c", "f/#", { qos: 2, noLocal: true, rap: true, rh: 1, subId: 12 })]);
    });

    test("a session without a will loads will = null; will.payload may be empty", () => {
      const st = fresh();
      const emptyWill: Will = { ...will, payload: Buffer.alloc(0), props: null, delay: 0, expiry: -1, retain: false, qos: 0 };
      st.saveSession(session("nowill"));
      st.saveSession(session("emptywill", { will: emptyWill, willAt: 0 }));
      st.commit();
      const snap = st.load();
      expectSession(snap.sessions.find((s) => s.clientId === "nowill"), session("nowill"));
      expectSession(snap.sessions.find((s) => s.clientId === "emptywill"), session("emptywill", { will: emptyWill, willAt: 0 }));
    });

    test("deleteSession removes that session's subscriptions, deliveries and inbound ids, and nothing of other sessions nor retained", () => {
      const st = fresh();
      const w = populate(st);
      st.commit();
      st.deleteSession("c1");
      st.commit();
      const snap = st.load();
      expect(snap.sessions.map((s) => s.clientId).sort()).toEqual(["c2", "c3"]);
      expect(byClient(snap.subscriptions, "c1")).toEqual([]);
      expect(byClient(snap.deliveries, "c1")).toEqual([]);
      expect(inboundIds(snap, "c1")).toEqual([]);
      // Other sessions untouched.
      expect(byClient(snap.subscriptions, "c2")).toEqual([w.subscriptions[2]!]);
      expect(byClient(snap.subscriptions, "c3")).toEqual([w.subscriptions[3]!]);
      expect(byClient(snap.deliveries, "c2")).toEqual([w.deliveries[4]!, w.deliveries[3]!]);
      expect(inboundIds(snap, "c2")).toEqual([1]);
      // Retained messages are not session state.
      expect(sortedBy(snap.retained, (r) => r.topic).map((r) => r.topic)).toEqual(["a/b", "retained/t"]);
      for (const r of snap.retained) expect(snap.messages.some((m) => m.id === r.messageId)).toBe(true);
      // Messages still referenced by c2's deliveries are there.
      for (const d of snap.deliveries) expect(snap.messages.some((m) => m.id === d.messageId)).toBe(true);
    });

    test("deleteSession of a client id that is a prefix of another touches only the exact id", () => {
      const st = fresh();
      const id = st.addMessage(message("t", "p"));
      for (const c of ["c", "c1", "c/x"]) {
        st.saveSession(session(c));
        st.saveSubscription(subscription(c, "t"));
        st.saveDelivery(delivery(c, 0, id));
        st.addInbound(c, 5);
      }
      st.deleteSession("c");
      st.commit();
      const snap = st.load();
      expect(snap.sessions.map((s) => s.clientId).sort()).toEqual(["c1", "c/x"].sort());
      expect(snap.subscriptions.map((s) => s.clientId).sort()).toEqual(["c1", "c/x"].sort());
      expect(snap.deliveries.map((s) => s.clientId).sort()).toEqual(["c1", "c/x"].sort());
      expect(snap.inbound.map((s) => s.clientId).sort()).toEqual(["c1", "c/x"].sort());
    });

    test("deleteRetained removes only that topic", () => {
      const st = fresh();
      const w = populate(st);
      st.deleteRetained("a/b");
      st.deleteRetained("never/retained"); // unknown topic: no error
      st.commit();
      const snap = st.load();
      expect(snap.retained).toEqual([{ topic: "retained/t", messageId: w.messages[2]!.id }]);
    });

    test("deleteSubscription, deleteDelivery, deleteInbound and deleteMessage remove exactly one row", () => {
      const st = fresh();
      const w = populate(st);
      st.deleteSubscription("c1", "a/+");
      st.deleteSubscription("c1", "no/such/filter");
      st.deleteDelivery("c1", 5);
      st.deleteDelivery("c1", 999);
      st.deleteInbound("c1", 9);
      st.deleteInbound("c3", 1);
      st.deleteMessage(w.messages[3]!.id); // referenced by c1 seq 7: the store does not police references
      st.deleteDelivery("c1", 7);
      st.commit();
      const snap = st.load();
      expect(byClient(snap.subscriptions, "c1")).toEqual([w.subscriptions[1]!]);
      expect(byClient(snap.deliveries, "c1")).toEqual([w.deliveries[1]!]);
      expect(inboundIds(snap, "c1")).toEqual([65535]);
      expect(inboundIds(snap, "c2")).toEqual([1]);
      expect(snap.messages.some((m) => m.id === w.messages[3]!.id)).toBe(false);
      expect(snap.sessions.length).toBe(3);
    });

    test("addInbound twice with the same id keeps one row", () => {
      const st = fresh();
      st.saveSession(session("c"));
      st.addInbound("c", 42);
      st.addInbound("c", 42);
      st.commit();
      expect(st.load().inbound).toEqual([{ clientId: "c", packetId: 42 }]);
    });

    test("load() twice returns the same state (it does not consume anything)", () => {
      const st = fresh();
      const w = populate(st);
      st.commit();
      expectPopulated(st.load(), w);
      expectPopulated(st.load(), w);
    });

    test("write, commit, close, reopen: load restores everything", () => {
      const st = fresh();
      const w = populate(st);
      st.commit();
      st.close();
      opened.splice(opened.indexOf(st), 1);
      const st2 = again();
      expectPopulated(st2.load(), w);
      // And the reopened store keeps working: ids stay unique, later writes persist.
      const id = st2.addMessage(message("later", "after reopen"));
      expect(w.messages.some((m) => m.id === id)).toBe(false);
      st2.setRetained("later", id);
      st2.commit();
      st2.close();
      opened.splice(opened.indexOf(st2), 1);
      const st3 = again();
      const snap = st3.load();
      expect(snap.retained.find((r) => r.topic === "later")?.messageId).toBe(id);
      expect(snap.messages.find((m) => m.id === id)?.payload.toString()).toBe("after reopen");
    });

    test("close() without an explicit commit keeps what was written (close commits)", () => {
      const st = fresh();
      const w = populate(st);
      st.close();
      opened.splice(opened.indexOf(st), 1);
      expectPopulated(again().load(), w);
    });

    test("crash: after commit, a new store on the same data (the old one never closed) sees every committed row", () => {
      const st = fresh();
      const w = populate(st);
      st.commit();
      // Later committed changes are visible too.
      st.deleteRetained("retained/t");
      st.setRetained("retained/t", w.messages[2]!.id);
      st.commit();
      die(st); // as if the process had died: nothing more is committed
      const st2 = again();
      expectPopulated(st2.load(), w);
    });
  });
}
