/**
 * Crash and restart with real processes: `bun broker.ts --port 0 --data FILE`
 * is killed with SIGKILL (kill -9) or stopped with SIGTERM, then started
 * again on the same file. In the default "ack" durability every message,
 * subscription and session whose acknowledgement (PUBACK, PUBREC, SUBACK,
 * CONNACK) reached the client must survive (DESIGN.md 3); in-flight state
 * comes back with its packet ids (3.1.1 [MQTT-4.4.0-1], 5 [MQTT-4.4.0-1]);
 * session expiry and delayed wills keep counting across the restart.
 *
 * Waits are generous and nothing asserts how fast the broker is.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Packet, RawClient } from "../helpers/raw.ts";

const ROOT = resolve(import.meta.dir, "../..");
/** Per test; each scenario takes a few seconds (will delay, session expiry), far less on a quiet machine. */
const TEST_TIMEOUT = 30_000;
const dir = mkdtempSync(join(tmpdir(), "bunmq-crash-"));

// ---- broker processes ------------------------------------------------------

interface BrokerProc {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  port: number;
  stdout: () => string;
  stderr: () => string;
  /** kill -9 and wait until the process is gone. */
  kill9(): Promise<void>;
}

const procs = new Set<Subprocess>();
const clients = new Set<RawClient>();

async function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }, onText: () => void): Promise<void> {
  const dec = new TextDecoder();
  try {
    for await (const chunk of stream) {
      sink.text += dec.decode(chunk, { stream: true });
      onText();
    }
  } catch {}
  onText();
}

