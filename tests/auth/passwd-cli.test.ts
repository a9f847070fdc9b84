/**
 * `bunmq passwd FILE USER [--stdin] [-D]` (lib/passwd-cli.ts) run as a real
 * subprocess, a broker started on the file it wrote, a reload when the file
 * changes under a running broker, and a broker refusing to start on a
 * malformed password or ACL file with one line naming FILE:LINE (exit 1).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readPasswordFile, verifyHash } from "../../lib/password-file.ts";
import { BrokerProcess, ROOT } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";
import { uid } from "../helpers/pool.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function passwd(args: string[], stdin?: string): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn([process.execPath, "broker.ts", "passwd", ...args], {
    cwd: ROOT,
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const stderr = await new Response(p.stderr).text();
  return { code: await p.exited, stderr };
}

async function connackCode(port: number, user: string, password: string): Promise<number> {
  const r = await RawClient.connect(port, 5);
  r.send({ cmd: "connect", protocolVersion: 5, clientId: uid(user), username: user, password: Buffer.from(password) });
  const ack = await r.next();
  r.destroy();
  return ack.reasonCode;
}

describe("bunmq passwd", () => {
  test("adds a user with an argon2id hash, mode 0600; an update keeps the other lines byte for byte; -D deletes", async () => {
    const file = join(dir, "users");
    // A Mosquitto $6$ line (SHA-512 over "old-pw" then a 12-byte salt) and a
    // CRLF comment: neither may change by a byte when another user is written.
    const salt = Buffer.from("fixed-salt12");
    const mosquittoLine = `old:$6$${salt.toString("base64")}$${new Bun.CryptoHasher("sha512").update("old-pw").update(salt).digest("base64")}`;
    writeFileSync(file, `# kept comment\r\n${mosquittoLine}\n`);
    expect((await passwd([file, "alice", "--stdin"], "first\n")).code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    let users = readPasswordFile(file);
    expect(users.get("alice")).toStartWith("$argon2id$");
    expect(await verifyHash(users.get("alice")!, Buffer.from("first"))).toBe(true);

    expect((await passwd([file, "alice", "--stdin"], "second\n")).code).toBe(0);
    const text = readFileSync(file, "utf8");
    expect(text.startsWith(`# kept comment\r\n${mosquittoLine}\nalice:$argon2id$`)).toBe(true);
    users = readPasswordFile(file);
    expect(await verifyHash(users.get("alice")!, Buffer.from("second"))).toBe(true);
    expect(await verifyHash(users.get("alice")!, Buffer.from("first"))).toBe(false);

    expect((await passwd([file, "alice", "-D"])).code).toBe(0);
    expect(readFileSync(file, "utf8")).toBe(`# kept comment\r\n${mosquittoLine}\n`);
    expect(await verifyHash(readPasswordFile(file).get("old")!, Buffer.from("old-pw"))).toBe(true);
  });

  test("refusals are one line with exit 1: a name with ':', an unknown user to delete, no terminal without --stdin", async () => {
    const file = join(dir, "refusals");
    for (const [args, re] of [
      [[file, "a:b", "--stdin"], /^bunmq passwd: a user name may not be empty or contain ':'/],
      [[file, "nobody", "-D"], /^bunmq passwd: user "nobody" is not in /],
      [[file, "carol"], /^bunmq passwd: standard input is not a terminal; use --stdin/],
    ] as [string[], RegExp][]) {
      const r = await passwd(args, "pw\n");
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  test("a broker started on the file accepts the user; a change to the file is picked up live (reload)", async () => {
    const file = join(dir, "live");
    expect((await passwd([file, "alice", "--stdin"], "a-pw\n")).code).toBe(0);
    const cfg = join(dir, "live.json");
    writeFileSync(cfg, JSON.stringify({ auth: { allowAnonymous: false, passwordFile: "live" }, logLevel: "info" }));
    const p = BrokerProcess.start(["--config", cfg, "--port", "0", "--data", ":memory:"]);
    try {
      const port = await p.port();
      expect(await connackCode(port, "alice", "a-pw")).toBe(0);
      expect(await connackCode(port, "bob", "b-pw")).toBe(0x86);
      const alice = await RawClient.connected(port, 5, { clientId: uid("alice"), username: "alice", password: Buffer.from("a-pw") });
      // bunmq passwd replaces the file by rename: the broker sees it through its directory.
      expect((await passwd([file, "bob", "--stdin"], "b-pw\n")).code).toBe(0);
      const end = Date.now() + 5000;
      while (!/config reloaded changes="users added: bob"/.test(p.stderr) && Date.now() < end) await Bun.sleep(20);
      expect(p.stderr).toMatch(/config reloaded changes="users added: bob"/);
      expect(await connackCode(port, "bob", "b-pw")).toBe(0);
      // Deleting alice closes her live connection (v5 DISCONNECT 0x87).
      expect((await passwd([file, "alice", "-D"])).code).toBe(0);
      const d = await alice.next(5000);
      expect(d.cmd).toBe("disconnect");
      expect(d.reasonCode).toBe(0x87);
    } finally {
      await p.kill();
    }
  }, 30_000);
});

describe("a bad password or ACL file stops the start with one line naming FILE:LINE", () => {
  for (const [what, key, text, re] of [
    ["password file", "passwordFile", "alice:$6$YQ==$YQ==\n", /^bunmq: .*bad-file:1: a \$6\$ hash is 64 bytes/],
    ["password file (missing)", "passwordFile", null, /^bunmq: cannot read the password file .*bad-file: ENOENT/],
    ["ACL file (bogus line)", "aclFile", "user alice\ntopic readwrite a/#\nbogus line\n", /^bunmq: .*bad-file:3: expected topic, pattern or user/],
    ["ACL file (topic foo bar baz)", "aclFile", "# c\ntopic foo bar baz\n", /^bunmq: .*bad-file:2: access must be read, write, readwrite or deny/],
  ] as [string, string, string | null, RegExp][]) {
    test(what, async () => {
      const sub = mkdtempSync(join(dir, "bad-"));
      if (text !== null) writeFileSync(join(sub, "bad-file"), text);
      writeFileSync(join(sub, "c.json"), JSON.stringify({ auth: { [key]: "bad-file" } }));
      const p = BrokerProcess.start(["--config", join(sub, "c.json"), "--port", "0", "--data", ":memory:"]);
      expect(await p.exitCode()).toBe(1);
      expect(p.stderr).toMatch(re);
      expect(p.stderr.trim().split("\n")).toHaveLength(1);
      expect(p.stdout).not.toMatch(/listening/);
    });
  }
});
