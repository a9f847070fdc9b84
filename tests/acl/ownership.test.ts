/**
 * Client ID ownership (auth.clientIdOwnership) and per-user Client ID
 * patterns (users[].clientIdPattern, auth.clientIdPattern). A session
 * remembers the user that created it; a CONNECT with its Client ID and
 * another user name is refused (v5 CONNACK 0x87, 3.1.1 return code 5) before
 * any takeover, so the live connection stays ([MQTT-3.1.4-2] 3.1.1 /
 * [MQTT-3.1.4-3] 5 apply only to an accepted CONNECT). The owner survives a
 * restart with the session (SQLite, a SIGKILLed broker process).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestBroker, useTestBroker } from "../helpers/broker.ts";
import { BrokerProcess } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";
import { uid, usePool } from "../helpers/pool.ts";

const users = [
  { username: "alice", password: "a-pw" },
  { username: "bob", password: "b-pw" },
  { username: "carol", password: "c-pw", clientIdPattern: "%u-*" },
];
const pw = (u: string) => Buffer.from(users.find((x) => x.username === u)!.password);

const b = useTestBroker({ auth: { allowAnonymous: true, users, clientIdOwnership: true } });
const pool = usePool();

/** CONNECT on a fresh socket and return the CONNACK code (v5 reasonCode, 3.1.1 returnCode) and the client. */
async function connect(port: number, version: 4 | 5, clientId: string, user?: string, extra: Record<string, unknown> = {}) {
  const c = await RawClient.connect(port, version);
  pool.track(c, "", b);
  c.send({ cmd: "connect", protocolVersion: version, clientId, clean: true, ...(user ? { username: user, password: pw(user) } : {}), ...extra });
  const ack = await c.next();
  expect(ack.cmd).toBe("connack");
  return { c, code: (version === 5 ? ack.reasonCode : ack.returnCode) as number, present: ack.sessionPresent as boolean };
}

/** Is `c` still connected and served? (a PINGREQ answered) */
async function alive(c: RawClient): Promise<boolean> {
  if (c.closed) return false;
  c.send({ cmd: "pingreq" });
  const p = await c.next(1000).catch(() => null);
  return p?.cmd === "pingresp";
}

describe("Client ID ownership", () => {
  test("v5: another user's CONNECT with a live Client ID gets CONNACK 0x87; not a takeover, the owner stays", async () => {
    const id = uid("dev");
    const owner = await connect(b.port, 5, id, "alice");
    expect(owner.code).toBe(0);
    const intruder = await connect(b.port, 5, id, "bob");
    expect(intruder.code).toBe(0x87);
    await intruder.c.closedPromise;
    expect(await alive(owner.c)).toBe(true);
    expect(b.broker.sessions.get(id)?.username).toBe("alice");
  });

  test("3.1.1: refused with return code 5 (not authorized), the owner stays", async () => {
    const id = uid("dev311");
    const owner = await connect(b.port, 4, id, "alice");
    const intruder = await connect(b.port, 4, id, "bob");
    expect(intruder.code).toBe(5);
    await intruder.c.closedPromise;
    expect(await alive(owner.c)).toBe(true);
  });

  test("an anonymous client cannot take a user's Client ID, nor a user an anonymous one's", async () => {
    const a = uid("anon-owned");
    const anon = await connect(b.port, 5, a);
    expect((await connect(b.port, 5, a, "alice")).code).toBe(0x87);
    expect(await alive(anon.c)).toBe(true);
    const u = uid("user-owned");
    const owner = await connect(b.port, 5, u, "bob");
    expect((await connect(b.port, 5, u)).code).toBe(0x87);
    expect(await alive(owner.c)).toBe(true);
  });

  test("the same user takes over as usual (v5 DISCONNECT 0x8E to the old connection, [MQTT-3.1.4-3])", async () => {
    const id = uid("same");
    const first = await connect(b.port, 5, id, "alice");
    const second = await connect(b.port, 5, id, "alice");
    expect(second.code).toBe(0);
    const d = await first.c.next();
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x8e);
  });

  test("an offline session keeps its owner: another user is refused, the owner resumes it", async () => {
    const id = uid("offline");
    const first = await connect(b.port, 5, id, "alice", { clean: false, properties: { sessionExpiryInterval: 300 } });
    first.c.send({ cmd: "disconnect" });
    await first.c.closedPromise;
    expect((await connect(b.port, 5, id, "bob", { clean: false })).code).toBe(0x87);
    const back = await connect(b.port, 5, id, "alice", { clean: false, properties: { sessionExpiryInterval: 300 } });
    expect(back.code).toBe(0);
    expect(back.present).toBe(true); // bob's attempt did not touch the session
  });

  test("off (the default): any user's CONNECT takes over, as the protocol requires", async () => {
    const rb = await startTestBroker({ auth: { users } });
    try {
      const id = uid("free");
      const c1 = await RawClient.connected(rb.port, 5, { clientId: id, username: "alice", password: pw("alice") });
      const c2 = await RawClient.connected(rb.port, 5, { clientId: id, username: "bob", password: pw("bob") });
      expect((await c1.next()).reasonCode).toBe(0x8e);
      c2.destroy();
      c1.destroy();
    } finally {
      await rb.stop();
    }
  });
});