/** Start `bun broker.ts --port 0 --data <data> [--config <config>]`; resolves once it prints "listening". */
async function spawnBroker(data: string, config?: string): Promise<BrokerProc> {
  const args = [process.execPath, "broker.ts", "--port", "0", "--data", data, "--log-level", "warn"];
  if (config !== undefined) args.push("--config", config);
  const proc = Bun.spawn(args, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  procs.add(proc);
  const out = { text: "" };
  const err = { text: "" };
  let wake = () => {};
  void collect(proc.stdout, out, () => wake());
  void collect(proc.stderr, err, () => wake());
  const deadline = Date.now() + 15_000;
  let port = 0;
  for (;;) {
    const m = /bunmq listening on mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out.text);
    if (m) {
      port = Number(m[1]);
      break;
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`broker exited (${proc.exitCode ?? proc.signalCode}) before listening:\n${out.text}\n${err.text}`);
    }
    if (Date.now() > deadline) throw new Error(`broker did not start in time:\n${out.text}\n${err.text}`);
    await new Promise<void>((r) => {
      const t = setTimeout(r, 50);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }
  return {
    proc,
    port,
    stdout: () => out.text,
    stderr: () => err.text,
    async kill9() {
      proc.kill(9);
      await proc.exited;
      procs.delete(proc);
    },
  };
}

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients.clear();
  for (const p of procs) {
    p.kill(9);
    await p.exited;
  }
  procs.clear();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---- raw clients -----------------------------------------------------------

/** Connect and CONNECT; returns the client and its CONNACK (anything after CONNACK stays queued). */
async function connect(port: number, version: 4 | 5, opts: Record<string, unknown>): Promise<[RawClient, Packet]> {
  const c = await RawClient.connect(port, version);
  clients.add(c);
  const ack = await c.handshake({ keepalive: 0, ...opts });
  expect(ack.cmd).toBe("connack");
  expect(ack.returnCode ?? ack.reasonCode ?? 0).toBe(0);
  return [c, ack];
}

async function subscribe(c: RawClient, messageId: number, subscriptions: Record<string, unknown>[], properties?: Record<string, unknown>): Promise<number[]> {
  c.send({ cmd: "subscribe", messageId, subscriptions, ...(properties ? { properties } : {}) });
  const ack = await c.nextOf("suback", 5000);
  expect(ack.messageId).toBe(messageId);
  return ack.granted as number[];
}

/** Normal DISCONNECT (no will), then close the socket once the broker closes it. */
async function disconnect(c: RawClient): Promise<void> {
  c.send({ cmd: "disconnect" });
  await c.waitClose(2000);
  c.destroy();
}

/** Publish and complete the QoS flow: PUBACK, or PUBREC + PUBREL + PUBCOMP. */
async function publishAcked(c: RawClient, topic: string, payload: string | Buffer, qos: 1 | 2, messageId: number, extra: Record<string, unknown> = {}): Promise<void> {
  c.send({ cmd: "publish", topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos, messageId, retain: false, dup: false, ...extra });
  if (qos === 1) {
    const a = await c.nextOf("puback", 5000);
    expect(a.messageId).toBe(messageId);
    return;
  }
  const rec = await c.nextOf("pubrec", 5000);
  expect(rec.messageId).toBe(messageId);
  c.send({ cmd: "pubrel", messageId });
  const comp = await c.nextOf("pubcomp", 5000);
  expect(comp.messageId).toBe(messageId);
}

interface Got {
  topic: string;
  payload: string;
  qos: number;
  dup: boolean;
  retain: boolean;
  messageId?: number;
  properties?: Record<string, any>;
}

/**
 * Receive as a well-behaved subscriber: PUBACK each QoS 1 PUBLISH, PUBREC
 * each QoS 2 one, PUBCOMP each PUBREL. Records every PUBLISH (duplicates
 * included) and every PUBREL in `rels`. Stops when `done(got)` holds, then keeps acknowledging for
 * `quietMs` of silence so that extra copies show up too.
 */
async function receive(c: RawClient, done: (got: Got[]) => boolean, ms = 15_000, quietMs = 300, rels: Packet[] = []): Promise<Got[]> {
  const got: Got[] = [];
  const handle = (p: Packet) => {
    if (p.cmd === "publish") {
      got.push({
        topic: p.topic,
        payload: Buffer.from(p.payload).toString(),
        qos: p.qos,
        dup: p.dup,
        retain: p.retain,
        messageId: p.messageId,
        properties: p.properties,
      });
      if (p.qos === 1) c.send({ cmd: "puback", messageId: p.messageId });
      if (p.qos === 2) c.send({ cmd: "pubrec", messageId: p.messageId });
    } else if (p.cmd === "pubrel") {
      rels.push(p);
      c.send({ cmd: "pubcomp", messageId: p.messageId });
    } else {
      throw new Error(`unexpected ${p.cmd} while receiving`);
    }
  };
  const end = Date.now() + ms;
  while (!done(got)) {
    const left = end - Date.now();
    if (left <= 0) throw new Error(`timed out: received ${got.length} messages`);
    handle(await c.next(left));
  }
  for (;;) {
    let p: Packet;
    try {
      p = await c.next(quietMs);
    } catch {
      return got;
    }
    handle(p);
  }
}

const payloads = (got: Got[]) => got.map((g) => g.payload);
const range = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
const pad = (i: number) => String(i).padStart(4, "0");

// ---- scenarios -------------------------------------------------------------

describe("crash (kill -9) and restart on the same database", () => {
  test("(1) every acknowledged QoS 1/2 message reaches persistent 3.1.1 and v5 subscribers after kill -9, QoS 2 exactly once, in order; the publisher's QoS 2 state survives", async () => {
    const data = join(dir, "s1.db");
    let b = await spawnBroker(data);
    const subs: [string, 4 | 5, Record<string, unknown>][] = [
      ["s1-v311", 4, { clean: false }],
      ["s1-v5", 5, { clean: true, properties: { sessionExpiryInterval: 3600 } }],
    ];
    for (const [clientId, v, opts] of subs) {
      const [c, ack] = await connect(b.port, v, { clientId, ...opts });
      expect(ack.sessionPresent).toBe(false);
      expect(await subscribe(c, 1, [{ topic: "c1/#", qos: 2 }])).toEqual([2]);
      await disconnect(c);
    }

    const N = 200;
    const [pub] = await connect(b.port, 4, { clientId: "s1-pub", clean: false });
    for (let i = 0; i < N; i++) await publishAcked(pub, "c1/q1", `q1-${pad(i)}`, 1, 100 + i);
    for (let i = 0; i < N; i++) await publishAcked(pub, "c1/q2", `q2-${pad(i)}`, 2, 100 + i);
    // A QoS 2 message acknowledged with PUBREC only: its packet id is held until PUBREL.
    pub.send({ cmd: "publish", topic: "c1/held", payload: Buffer.from("held-9"), qos: 2, messageId: 9, retain: false, dup: false });
    const rec = await pub.nextOf("pubrec", 5000);
    expect(rec.messageId).toBe(9);
    await b.kill9(); // immediately after the last ack
    pub.destroy();

    b = await spawnBroker(data);
    // The publisher resumes: the repeated PUBLISH (DUP) is answered with PUBREC and not routed again.
    const [pub2, pack] = await connect(b.port, 4, { clientId: "s1-pub", clean: false });
    expect(pack.sessionPresent).toBe(true);
    pub2.send({ cmd: "publish", topic: "c1/held", payload: Buffer.from("held-9"), qos: 2, messageId: 9, retain: false, dup: true });
    const rec2 = await pub2.next(5000);
    expect(rec2.cmd).toBe("pubrec");
    expect(rec2.messageId).toBe(9);
    pub2.send({ cmd: "pubrel", messageId: 9 });
    const comp = await pub2.next(5000);
    expect(comp.cmd).toBe("pubcomp");
    expect(comp.messageId).toBe(9);

    const expected = [...range(N, (i) => `q1-${pad(i)}`), ...range(N, (i) => `q2-${pad(i)}`), "held-9"];
    for (const [clientId, v, opts] of subs) {
      const [c, ack] = await connect(b.port, v, { clientId, ...opts, clean: false });
      expect(ack.sessionPresent).toBe(true);
      const got = await receive(c, (g) => g.length >= expected.length, 20_000, 500);
      // Every acknowledged message, each exactly once, in publish order.
      expect(payloads(got)).toEqual(expected);
      for (const g of got) {
        expect(g.qos).toBe(g.topic === "c1/q1" ? 1 : 2);
        expect(g.dup).toBe(false); // queued while offline: never sent before
      }
      await disconnect(c);
    }
  }, TEST_TIMEOUT);

  test("(2) kill -9 in the middle of a pipelined QoS 1 stream: every PUBACKed message is delivered, none twice, in order", async () => {
    const data = join(dir, "s2.db");
    let b = await spawnBroker(data);
    const [sub] = await connect(b.port, 4, { clientId: "s2-sub", clean: false });
    expect(await subscribe(sub, 1, [{ topic: "c2/#", qos: 1 }])).toEqual([1]);
    await disconnect(sub);

    // Stay under the default maxQueuedMessages (1000): a full queue may drop acknowledged messages by design.
    const N = 900;
    const WINDOW = 50;
    const killAt = 50 + Math.floor(Math.random() * 700); // a random point mid-stream, 50 PUBLISHes in flight
    const [pub] = await connect(b.port, 4, { clientId: "s2-pub", clean: true });
    const acked = new Set<number>();
    let sent = 0;
    let killed: Promise<void> | null = null;
    let inFlightAtKill = 0;
    const sendNext = () => {
      const seq = sent++;
      pub.send({ cmd: "publish", topic: `c2/t${seq % 3}`, payload: Buffer.from(`m-${pad(seq)}`), qos: 1, messageId: seq + 1, retain: false, dup: false });
    };
    while (sent < WINDOW) sendNext();
    for (;;) {
      let p: Packet;
      try {
        p = await pub.next(10_000);
      } catch {
        break; // the broker is gone (and every PUBACK that arrived before was counted)
      }
      expect(p.cmd).toBe("puback");
      acked.add((p.messageId as number) - 1);
      if (killed === null && acked.size >= killAt) {
        inFlightAtKill = sent - acked.size;
        killed = b.kill9();
        continue;
      }
      if (killed === null && sent < N) sendNext();
    }
    expect(killed).not.toBeNull();
    await killed;
    expect(acked.size).toBeGreaterThanOrEqual(killAt);
    expect(inFlightAtKill).toBeGreaterThan(0); // killed mid-stream, with PUBLISHes unacknowledged

    b = await spawnBroker(data);
    const [sub2, ack] = await connect(b.port, 4, { clientId: "s2-sub", clean: false });
    expect(ack.sessionPresent).toBe(true);
    const got = await receive(sub2, (g) => {
      const have = new Set(g.map((x) => Number(x.payload.slice(2))));
      for (const a of acked) if (!have.has(a)) return false;
      return true;
    }, 20_000, 700);
    const seqs = got.map((g) => Number(g.payload.slice(2)));
    // Every acknowledged message arrived.
    const have = new Set(seqs);
    const missing = [...acked].filter((a) => !have.has(a));
    expect({ killAt, acked: acked.size, missing }).toEqual({ killAt, acked: acked.size, missing: [] });
    // Nothing that was never sent; nothing twice (except as a DUP resend); in order.
    for (const s of seqs) expect(s).toBeLessThan(sent);
    const firsts = got.filter((g) => !g.dup).map((g) => Number(g.payload.slice(2)));
    expect(new Set(firsts).size).toBe(firsts.length);
    expect(firsts).toEqual([...firsts].sort((x, y) => x - y));
    await disconnect(sub2);
  }, TEST_TIMEOUT);

  test("(3) in flight at the crash: unacked PUBLISHes come back with DUP=1 and their packet ids, PUBREL for PUBREC'd ones, in order, then the queue", async () => {
    const data = join(dir, "s3.db");
    const config = join(dir, "s3.json");
    writeFileSync(config, JSON.stringify({ limits: { maxInflight: 4 } }));
    let b = await spawnBroker(data, config);
    const subs: [string, 4 | 5, Record<string, unknown>][] = [
      ["s3-v311", 4, { clean: false }],
      ["s3-v5", 5, { clean: true, properties: { sessionExpiryInterval: 3600 } }],
    ];
    const live: RawClient[] = [];
    for (const [clientId, v, opts] of subs) {
      const [c] = await connect(b.port, v, { clientId, ...opts });
      expect(await subscribe(c, 1, [{ topic: "c3/#", qos: 2 }])).toEqual([2]);
      live.push(c);
    }
    const plan: [string, 1 | 2][] = [
      ["m0", 1],
      ["m1", 2],
      ["m2", 2],
      ["m3", 1],
      ["m4", 2],
      ["m5", 1],
      ["m6", 1],
      ["m7", 2],
    ];
    const [pub] = await connect(b.port, 4, { clientId: "s3-pub", clean: true });
    for (let i = 0; i < plan.length; i++) await publishAcked(pub, "c3/t", plan[i]![0], plan[i]![1], i + 1);

    // Each subscriber has the first 4 in flight (maxInflight 4) and the rest queued.
    const ids: Record<string, number>[] = [];
    for (const c of live) {
      const first: Packet[] = [];
      while (first.length < 4) first.push(await c.nextOf("publish", 5000));
      expect(first.map((p) => Buffer.from(p.payload).toString())).toEqual(["m0", "m1", "m2", "m3"]);
      expect(first.map((p) => p.qos)).toEqual([1, 2, 2, 1]);
      const byName: Record<string, number> = {};
      for (const p of first) byName[Buffer.from(p.payload).toString()] = p.messageId as number;
      ids.push(byName);
      // PUBREC for m1 only: the broker answers PUBREL (after committing that state), then we go silent.
      c.send({ cmd: "pubrec", messageId: byName.m1 });
      const rel = await c.nextOf("pubrel", 5000);
      expect(rel.messageId).toBe(byName.m1!);
      expect(await c.drain(200)).toEqual([]); // window full: nothing more yet
    }
    await b.kill9();
    for (const c of live) c.destroy();

    b = await spawnBroker(data, config);
    for (let k = 0; k < subs.length; k++) {
      const [clientId, v, opts] = subs[k]!;
      const id = ids[k]!;
      const [c, ack] = await connect(b.port, v, { clientId, ...opts, clean: false });
      expect(ack.sessionPresent).toBe(true);
      const resent: Packet[] = [];
      for (let i = 0; i < 4; i++) resent.push(await c.next(5000));
      expect(resent.map((p) => p.cmd)).toEqual(["publish", "pubrel", "publish", "publish"]);
      expect(resent.map((p) => p.messageId)).toEqual([id.m0, id.m1, id.m2, id.m3]);
      const [p0, , p2, p3] = resent;
      for (const [p, name, qos] of [
        [p0, "m0", 1],
        [p2, "m2", 2],
        [p3, "m3", 1],
      ] as const) {
        expect(Buffer.from(p!.payload).toString()).toBe(name);
        expect(p!.dup).toBe(true);
        expect(p!.qos).toBe(qos);
        expect(p!.topic).toBe("c3/t");
      }
      expect(await c.drain(200)).toEqual([]); // still only 4 in flight

      // Finish the resent flows; the queue follows, in order, as new sends.
      c.send({ cmd: "puback", messageId: id.m0 });
      c.send({ cmd: "pubcomp", messageId: id.m1 });
      c.send({ cmd: "pubrec", messageId: id.m2 });
      c.send({ cmd: "puback", messageId: id.m3 });
      const rels: Packet[] = [];
      // PUBREL for m2, then for the queued QoS 2 ones (m4, m7) once PUBREC'd; each answered with PUBCOMP.
      const rest = await receive(c, (g) => g.length >= 4 && rels.length >= 3, 10_000, 300, rels);
      expect(rels[0]!.messageId).toBe(id.m2!);
      expect(rels.slice(1).map((p) => p.messageId)).toEqual([rest[0]!.messageId, rest[3]!.messageId]);
      expect(payloads(rest)).toEqual(["m4", "m5", "m6", "m7"]);
      expect(rest.map((g) => g.qos)).toEqual([2, 1, 1, 2]);
      for (const g of rest) expect(g.dup).toBe(false);
      await disconnect(c);
    }
  }, TEST_TIMEOUT);

  test("(4) retained messages (replaced, deleted) and subscriptions (v5 Subscription Identifier, No Local, Retain As Published, QoS) survive kill -9", async () => {
    const data = join(dir, "s4.db");
    let b = await spawnBroker(data);
    const [pub] = await connect(b.port, 5, { clientId: "s4-pub", clean: true });
    await publishAcked(pub, "r/a", "A1", 1, 1, { retain: true });
    await publishAcked(pub, "r/a", "A2", 1, 2, { retain: true }); // replaces A1
    await publishAcked(pub, "r/b", "B", 1, 3, { retain: true });
    await publishAcked(pub, "r/b", "", 1, 4, { retain: true }); // deletes r/b
    await publishAcked(pub, "r/c", "C", 1, 5, {
      retain: true,
      properties: { payloadFormatIndicator: true, contentType: "text/plain", userProperties: { k: "v" } },
    });
    await publishAcked(pub, "r/d", Buffer.from([0x00, 0xff, 0x10]), 2, 6, { retain: true });

    const [sub] = await connect(b.port, 5, { clientId: "s4-sub", clean: true, properties: { sessionExpiryInterval: 3600 } });
    expect(await subscribe(sub, 1, [{ topic: "s4/nl/#", qos: 1, nl: true, rap: true, rh: 2 }], { subscriptionIdentifier: 42 })).toEqual([1]);
    expect(await subscribe(sub, 2, [{ topic: "s4/plain", qos: 2, nl: false, rap: false, rh: 2 }], { subscriptionIdentifier: 7 })).toEqual([2]);
    await b.kill9(); // the subscriber is still connected
    sub.destroy();
    pub.destroy();

    b = await spawnBroker(data);
    // Retained: r/a = A2, r/b gone, r/c with its properties, r/d's bytes.
    const [check] = await connect(b.port, 5, { clientId: "s4-check", clean: true });
    expect(await subscribe(check, 1, [{ topic: "r/#", qos: 2 }])).toEqual([2]);
    const retained = await receive(check, (g) => g.length >= 3, 5000, 400);
    const byTopic = Object.fromEntries(retained.map((g) => [g.topic, g]));
    expect(retained.map((g) => g.topic).sort()).toEqual(["r/a", "r/c", "r/d"]);
    expect(byTopic["r/a"]!.payload).toBe("A2");
    expect(byTopic["r/c"]!.payload).toBe("C");
    expect(byTopic["r/c"]!.properties?.contentType).toBe("text/plain");
    expect(byTopic["r/c"]!.properties?.payloadFormatIndicator).toBe(true);
    expect({ ...byTopic["r/c"]!.properties?.userProperties }).toEqual({ k: "v" });
    expect(byTopic["r/d"]!.qos).toBe(2);
    for (const g of retained) expect(g.retain).toBe(true);

    // Subscriptions: resumed without subscribing again.
    const [sub2, ack] = await connect(b.port, 5, { clientId: "s4-sub", clean: false, properties: { sessionExpiryInterval: 3600 } });
    expect(ack.sessionPresent).toBe(true);
    await publishAcked(sub2, "s4/nl/own", "own", 1, 1); // No Local: never comes back
    await publishAcked(check, "s4/nl/x", "from-other", 2, 2, { retain: true });
    await publishAcked(check, "s4/plain", "plain", 1, 3, { retain: true });
    const got = await receive(sub2, (g) => g.length >= 2, 5000, 400);
    expect(payloads(got)).toEqual(["from-other", "plain"]);
    const [nl, plain] = got;
    expect(nl!.topic).toBe("s4/nl/x");
    expect(nl!.qos).toBe(1); // granted QoS 1 caps the QoS 2 publication
    expect(nl!.retain).toBe(true); // Retain As Published
    expect(nl!.properties?.subscriptionIdentifier).toBe(42);
    expect(plain!.qos).toBe(1);
    expect(plain!.retain).toBe(false); // no Retain As Published
    expect(plain!.properties?.subscriptionIdentifier).toBe(7);
  }, TEST_TIMEOUT);

  test("(5) session expiry keeps counting across the restart: 3 s expired, 3600 s present", async () => {
    const data = join(dir, "s5.db");
    let b = await spawnBroker(data);
    const [short] = await connect(b.port, 5, { clientId: "s5-short", clean: true, properties: { sessionExpiryInterval: 3 } });
    expect(await subscribe(short, 1, [{ topic: "s5/t", qos: 1 }])).toEqual([1]);
    const [long] = await connect(b.port, 5, { clientId: "s5-long", clean: true, properties: { sessionExpiryInterval: 3600 } });
    expect(await subscribe(long, 1, [{ topic: "s5/t", qos: 1 }])).toEqual([1]);
    const t0 = Date.now();
    await Promise.all([disconnect(short), disconnect(long)]);
    await Bun.sleep(t0 + 1000 - Date.now());
    await b.kill9();

    b = await spawnBroker(data);
    await Bun.sleep(Math.max(0, t0 + 4000 - Date.now())); // 3 s expiry plus a generous margin
    const [, ackShort] = await connect(b.port, 5, { clientId: "s5-short", clean: false, properties: { sessionExpiryInterval: 3 } });
    expect(ackShort.sessionPresent).toBe(false);
    const [, ackLong] = await connect(b.port, 5, { clientId: "s5-long", clean: false, properties: { sessionExpiryInterval: 3600 } });
    expect(ackLong.sessionPresent).toBe(true);
  }, TEST_TIMEOUT);

  test("(6) a delayed will of a client connected at the crash is published after the restart, once", async () => {
    const data = join(dir, "s6.db");
    let b = await spawnBroker(data);
    const [sub] = await connect(b.port, 4, { clientId: "s6-sub", clean: false });
    expect(await subscribe(sub, 1, [{ topic: "s6/will", qos: 1 }])).toEqual([1]);
    const [wc] = await connect(b.port, 5, {
      clientId: "s6-will",
      clean: true,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: "s6/will", payload: Buffer.from("gone"), qos: 1, retain: false, properties: { willDelayInterval: 2 } },
    });
    await b.kill9(); // both clients still connected
    sub.destroy();
    wc.destroy();

    b = await spawnBroker(data);
    const [sub2, ack] = await connect(b.port, 4, { clientId: "s6-sub", clean: false });
    expect(ack.sessionPresent).toBe(true);
    // Not at once: the will delay (2 s) starts again at the restart.
    expect(await sub2.drain(300)).toEqual([]);
    const got = await receive(sub2, (g) => g.length >= 1, 10_000, 500);
    expect(got.length).toBe(1);
    expect(got[0]!.topic).toBe("s6/will");
    expect(got[0]!.payload).toBe("gone");
    expect(got[0]!.qos).toBe(1);

    // Published means consumed: another crash and restart does not publish it again.
    await Bun.sleep(100);
    await b.kill9();
    sub2.destroy();
    b = await spawnBroker(data);
    const [sub3, ack3] = await connect(b.port, 4, { clientId: "s6-sub", clean: false });
    expect(ack3.sessionPresent).toBe(true);
    expect(await sub3.drain(2500)).toEqual([]);
  }, TEST_TIMEOUT);
});

