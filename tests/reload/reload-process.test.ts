/**
 * Reload triggers on a real broker process (lib/config-watch.ts): a change
 * to the ACL file or the config file on disk, and SIGHUP. A config that
 * fails validation is refused with a log line naming the field, and the old
 * one stays in force; connections survive every reload they may survive.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BrokerProcess } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";
import { uid } from "../helpers/pool.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-reload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cfgPath = join(dir, "bunmq.json");
const aclPath = join(dir, "acl");
const users = [
  { username: "alice", password: "alice-pw" },
  { username: "bob", password: "bob-pw" },
];

/** Write like an editor does: a new file renamed over the old one. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

async function waitStderr(p: BrokerProcess, re: RegExp, count: number, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while ((p.stderr.match(new RegExp(re.source, "g")) ?? []).length < count) {
    if (Date.now() > end) throw new Error(`expected ${count} x ${re} on stderr:\n${p.stderr}`);
    await Bun.sleep(20);
  }
}

async function login(port: number, user: string): Promise<RawClient> {
  return RawClient.connected(port, 5, { clientId: uid(user), username: user, password: Buffer.from(`${user}-pw`) });
}

async function publishRc(c: RawClient, topic: string, id: number): Promise<number> {
  c.send({ cmd: "publish", topic, payload: Buffer.from("x"), qos: 1, messageId: id });
  return (await c.next()).reasonCode ?? 0;
}

test("ACL file change, invalid config refused, config change and SIGHUP: reloaded without dropping live connections", async () => {
  writeFileSync(aclPath, "user alice\ntopic readwrite a/#\n");
  writeFileSync(cfgPath, JSON.stringify({ auth: { users, aclFile: "acl" }, logLevel: "info" }));
  const p = BrokerProcess.start(["--config", cfgPath, "--port", "0", "--data", ":memory:"]);
  try {
    const port = await p.port();
    const alice = await login(port, "alice");
    const bob = await login(port, "bob");
    expect(await publishRc(alice, "b/x", 1)).toBe(0x87);

    // 1. The ACL file changes (Mosquitto format): alice may now publish to b/#.
    replace(aclPath, "user alice\ntopic readwrite a/#\ntopic write b/#\n");
    await waitStderr(p, /INFO config reloaded/, 1);
    expect(await publishRc(alice, "b/x", 2)).toBe(0x10); // allowed; no subscriber

    // 2. A config that fails validation: refused, naming the field; the old config stays.
    replace(cfgPath, JSON.stringify({ auth: { users: [{ username: "alice" }], aclFile: "acl" } }));
    await waitStderr(p, /WARN reload refused; the running config stays/, 1);
    expect(p.stderr).toMatch(/reload refused.*auth\.users\.0\.password/);
    expect(await publishRc(alice, "b/x", 3)).toBe(0x10);
    const bob2 = await login(port, "bob"); // bob is still a user
    bob2.destroy();

    // 3. A valid config without bob: his live connection is closed (0x87), alice's stays.
    replace(cfgPath, JSON.stringify({ auth: { users: users.slice(0, 1), aclFile: "acl" }, logLevel: "info" }));
    const d = await bob.next(5000);
    expect(d.cmd).toBe("disconnect");
    expect(d.reasonCode).toBe(0x87);
    await waitStderr(p, /INFO config reloaded/, 2);
    expect(p.stderr).toMatch(/config reloaded changes="users removed: bob/);

    // 4. SIGHUP reloads too (nothing changed: nothing to do, nobody dropped).
    p.proc.kill("SIGHUP");
    await waitStderr(p, /reloading config trigger=SIGHUP/, 1);
    await waitStderr(p, /INFO config reloaded/, 3);
    alice.send({ cmd: "pingreq" });
    expect((await alice.next()).cmd).toBe("pingresp");
    expect(p.running).toBe(true);
    expect(p.stderr).not.toMatch(/ERROR/);
    alice.destroy();
  } finally {
    await p.kill();
  }
}, 30_000);
