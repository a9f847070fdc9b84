/**
 * ACL over real connections (lib/acl.ts): denied PUBLISH (v5 PUBACK/PUBREC
 * 0x87; 3.1.1 acknowledged and dropped, [MQTT-3.3.5-2]), denied SUBSCRIBE
 * filters (3.1.1 0x80, v5 0x87, per filter), per-topic delivery checks for
 * live, retained and shared deliveries, the will topic, `$SYS`, and
 * %u / %c substitution. MQTT.js (3.1.1 and 5) and raw bytes.
 */
import { describe, expect, test } from "bun:test";
import type mqtt from "mqtt-packet";
import { useTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { uid, usePool } from "../helpers/pool.ts";

const users = [
  { username: "alice", password: "a-pw" },
  { username: "bob", password: "b-pw" },
  { username: "watcher", password: "w-pw" },
  { username: "admin", password: "x-pw" },
];

const acl = [
  { user: "admin", topic: "#", action: "all", allow: true },
  { user: "admin", topic: "$SYS/#", action: "subscribe", allow: true },
  { topic: "users/%u/#", action: "all", allow: true },
  { topic: "clients/%c/#", action: "publish", allow: true },
  { topic: "secret/#", action: "subscribe", allow: false },
  { user: "watcher", topic: "#", action: "subscribe", allow: true },
  { topic: "public/#", action: "all", allow: true },
  { user: "alice", topic: "will/alice", action: "publish", allow: true },
] as const;

const b = useTestBroker({ auth: { allowAnonymous: true, users, acl: acl.map((r) => ({ ...r })) } });
const pool = usePool();

const clients: TestClient[] = [];
async function client(user: string | undefined, version: 4 | 5, extra: Record<string, unknown> = {}): Promise<TestClient> {
  const pw = users.find((u) => u.username === user)?.password;
  const c = await connectClient(b.port, {
    protocolVersion: version,
    clientId: uid(user ?? "anon"),
    ...(user !== undefined ? { username: user, password: pw } : {}),
    ...extra,
  });
  clients.push(c);
  return c;
}

async function endAll(): Promise<void> {
  for (const c of clients.splice(0)) await c.end(true);
}

/**
 * Publish and resolve with the PUBACK/PUBREC reason code the broker sent (0
 * for QoS 0). Read from the packet itself: MQTT.js turns failure codes into
 * errors and hides success codes such as 0x10.
 */
function publishRc(c: TestClient, topic: string, payload: string, qos: 0 | 1 | 2, retain = false): Promise<number> {
  return new Promise((resolve) => {
    if (qos === 0) {
      c.client.publish(topic, payload, { qos, retain }, () => resolve(0));
      return;
    }
    const want = qos === 1 ? "puback" : "pubrec";
    const onPacket = (packet: mqtt.Packet): void => {
      const p = packet as { cmd: string; reasonCode?: number };
      if (p.cmd !== want) return;
      c.client.removeListener("packetreceive", onPacket);
      resolve(p.reasonCode ?? 0);
    };
    c.client.on("packetreceive", onPacket);
    c.client.publish(topic, payload, { qos, retain }, () => {});
  });
}

/** The SUBACK codes, one per filter, read from the packet (MQTT.js rejects when any is a failure). */
function granted(c: TestClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  return new Promise((resolve) => {
    const onPacket = (packet: mqtt.Packet): void => {
      const p = packet as { cmd: string; granted?: number[] };
      if (p.cmd !== "suback") return;
      c.client.removeListener("packetreceive", onPacket);
      resolve([...(p.granted ?? [])]);
    };
    c.client.on("packetreceive", onPacket);
    c.client.subscribe(Object.fromEntries(filters.map((f) => [f, { qos }])), () => {});
  });
}

describe("denied PUBLISH", () => {
  test("v5: QoS 1 gets PUBACK 0x87, QoS 2 PUBREC 0x87 (v5 §3.4.2.1, §3.5.2.1); nothing is delivered and the drop is counted", async () => {
    const watcher = await client("watcher", 5);
    await granted(watcher, ["#"]);
    const alice = await client("alice", 5);
    const before = b.broker.drops.acl;
    expect(await publishRc(alice, "users/bob/x", "no", 1)).toBe(0x87);
    expect(await publishRc(alice, "users/bob/x", "no", 2)).toBe(0x87);
    expect(await publishRc(alice, "users/alice/x", "yes", 1)).toBe(0);
    await watcher.waitMessages(1);
    await Bun.sleep(100);
    expect(watcher.messages.map((m) => m.payload.toString())).toEqual(["yes"]);
    expect(b.broker.drops.acl).toBe(before + 2);
    await endAll();
  });

  test("3.1.1: QoS 1 and 2 are acknowledged normally and dropped ([MQTT-3.3.5-2]); the connection stays", async () => {
    const watcher = await client("watcher", 5);
    await granted(watcher, ["users/#"]);
    const c = await pool.raw(b, 4, "alice311", { username: "alice", password: Buffer.from("a-pw") });
    c.send({ cmd: "publish", topic: "users/bob/x", payload: Buffer.from("q1"), qos: 1, messageId: 1 });
    const ack = await c.next();
    expect(ack.cmd).toBe("puback");
    expect(ack.messageId).toBe(1);
    c.send({ cmd: "publish", topic: "users/bob/x", payload: Buffer.from("q2"), qos: 2, messageId: 2 });
    const rec = await c.next();
    expect(rec.cmd).toBe("pubrec");
    c.send({ cmd: "pubrel", messageId: 2 });
    expect((await c.next()).cmd).toBe("pubcomp");
    c.send({ cmd: "publish", topic: "users/bob/x", payload: Buffer.from("q0"), qos: 0 });
    c.send({ cmd: "publish", topic: "users/alice/ok", payload: Buffer.from("ok"), qos: 1, messageId: 3 });
    expect((await c.next()).messageId).toBe(3);
    await watcher.waitMessages(1);
    await Bun.sleep(100);
    expect(watcher.messages.map((m) => m.topic)).toEqual(["users/alice/ok"]);
    expect(c.closed).toBe(false);
    await endAll();
  });

  test("a denied retained PUBLISH is not retained", async () => {
    const alice = await client("alice", 5);
    await publishRc(alice, "public/../x", "", 0); // (a valid topic with odd levels is just a topic)
    expect(await publishRc(alice, "users/bob/retained", "r", 1, true)).toBe(0x87);
    expect(b.broker.retainedMessage("users/bob/retained")).toBeNull();
    await endAll();
  });

  test("%c: a client may publish under its own Client ID only", async () => {
    const c = await client("bob", 5, { clientId: "bobs-phone" });
    expect(await publishRc(c, "clients/bobs-phone/status", "up", 1)).toBe(0x10); // allowed: no subscriber, so 0x10, not 0x87
    expect(await publishRc(c, "clients/other/status", "up", 1)).toBe(0x87);
    await endAll();
  });
});

describe("denied SUBSCRIBE", () => {
  test("v5: 0x87 for the denied filter only, the others granted (v5 §3.9.3)", async () => {
    const alice = await client("alice", 5);
    expect(await granted(alice, ["users/alice/#", "users/bob/#", "public/news", "secret/+"])).toEqual([1, 0x87, 1, 0x87]);
    await endAll();
  });

  test("3.1.1: 0x80 for the denied filter only ([MQTT-3.9.3-2] return codes)", async () => {
    const alice = await client("alice", 4);
    expect(await granted(alice, ["users/bob/#", "users/alice/+"])).toEqual([0x80, 1]);
    await endAll();
  });

  test("a $share subscription is checked against its filter", async () => {
    const alice = await client("alice", 5);
    expect(await granted(alice, ["$share/g/users/bob/#", "$share/g/users/alice/#"])).toEqual([0x87, 1]);
    await endAll();
  });
});

describe("deliveries are checked per topic", () => {
  test("a # subscriber receives no live message on a topic it may not read (secret/#)", async () => {
    const watcher = await client("watcher", 5);
    expect(await granted(watcher, ["#"])).toEqual([1]);
    const admin = await client("admin", 5);
    await publishRc(admin, "secret/plans", "hidden", 1);
    await publishRc(admin, "public/news", "shown", 1);
    await watcher.waitMessages(1);
    await Bun.sleep(150);
    expect(watcher.messages.map((m) => m.topic)).toEqual(["public/news"]);
    await endAll();
  });

  test("a # subscriber receives no retained message on a topic it may not read", async () => {
    const admin = await client("admin", 5);
    await publishRc(admin, "secret/r1", "hidden", 1, true);
    await publishRc(admin, "public/r1", "shown", 1, true);
    const watcher = await client("watcher", 5);
    await granted(watcher, ["#"]);
    await watcher.waitMessages(1);
    await Bun.sleep(150);
    const topics = watcher.messages.map((m) => m.topic);
    expect(topics).toContain("public/r1");
    expect(topics.some((t) => t.startsWith("secret/"))).toBe(false);
    await publishRc(admin, "secret/r1", "", 1, true);
    await publishRc(admin, "public/r1", "", 1, true);
    await endAll();
  });

  test("a shared group delivers to a member that may read the topic; none that may not", async () => {
    const watcher = await client("watcher", 5);
    const anon = await client(undefined, 5);
    expect(await granted(watcher, ["$share/grp/#"])).toEqual([1]);
    expect(await granted(anon, ["$share/grp/#"])).toEqual([1]); // granted: public/# overlaps #
    const admin = await client("admin", 5);
    for (let i = 0; i < 4; i++) await publishRc(admin, "secret/s", `s${i}`, 1);
    for (let i = 0; i < 4; i++) await publishRc(admin, "public/s", `p${i}`, 1);
    await waitFor(() => watcher.messages.length + anon.messages.length >= 4, 3000, "public deliveries");
    await Bun.sleep(150);
    // secret/s: neither member may read it, so no one gets it; each public/s goes to exactly one member.
    expect([...watcher.messages, ...anon.messages].map((m) => m.payload.toString()).sort()).toEqual(["p0", "p1", "p2", "p3"]);
    await endAll();
  });

  test("v5: a publish whose only matching subscriber may not read it gets PUBACK 0x10 (no matching subscribers)", async () => {
    const watcher = await client("watcher", 5);
    await granted(watcher, ["#"]);
    const admin = await client("admin", 5);
    expect(await publishRc(admin, "secret/only-watcher", "x", 1)).toBe(0x10);
    await endAll();
  });
});

describe("$SYS and the will", () => {
  test("$SYS/# is readable only where a rule allows it: refused for a # reader, granted for admin", async () => {
    const watcher = await client("watcher", 5);
    expect(await granted(watcher, ["$SYS/#"])).toEqual([0x87]);
    const admin = await client("admin", 5);
    expect(await granted(admin, ["$SYS/#"])).toEqual([1]);
    await endAll();
  });

  test("the will topic is checked when the will would be published: allowed fires, denied is dropped and counted", async () => {
    const watcher = await client("watcher", 5);
    await granted(watcher, ["will/#"]);
    const okId = uid("will-ok");
    const ok = await pool.raw(b, 5, "will-ok", { clientId: okId, username: "alice", password: Buffer.from("a-pw"), will: { topic: "will/alice", payload: Buffer.from("gone"), qos: 1 } });
    const deniedId = uid("will-denied");
    const denied = await pool.raw(b, 5, "will-no", { clientId: deniedId, username: "bob", password: Buffer.from("b-pw"), will: { topic: "will/bob", payload: Buffer.from("gone"), qos: 1 } });
    const before = b.broker.drops.acl;
    ok.destroy();
    denied.destroy();
    await watcher.waitMessages(1);
    await waitFor(() => b.broker.drops.acl === before + 1, 2000, "the denied will counted");
    await Bun.sleep(100);
    expect(watcher.messages.map((m) => m.topic)).toEqual(["will/alice"]);
    await endAll();
  });
});