describe("removals are durable too", () => {
  test("(8) UNSUBSCRIBE, a Clean Session discard and a v5 DISCONNECT with Session Expiry 0 stay done after kill -9", async () => {
    const data = join(dir, "s8.db");
    let b = await spawnBroker(data);
    // A: subscribes two filters, then unsubscribes one.
    const [a] = await connect(b.port, 4, { clientId: "s8-a", clean: false });
    expect(await subscribe(a, 1, [{ topic: "s8/keep", qos: 1 }, { topic: "s8/drop", qos: 1 }])).toEqual([1, 1]);
    a.send({ cmd: "unsubscribe", messageId: 2, unsubscriptions: ["s8/drop"] });
    expect((await a.nextOf("unsuback", 5000)).messageId).toBe(2);
    await disconnect(a);
    // B: a persistent session, then discarded by a Clean Session connection.
    const [b1] = await connect(b.port, 4, { clientId: "s8-b", clean: false });
    expect(await subscribe(b1, 1, [{ topic: "s8/keep", qos: 1 }])).toEqual([1]);
    await disconnect(b1);
    const [b2, ackB2] = await connect(b.port, 4, { clientId: "s8-b", clean: true });
    expect(ackB2.sessionPresent).toBe(false);
    await disconnect(b2);
    // C: v5, expiry 3600, ended by DISCONNECT with Session Expiry Interval 0.
    const [c1] = await connect(b.port, 5, { clientId: "s8-c", clean: true, properties: { sessionExpiryInterval: 3600 } });
    expect(await subscribe(c1, 1, [{ topic: "s8/keep", qos: 1 }])).toEqual([1]);
    c1.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await c1.waitClose(2000);
    c1.destroy();
    await Bun.sleep(100); // let the broker finish those closes (each committed in its own batch)
    await b.kill9();

    b = await spawnBroker(data);
    const [pub] = await connect(b.port, 4, { clientId: "s8-pub", clean: true });
    await publishAcked(pub, "s8/drop", "dropped", 1, 1);
    await publishAcked(pub, "s8/keep", "kept", 1, 2);
    const [a2, ackA] = await connect(b.port, 4, { clientId: "s8-a", clean: false });
    expect(ackA.sessionPresent).toBe(true);
    expect(payloads(await receive(a2, (g) => g.length >= 1, 5000, 400))).toEqual(["kept"]);
    const [, ackB] = await connect(b.port, 4, { clientId: "s8-b", clean: false });
    expect(ackB.sessionPresent).toBe(false);
    const [, ackC] = await connect(b.port, 5, { clientId: "s8-c", clean: false, properties: { sessionExpiryInterval: 3600 } });
    expect(ackC.sessionPresent).toBe(false);
  }, TEST_TIMEOUT);

});

