/**
 * One broker per database. Two `bun broker.ts --data FILE` processes on the
 * same file would each restore the same sessions and then overwrite each
 * other's state, so the second one must refuse to start: exit 1 with one
 * line naming the file and the pid of the broker that has it, and never
 * print "listening". The exclusion is the OS's lock on the database (it
 * dies with the process, kill -9 included); the `FILE.lock` pid file is only
 * a label for the message and must never block a start by itself.
 *
 * Also the embedded use: `new SqliteStore(path)` twice in one process.
 *
 * Real processes and real TCP; waits are generous (the second broker may
 * wait up to ~2 s for the lock before giving up) and nothing asserts speed.
 *
 * BUNMQ_ROOT (default: this repository) selects the broker under test, so
 * the same file can be run against an older checkout.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BrokerProcess, LISTENING, ROOT } from "../helpers/process.ts";
import { RawClient } from "../helpers/raw.ts";

const TEST_TIMEOUT = 40_000;
const dir = mkdtempSync(join(tmpdir(), "bunmq-lock-"));

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** The refusal line, for `file` held by `pid`. */
const inUseLine = (file: string, pid: number) => new RegExp(`^bunmq: database ${escapeRe(file)} is in use by another bunmq \\(pid ${pid}\\); `);

// ---- broker processes ------------------------------------------------------

const Broker = BrokerProcess;
type Broker = BrokerProcess;

const procs = new Set<Broker>();
const clients = new Set<RawClient>();

function spawnBroker(data: string): Broker {
  const proc = Bun.spawn([process.execPath, "broker.ts", "--port", "0", "--data", data, "--log-level", "warn"], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const b = new Broker(proc);
  procs.add(b);
  return b;
}

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients.clear();
  for (const b of procs) {
    if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill(9);
    await b.proc.exited;
  }
  procs.clear();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The broker on `port` serves: subscribe, QoS 1 publish, the message arrives. */
async function expectServes(port: number, tag: string): Promise<void> {
  const sub = await RawClient.connected(port, 4, { clientId: `${tag}-sub` });
  const pub = await RawClient.connected(port, 4, { clientId: `${tag}-pub` });
  clients.add(sub);
  clients.add(pub);
  sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `lock/${tag}`, qos: 1 }] });
  expect((await sub.nextOf("suback", 5000)).granted).toEqual([1]);
  pub.send({ cmd: "publish", topic: `lock/${tag}`, payload: Buffer.from(tag), qos: 1, messageId: 7, retain: false, dup: false });
  expect((await pub.nextOf("puback", 5000)).messageId).toBe(7);
  const got = await sub.nextOf("publish", 5000);
  expect(Buffer.from(got.payload).toString()).toBe(tag);
  sub.destroy();
  pub.destroy();
}

/** A second broker on `file` is refused: exit 1, exactly one stderr line naming the file and `ownerPid`, never listening. */
async function expectRefused(file: string, ownerPid: number): Promise<void> {
  const b = spawnBroker(file);
  // Exit, or a listening line (then it is stopped at once: the check has failed).
  const end = Date.now() + 15_000;
  while (b.proc.exitCode === null && b.proc.signalCode === null && !LISTENING.test(b.stdout) && Date.now() < end) await Bun.sleep(20);
  const listening = LISTENING.test(b.stdout);
  if (listening) b.proc.kill(9);
  const code = listening ? `still running, listening` : await b.exitCode();
  const lines = b.stderr.split("\n").filter((l) => l.trim() !== "");
  expect({ code, stderrLines: lines.length, listening }).toEqual({ code: 1, stderrLines: 1, listening: false });
  expect(lines[0]).toMatch(inUseLine(file, ownerPid));
}

describe("two brokers on one database", () => {
  test("B on A's file exits 1 with one line naming the file and A's pid, never listens; A keeps serving; after A's SIGTERM, B starts", async () => {
    const file = join(dir, "term.db");
    const a = spawnBroker(file);
    const portA = await a.port();
    await expectServes(portA, "a1");

    await expectRefused(file, a.pid);

    // A was not disturbed by the attempt.
    await expectServes(portA, "a2");

    a.proc.kill("SIGTERM");
    expect(await a.exitCode()).toBe(0);
    const b = spawnBroker(file);
    await expectServes(await b.port(), "b1");
  }, TEST_TIMEOUT);

  test("after A is killed with SIGKILL (stale FILE.lock left behind), a new broker starts on the file; the next one is refused naming the new owner", async () => {
    const file = join(dir, "kill.db");
    const a = spawnBroker(file);
    await expectServes(await a.port(), "k1");
    a.proc.kill(9);
    await a.proc.exited;
    // kill -9 runs no cleanup; whatever the broker left, make sure a pid file
    // naming the dead owner is there, as after a real crash.
    writeFileSync(`${file}.lock`, `${a.pid}\n`);
    expect(existsSync(`${file}.lock`)).toBe(true);

    const c = spawnBroker(file);
    await expectServes(await c.port(), "k2");
    // The lock really is held again, by the new broker (not the dead pid of the file).
    await expectRefused(file, c.pid);
  }, TEST_TIMEOUT);
});

describe("embedded: SqliteStore twice in one process", () => {
  test("the second new SqliteStore(path) throws StoreError naming the file and this pid; the first still holds the lock; after close() it opens", async () => {
    const { SqliteStore, StoreError } = (await import(join(ROOT, "lib/store-sqlite.ts"))) as typeof import("../../lib/store-sqlite.ts");
    const file = join(dir, "embedded.db");
    const first = new SqliteStore(file);
    let firstOpen = true;
    let third: InstanceType<typeof SqliteStore> | undefined;
    try {
      let err: unknown;
      try {
        const second = new SqliteStore(file);
        second.close(); // not reached when the lock works
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StoreError);
      expect((err as Error).message).toMatch(new RegExp(`^database ${escapeRe(file)} is in use by another bunmq \\(pid ${process.pid}\\); `));

      // The failed open did not drop the first one's OS lock (closing a second
      // descriptor on a file can release a process's fcntl locks): another
      // process is still refused.
      await expectRefused(file, process.pid);

      first.close();
      firstOpen = false;
      third = new SqliteStore(file);
    } finally {
      third?.close();
      if (firstOpen) first.close();
    }
  }, TEST_TIMEOUT);
});
