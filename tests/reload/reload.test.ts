/**
 * Hot reload under live connections (lib/reload.ts, RunningBroker.reload):
 * users and ACLs change without dropping anyone who may stay; a removed
 * user's connection is closed (v5: DISCONNECT 0x87), subscriptions the new
 * rules deny stop receiving without a resubscribe, and a config that cannot
 * be applied is refused as a whole, the old one staying in force.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type ConfigInput, parseConfig } from "../../lib/config.ts";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw.ts";
import { uid } from "../helpers/pool.ts";

const brokers: RunningBroker[] = [];
const raws: RawClient[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  for (const b of brokers.splice(0)) await b.stop();
});

type AclRule = { user?: string; topic: string; action: "publish" | "subscribe" | "all"; allow: boolean };
const U = (name: string) => ({ username: name, password: `${name}-pw` });

/** The config the test broker runs on, for building the reloaded one from. */
function config(input: ConfigInput) {
  return parseConfig({ ...input, persistence: { path: ":memory:" }, listeners: [{ host: "127.0.0.1", port: 0 }], logLevel: "error" });
}

async function start(input: ConfigInput): Promise<RunningBroker> {
  const b = await startTestBroker(input as never);
  brokers.push(b);
  return b;
}

async function raw(b: RunningBroker, version: 4 | 5, user?: string, extra: Record<string, unknown> = {}): Promise<RawClient> {
  const r = await RawClient.connected(b.port, version, { clientId: uid(user ?? "anon"), ...(user ? { username: user, password: Buffer.from(`${user}-pw`) } : {}), ...extra });
  raws.push(r);
  return r;
}

/** CONNECT and return the CONNACK code (v5 reason code, 3.1.1 return code). */
async function connackCode(b: RunningBroker, version: 4 | 5, user: string, password: string): Promise<number> {
  const r = await RawClient.connect(b.port, version);
  raws.push(r);
  r.send({ cmd: "connect", protocolVersion: version, clientId: uid("try"), username: user, password: Buffer.from(password) });
  const ack = await r.next();
  return version === 5 ? ack.reasonCode : ack.returnCode;
}

async function subscribe(r: RawClient, filter: string): Promise<number> {
  r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
  const ack = await r.next();
  return ack.granted[0];
}

async function publish(r: RawClient, topic: string, payload: string, id: number): Promise<void> {
  r.send({ cmd: "publish", topic, payload: Buffer.from(payload), qos: 1, messageId: id });
  const ack = await r.next();
  expect(ack.cmd).toBe("puback");
}

/** PUBLISH payloads `r` receives within `quietMs` of silence, acknowledged. */
async function received(r: RawClient, quietMs = 150): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const p = await r.next(quietMs).catch(() => null);
    if (p === null) return out;
    if (p.cmd !== "publish") continue;
    out.push(`${p.topic}=${p.payload.toString()}`);
    if (p.qos === 1) r.send({ cmd: "puback", messageId: p.messageId });
  }
}

describe("users", () => {
  test("a removed user's live connections close (v5 DISCONNECT 0x87, 3.1.1 closed); the others stay and are served", async () => {
    const before: ConfigInput = { auth: { users: [U("alice"), U("bob"), U("dave")] } };
    const b = await start(before);
    const alice = await raw(b, 5, "alice");
    expect(await subscribe(alice, "news/#")).toBe(1);
    const bob = await raw(b, 5, "bob");
    const dave = await raw(b, 4, "dave");
    const result = b.reload(config({ auth: { users: [U("alice"), U("carol")] } }));
    expect(result.applied).toBe(true);
    expect(result.disconnected).toBe(2);
    expect(result.changes).toContain("users added: carol");
    expect(result.changes).toContain("users removed: bob,dave");
    const d = await bob.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x87);
    await bob.closedPromise;
    await dave.closedPromise;
    // alice was not touched: her connection and subscription go on.
    const pub = await raw(b, 5, "carol");
    await publish(pub, "news/a", "after", 1);
    expect(await received(alice)).toEqual(["news/a=after"]);
    // The new users apply to new CONNECTs: bob is refused (0x86), carol was accepted above.
    expect(await connackCode(b, 5, "bob", "bob-pw")).toBe(0x86);
    expect(await connackCode(b, 4, "dave", "dave-pw")).toBe(4);
  });

  test("a changed password applies to the next CONNECT; the live connection stays", async () => {
    const b = await start({ auth: { users: [U("alice")] } });
    const alice = await raw(b, 5, "alice");
    expect(b.reload(config({ auth: { users: [{ username: "alice", password: "new-pw" }] } })).disconnected).toBe(0);
    expect(await connackCode(b, 5, "alice", "alice-pw")).toBe(0x86);
    expect(await connackCode(b, 5, "alice", "new-pw")).toBe(0);
    alice.send({ cmd: "pingreq" });
    expect((await alice.next()).cmd).toBe("pingresp");
  });

  test("anonymous access turned off: anonymous connections close (v5 0x87); users stay", async () => {
    const b = await start({ auth: { allowAnonymous: true, users: [U("alice")] } });
    const anon = await raw(b, 5);
    const alice = await raw(b, 5, "alice");
    const result = b.reload(config({ auth: { allowAnonymous: false, users: [U("alice")] } }));
    expect(result.changes).toContain("allowAnonymous: false");
    expect((await anon.next()).reasonCode).toBe(0x87);
    await anon.closedPromise;
    alice.send({ cmd: "pingreq" });
    expect((await alice.next()).cmd).toBe("pingresp");
  });
});