describe("deliveries acknowledged before their commit are never written", () => {
  test("(9) kill -9 while a persistent subscriber acknowledges as fast as it can (deliveries it acknowledged before the commit are never written): every PUBACKed message reached the subscriber before the kill or arrives after the restart", async () => {
    const data = join(dir, "s9.db");
    let b = await spawnBroker(data);
    const [sub] = await connect(b.port, 4, { clientId: "s9-sub", clean: false });
    expect(await subscribe(sub, 1, [{ topic: "c9/#", qos: 1 }])).toEqual([1]);
    const before = new Set<number>();
    // The subscriber reads and acknowledges everything at once.
    let subDone = false;
    const subLoop = (async () => {
      while (!subDone) {
        let p: Packet;
        try {
          p = await sub.next(5000);
        } catch {
          return;
        }
        if (p.cmd !== "publish") continue;
        before.add(Number(Buffer.from(p.payload).toString().slice(2)));
        sub.send({ cmd: "puback", messageId: p.messageId });
      }
    })();
    // A publisher with 200 in flight: busy enough that commits are deferred (lib/batch.ts).
    const N = 20_000;
    const WINDOW = 200;
    const killAt = 2000 + Math.floor(Math.random() * 8000);
    const [pub] = await connect(b.port, 4, { clientId: "s9-pub", clean: true });
    const ackedSeqs = new Set<number>();
    let sent = 0;
    let killed: Promise<void> | null = null;
    const sendNext = () => {
      const seq = sent++;
      pub.send({ cmd: "publish", topic: `c9/t${seq % 5}`, payload: Buffer.from(`m-${seq}`), qos: 1, messageId: (seq % 65535) + 1, retain: false, dup: false });
    };
    while (sent < WINDOW) sendNext();
    for (;;) {
      let p: Packet;
      try {
        p = await pub.next(10_000);
      } catch {
        break;
      }
      if (p.cmd !== "puback") continue;
      ackedSeqs.add((p.messageId as number) - 1); // N < 65535: the packet id is seq + 1
      if (killed === null && ackedSeqs.size >= killAt) {
        killed = b.kill9();
        continue;
      }
      if (killed === null && sent < N) sendNext();
    }
    expect(killed).not.toBeNull();
    await killed;
    subDone = true;
    await subLoop;
    sub.destroy();

    b = await spawnBroker(data);
    const [sub2] = await connect(b.port, 4, { clientId: "s9-sub", clean: false });
    const after = await receive(sub2, () => true, 20_000, 1000);
    const have = new Set([...before, ...after.map((g) => Number(g.payload.slice(2)))]);
    const missing = [...ackedSeqs].filter((a) => !have.has(a));
    expect({ killAt, acked: ackedSeqs.size, missing: missing.slice(0, 10) }).toEqual({ killAt, acked: ackedSeqs.size, missing: [] });
    await disconnect(sub2);
  }, 60_000);
});

