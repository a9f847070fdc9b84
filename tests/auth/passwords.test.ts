/**
 * Password files (auth.passwordFile, lib/password-file.ts): Mosquitto's
 * format read unchanged, with $6$ and $7$ hashes made at test time by the
 * real mosquitto_passwd, and Bun.password hashes (argon2id, bcrypt);
 * malformed lines refused with FILE:LINE; end to end with MQTT.js (3.1.1
 * return code 4, v5 0x86 for a wrong password) and mosquitto_pub /
 * mosquitto_sub with credentials and an ACL file; a reload when the file
 * changes. Tools that are missing skip their tests with a printed reason.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePasswordFile, PasswordFileError, readPasswordFile, verifyHash } from "../../lib/password-file.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { RawClient } from "../helpers/raw.ts";
import { uid } from "../helpers/pool.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-passwd-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const havePasswd = Bun.which("mosquitto_passwd") !== null;
const haveClients = Bun.which("mosquitto_pub") !== null && Bun.which("mosquitto_sub") !== null;
if (!havePasswd) console.warn("tests/auth/passwords.test.ts: mosquitto_passwd not found (apt-get install mosquitto): Mosquitto hash tests skipped");
if (!haveClients) console.warn("tests/auth/passwords.test.ts: mosquitto_pub/mosquitto_sub not found (apt-get install mosquitto-clients): their tests skipped");

/** A password file made by the real mosquitto_passwd: `-H sha512` gives $6$, the default $7$. */
function mosquittoFile(name: string, entries: { user: string; password: string; algo?: "sha512" | "sha512-pbkdf2" }[]): string {
  const path = join(dir, name);
  entries.forEach((e, i) => {
    const args = ["mosquitto_passwd", ...(e.algo ? ["-H", e.algo] : []), ...(i === 0 ? ["-c"] : []), "-b", path, e.user, e.password];
    const r = Bun.spawnSync(args, { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${args.join(" ")}: ${r.stderr.toString()}`);
  });
  return path;
}

/** Run a client tool without blocking the event loop (the broker under test runs in this process). */
async function run(args: string[]): Promise<{ exitCode: number; stderr: string }> {
  const p = Bun.spawn(args, { stdout: "ignore", stderr: "pipe" });
  const stderr = await new Response(p.stderr).text();
  return { exitCode: await p.exited, stderr };
}

describe.skipIf(!havePasswd)("Mosquitto hashes (made by mosquitto_passwd)", () => {
  test("$7$ (PBKDF2-SHA512, the default) and $6$ (SHA-512) lines parse and verify; a wrong password does not", async () => {
    const path = mosquittoFile("mixed", [
      { user: "alice", password: "wonderland" },
      { user: "bob", password: "builder", algo: "sha512" },
    ]);
    const users = readPasswordFile(path);
    expect(users.get("alice")).toStartWith("$7$");
    expect(users.get("bob")).toStartWith("$6$");
    // mosquitto_passwd's salts are 12 raw bytes; the hash is SHA-512 (64 bytes).
    for (const u of ["alice", "bob"]) {
      const parts = users.get(u)!.split("$");
      expect(Buffer.from(parts[parts.length - 2]!, "base64").length).toBe(12);
      expect(Buffer.from(parts[parts.length - 1]!, "base64").length).toBe(64);
    }
    expect(await verifyHash(users.get("alice")!, Buffer.from("wonderland"))).toBe(true);
    expect(await verifyHash(users.get("bob")!, Buffer.from("builder"))).toBe(true);
    expect(await verifyHash(users.get("alice")!, Buffer.from("wonderlanD"))).toBe(false);
    expect(await verifyHash(users.get("bob")!, Buffer.from(""))).toBe(false);
  });

  test("a broker on a mosquitto_passwd file: MQTT.js 3.1.1 and 5 accepted with the password, refused without (4 / 0x86)", async () => {
    const path = mosquittoFile("e2e", [
      { user: "alice", password: "pw-7" },
      { user: "bob", password: "pw-6", algo: "sha512" },
    ]);
    const b = await startTestBroker({ auth: { allowAnonymous: false, passwordFile: path } });
    try {
      for (const [user, password] of [["alice", "pw-7"], ["bob", "pw-6"]] as const) {
        for (const protocolVersion of [4, 5] as const) {
          const c = await connectClient(b.port, { protocolVersion, clientId: uid(user), username: user, password });
          await c.end();
          const wrong = await RawClient.connect(b.port, protocolVersion);
          wrong.send({ cmd: "connect", protocolVersion, clientId: uid("wrong"), username: user, password: Buffer.from(`${password}x`) });
          const ack = await wrong.next();
          expect(protocolVersion === 5 ? ack.reasonCode : ack.returnCode).toBe(protocolVersion === 5 ? 0x86 : 4);
          wrong.destroy();
        }
      }
    } finally {
      await b.stop();
    }
  });

  test.skipIf(!haveClients)("mosquitto_pub / mosquitto_sub with -u/-P and a Mosquitto ACL file: allowed, wrong password, denied topic", async () => {
    const pwfile = mosquittoFile("tools", [
      { user: "sensor", password: "s-pw" },
      { user: "reader", password: "r-pw" },
    ]);
    const acl = join(dir, "tools.acl");
    writeFileSync(acl, "user sensor\ntopic write plant/%u/#\npattern write plant/%u/#\n\nuser reader\ntopic read plant/#\n");
    const b = await startTestBroker({ auth: { allowAnonymous: false, passwordFile: pwfile, aclFile: acl } });
    try {
      const base = ["-h", "127.0.0.1", "-p", String(b.port)];
      for (const v of ["mqttv311", "mqttv5"]) {
        const before = b.broker.stats().subscriptions;
        const sub = Bun.spawn(["mosquitto_sub", ...base, "-V", v, "-u", "reader", "-P", "r-pw", "-t", "plant/#", "-q", "1", "-v", "-C", "1", "-W", "5"], { stdout: "pipe", stderr: "pipe" });
        await waitFor(() => b.broker.stats().subscriptions > before, 5000, "mosquitto_sub subscribed");
        // Denied for the sensor (not its level): 3.1.1 gets its PUBACK and the message is dropped; v5 0x87.
        const denied = await run(["mosquitto_pub", ...base, "-V", v, "-u", "sensor", "-P", "s-pw", "-t", "plant/other/t", "-m", "no", "-q", "1"]);
        if (v === "mqttv311") expect(denied.exitCode).toBe(0);
        else expect(denied.stderr).toMatch(/not authori[sz]ed/i);
        const bad = await run(["mosquitto_pub", ...base, "-V", v, "-u", "sensor", "-P", "wrong", "-t", "plant/sensor/t", "-m", "x"]);
        expect(bad.exitCode).not.toBe(0);
        expect(bad.stderr).toMatch(/not authori[sz]ed|bad user name or password/i);
        const ok = await run(["mosquitto_pub", ...base, "-V", v, "-u", "sensor", "-P", "s-pw", "-t", "plant/sensor/t", "-m", `yes ${v}`, "-q", "1"]);
        expect(ok.exitCode).toBe(0);
        expect((await new Response(sub.stdout).text()).trim()).toBe(`plant/sensor/t yes ${v}`);
      }
    } finally {
      await b.stop();
    }
  });
});

/**
 * A $6$ line made without this module or mosquitto_passwd: SHA-512 over the
 * password then a fixed 12-byte salt, as Mosquitto 1.6 computes it. The
 * mosquitto_passwd installed here (2.0) still makes $6$ with `-H sha512`,
 * and the test above reads such lines; no line from an older Mosquitto
 * release is embedded, since none with a known password could be sourced.
 */
const SIX_SALT = Buffer.from("0123456789ab");
const SIX_LINE = `bob:$6$${SIX_SALT.toString("base64")}$${new Bun.CryptoHasher("sha512").update("builder").update(SIX_SALT).digest("base64")}`;

describe("Bun.password hashes and the file format", () => {
  test("argon2id and bcrypt lines verify", async () => {
    const text = `a:${await Bun.password.hash("pa", "argon2id")}\nb:${await Bun.password.hash("pb", { algorithm: "bcrypt", cost: 4 })}\n`;
    const users = parsePasswordFile(text, "f");
    expect(await verifyHash(users.get("a")!, Buffer.from("pa"))).toBe(true);
    expect(await verifyHash(users.get("b")!, Buffer.from("pb"))).toBe(true);
    expect(await verifyHash(users.get("b")!, Buffer.from("pa"))).toBe(false);
  });

  test("comments, blank lines and CRLF are accepted as Mosquitto does", () => {
    const users = parsePasswordFile(`# users\r\n\r\n${SIX_LINE}\r\n   \n`, "f");
    expect([...users.keys()]).toEqual(["bob"]);
    expect(`bob:${users.get("bob")}`).toBe(SIX_LINE);
  });

  test("a $6$ hash computed independently of this module verifies (SHA-512 over password then salt)", async () => {
    const hash = parsePasswordFile(SIX_LINE, "f").get("bob")!;
    expect(await verifyHash(hash, Buffer.from("builder"))).toBe(true);
    expect(await verifyHash(hash, Buffer.from("builder2"))).toBe(false);
  });

  const bad: [string, string, RegExp][] = [
    ["no colon", "# ok\nalice\n", /^f:2: expected username:hash$/],
    ["empty user", ":$6$YQ==$YQ==\n", /^f:1: empty user name$/],
    ["plain text", "alice:secret\n", /^f:1: unknown hash type/],
    ["bad $7$", "alice:$7$101$bad\n", /^f:1: a \$7\$ hash is/],
    ["short $6$", "alice:$6$YWJj$YWJj\n", /^f:1: a \$6\$ hash is 64 bytes/],
    ["$6$ salt not base64", `x:$6$YQ==$${Buffer.alloc(64).toString("base64")}\nalice:$6$no*b64$${Buffer.alloc(64).toString("base64")}\n`, /^f:2: a \$6\$ hash is \$6\$<salt>\$<hash> in base64$/],
    ["$7$ hash not base64", `\n\nalice:$7$101$YWJjZA==$${"%".repeat(88)}\n`, /^f:3: a \$7\$ hash is \$7\$<iterations>\$<salt>\$<hash> in base64$/],
    ["$7$ iterations not a number", `alice:$7$ten$YWJjZA==$${Buffer.alloc(64).toString("base64")}\n`, /^f:1: a \$7\$ hash is/],
    ["unknown $5$ (sha256-crypt)", "alice:$5$abc$def\n", /^f:1: unknown hash type/],
    ["unknown $1$ (md5-crypt), CRLF file", "# c\r\nalice:$1$abc$def\r\n", /^f:2: unknown hash type/],
    ["duplicate", `a:${"$6$YQ==$" + Buffer.alloc(64).toString("base64")}\na:${"$6$YQ==$" + Buffer.alloc(64).toString("base64")}\n`, /^f:2: user "a" appears twice$/],
  ];
  for (const [what, text, re] of bad) {
    test(`refused with FILE:LINE: ${what}`, () => {
      expect(() => parsePasswordFile(text, "f")).toThrow(PasswordFileError);
      expect(() => parsePasswordFile(text, "f")).toThrow(re);
    });
  }

  test("a user in both the config and the file is the config's", async () => {
    const path = join(dir, "both");
    writeFileSync(path, `alice:${await Bun.password.hash("file-pw", "argon2id")}\ncarol:${await Bun.password.hash("c-pw", "argon2id")}\n`);
    const b = await startTestBroker({ auth: { allowAnonymous: false, passwordFile: path, users: [{ username: "alice", password: "config-pw" }] } });
    try {
      const code = async (user: string, pw: string) => {
        const r = await RawClient.connect(b.port, 5);
        r.send({ cmd: "connect", protocolVersion: 5, clientId: uid(user), username: user, password: Buffer.from(pw) });
        const ack = await r.next();
        r.destroy();
        return ack.reasonCode;
      };
      expect(await code("alice", "config-pw")).toBe(0);
      expect(await code("alice", "file-pw")).toBe(0x86);
      expect(await code("carol", "c-pw")).toBe(0);
    } finally {
      await b.stop();
    }
  });

  test("an unreadable file is named", () => {
    const path = join(dir, "unreadable");
    writeFileSync(path, "");
    chmodSync(path, 0o000);
    if (process.getuid?.() === 0) {
      // root reads anything: check a missing file instead.
      expect(() => readPasswordFile(join(dir, "missing"))).toThrow(/cannot read the password file .*missing: ENOENT/);
    } else {
      expect(() => readPasswordFile(path)).toThrow(/cannot read the password file .*unreadable: EACCES/);
    }
    expect(readFileSync(path.replace("unreadable", "both"), "utf8")).toContain("alice:");
  });
});