describe("ACL", () => {
  const open = [
    { user: "watcher", topic: "#", action: "subscribe", allow: true },
    { topic: "#", action: "publish", allow: true },
  ] satisfies AclRule[];
  const closed: AclRule[] = [{ topic: "secret/#", action: "subscribe", allow: false }, ...open];

  test("a subscription the new rules deny stops receiving at once, without a resubscribe; the rest goes on", async () => {
    const users = [U("watcher"), U("pub")];
    const b = await start({ auth: { users, acl: open } });
    const watcher = await raw(b, 5, "watcher");
    expect(await subscribe(watcher, "#")).toBe(1);
    const pub = await raw(b, 5, "pub");
    await publish(pub, "secret/a", "1", 1);
    expect(await received(watcher)).toEqual(["secret/a=1"]);
    const result = b.reload(config({ auth: { users, acl: closed } }));
    expect(result.changes).toContain("ACL rules: 2 -> 3");
    await publish(pub, "secret/a", "2", 2);
    await publish(pub, "public/a", "3", 3);
    expect(await received(watcher)).toEqual(["public/a=3"]);
    // And a new SUBSCRIBE is checked against the new rules (v5 0x87).
    expect(await subscribe(watcher, "secret/#")).toBe(0x87);
  });

  test("rules removed altogether: access is open again for live sessions", async () => {
    const users = [U("watcher"), U("pub")];
    const b = await start({ auth: { users, acl: closed } });
    const watcher = await raw(b, 5, "watcher");
    await subscribe(watcher, "#");
    const pub = await raw(b, 5, "pub");
    b.reload(config({ auth: { users } }));
    await publish(pub, "secret/a", "x", 1);
    expect(await received(watcher)).toEqual(["secret/a=x"]);
  });
});

describe("refused reloads", () => {
  test("a password file that cannot be read: refused as a whole, the old users and rules stay in force", async () => {
    const b = await start({ auth: { users: [U("alice")], acl: [{ topic: "a/#", action: "all", allow: true }] } });
    const alice = await raw(b, 5, "alice");
    const result = b.reload(config({ auth: { users: [U("carol")], passwordFile: "/nonexistent/bunmq-passwords" } }));
    expect(result.applied).toBe(false);
    expect(result.error).toContain("/nonexistent/bunmq-passwords");
    expect(result.disconnected).toBe(0);
    expect(await connackCode(b, 5, "alice", "alice-pw")).toBe(0);
    expect(await connackCode(b, 5, "carol", "carol-pw")).toBe(0x86);
    alice.send({ cmd: "publish", topic: "b/x", payload: Buffer.from("no"), qos: 1, messageId: 9 });
    expect((await alice.next()).reasonCode).toBe(0x87); // the old ACL still applies
  });

  test("settings that apply at start only are named, not applied", async () => {
    const b = await start({ limits: { maxInflight: 10 } });
    const result = b.reload(config({ limits: { maxInflight: 20 } }));
    expect(result.applied).toBe(true);
    expect(result.restartNeeded).toContain("limits");
    expect(b.broker.limits.maxInflight).toBe(10);
  });
});

test("a session that is offline during the reload is checked with the new rules when it comes back", async () => {
  const users = [U("watcher"), U("pub")];
  const b = await start({ auth: { users, acl: [{ topic: "#", action: "all", allow: true }] } });
  const id = uid("offline-watcher");
  const w = await raw(b, 5, "watcher", { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
  expect(await subscribe(w, "#")).toBe(1);
  w.send({ cmd: "disconnect" });
  await w.closedPromise;
  b.reload(config({ auth: { users, acl: [{ topic: "secret/#", action: "all", allow: false }, { topic: "#", action: "all", allow: true }] } }));
  const pub = await raw(b, 5, "pub");
  await publish(pub, "secret/x", "hidden", 1);
  await publish(pub, "open/x", "shown", 2);
  await waitFor(() => (b.broker.sessions.get(id)?.queue.length ?? 0) >= 1, 2000, "queued for the offline session");
  const back = await raw(b, 5, "watcher", { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
  expect(await received(back)).toEqual(["open/x=shown"]);
});