describe("graceful restart (SIGTERM)", () => {
  test('(7) "interval" durability (flushIntervalMs 10000): SIGTERM then restart loses nothing', async () => {
    const data = join(dir, "s7.db");
    const config = join(dir, "s7.json");
    writeFileSync(config, JSON.stringify({ persistence: { durability: "interval", flushIntervalMs: 10_000 } }));
    let b = await spawnBroker(data, config);
    const end = Date.now() + 5000;
    while (!b.stdout().includes("durability:") && Date.now() < end) await Bun.sleep(20);
    expect(b.stdout()).toContain("(durability: interval)");
    const [sub] = await connect(b.port, 4, { clientId: "s7-sub", clean: false });
    expect(await subscribe(sub, 1, [{ topic: "s7/#", qos: 1 }])).toEqual([1]);
    await disconnect(sub);
    const [pub] = await connect(b.port, 4, { clientId: "s7-pub", clean: true });
    for (let i = 0; i < 100; i++) await publishAcked(pub, "s7/t", `g-${pad(i)}`, 1, i + 1);

    b.proc.kill("SIGTERM");
    expect(await b.proc.exited).toBe(0);
    procs.delete(b.proc);
    pub.destroy();

    b = await spawnBroker(data, config);
    const [sub2, ack] = await connect(b.port, 4, { clientId: "s7-sub", clean: false });
    expect(ack.sessionPresent).toBe(true);
    const got = await receive(sub2, (g) => g.length >= 100, 10_000, 400);
    expect(payloads(got)).toEqual(range(100, (i) => `g-${pad(i)}`));
    for (const g of got) expect(g.dup).toBe(false);
  }, TEST_TIMEOUT);
});