describe("Client ID patterns", () => {
  test("users[].clientIdPattern %u-*: carol may use carol-<anything>, nothing else (v5 0x87, 3.1.1 5)", async () => {
    expect((await connect(b.port, 5, "carol-phone", "carol")).code).toBe(0);
    expect((await connect(b.port, 5, "alice-phone", "carol")).code).toBe(0x87);
    expect((await connect(b.port, 4, "carol", "carol")).code).toBe(5);
  });

  test("auth.clientIdPattern applies to every user without their own", async () => {
    const rb = await startTestBroker({ auth: { users, clientIdPattern: "%u/*" } });
    try {
      const ok = await RawClient.connected(rb.port, 5, { clientId: "alice/1", username: "alice", password: pw("alice") });
      const bad = await RawClient.connect(rb.port, 5);
      bad.send({ cmd: "connect", protocolVersion: 5, clientId: "bob/1", username: "alice", password: pw("alice") });
      expect((await bad.next()).reasonCode).toBe(0x87);
      ok.destroy();
      bad.destroy();
    } finally {
      await rb.stop();
    }
  });
});

describe("ownership survives a restart (SQLite, SIGKILL)", () => {
  const dir = mkdtempSync(join(tmpdir(), "bunmq-owner-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the session's user is stored with it: after kill -9 and restart, another user is still refused", async () => {
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, JSON.stringify({ auth: { users, clientIdOwnership: true }, logLevel: "warn" }));
    const args = ["--config", cfg, "--port", "0", "--data", join(dir, "owner.db")];
    const id = uid("durable");
    let p = BrokerProcess.start(args);
    try {
      const owner = await RawClient.connected(await p.port(), 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 }, username: "alice", password: pw("alice") });
      await p.kill();
      owner.destroy();
      p = BrokerProcess.start(args);
      const port = await p.port();
      const intruder = await RawClient.connect(port, 5);
      intruder.send({ cmd: "connect", protocolVersion: 5, clientId: id, clean: false, username: "bob", password: pw("bob") });
      expect((await intruder.next()).reasonCode).toBe(0x87);
      intruder.destroy();
      const back = await RawClient.connect(port, 5);
      back.send({ cmd: "connect", protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 }, username: "alice", password: pw("alice") });
      const ack = await back.next();
      expect(ack.reasonCode).toBe(0);
      expect(ack.sessionPresent).toBe(true);
      back.destroy();
    } finally {
      await p.kill();
    }
  }, 30_000);
});
