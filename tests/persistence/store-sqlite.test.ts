/**
 * The Store contract on `SqliteStore` (a temp file per test), plus what only
 * a file can get wrong: a newer schema, a corrupt or foreign file, orphaned
 * message rows, a process killed with a transaction open, and the CLI's
 * answer to a database it cannot use (exit 1, one clear line, no stack trace,
 * never "listening").
 */
import { Database } from "bun:sqlite";
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SCHEMA_VERSION, SqliteStore, StoreError } from "../../lib/store-sqlite.ts";
import { storeContract } from "./store.contract.ts";

const ROOT = resolve(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "bunmq-store-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const newPath = () => join(dir, `s${++n}.db`);
let current = newPath();

storeContract(
  "SqliteStore",
  () => {
    current = newPath();
    return new SqliteStore(current, { synchronous: "normal" });
  },
  () => new SqliteStore(current, { synchronous: "normal" }),
  (st) => (st as SqliteStore).abandon(),
);

/** Stores opened by the tests below; closed after each test. */
const open: SqliteStore[] = [];
const openStore = (path: string, synchronous: "normal" | "full" = "normal") => {
  const s = new SqliteStore(path, { synchronous });
  open.push(s);
  return s;
};
afterEach(() => {
  for (const s of open.splice(0).reverse()) {
    try {
      s.close();
    } catch {}
  }
});

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
}

function tables(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  } finally {
    db.close();
  }
}

/** A bunmq database whose schema_version was raised past what this build supports. */
function newerDatabase(): string {
  const path = newPath();
  new SqliteStore(path).close();
  const db = new Database(path);
  db.exec(`UPDATE schema_version SET version = ${SCHEMA_VERSION + 1}`);
  db.close();
  return path;
}

function randomBytesFile(): string {
  const path = newPath();
  const bytes = Buffer.from(crypto.getRandomValues(new Uint8Array(16384)));
  bytes.write("not a database!!", 0); // never the SQLite header, whatever the random draw
  writeFileSync(path, bytes);
  return path;
}

function foreignDatabase(): string {
  const path = newPath();
  const db = new Database(path, { create: true });
  db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers (name) VALUES ('ada')");
  db.close();
  return path;
}

describe("SqliteStore refuses databases it cannot use (StoreError)", () => {
  test("a database with a higher schema_version: StoreError mentioning 'newer', file left as it was", () => {
    const path = newerDatabase();
    const err = caught(() => openStore(path));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/newer/);
    const db = new Database(path, { readonly: true });
    expect((db.query("SELECT max(version) AS v FROM schema_version").get() as { v: number }).v).toBe(SCHEMA_VERSION + 1);
    db.close();
  });

  test("a file of random bytes: StoreError, file left as it was", () => {
    const path = randomBytesFile();
    const before = readFileSync(path);
    const err = caught(() => openStore(path));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toContain(path);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  test("a SQLite database with unrelated tables: StoreError, and no bunmq table is added to it", () => {
    const path = foreignDatabase();
    const err = caught(() => openStore(path));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/not created by bunmq/);
    expect(tables(path)).toEqual(["customers"]);
  });
});

describe("SqliteStore specifics", () => {
  test("a new file gets the current schema_version; reopening it is fine", () => {
    const path = newPath();
    openStore(path).close();
    open.length = 0;
    const db = new Database(path, { readonly: true });
    expect((db.query("SELECT max(version) AS v FROM schema_version").get() as { v: number }).v).toBe(SCHEMA_VERSION);
    db.close();
    expect(openStore(path).load().sessions).toEqual([]);
  });

  test("the data directory is created if missing", () => {
    const path = join(dir, "nested", "deeper", "b.db");
    const st = openStore(path);
    st.saveSession({ clientId: "c", version: 4, expiryInterval: 60, expiresAt: 0, connected: false, will: null, willAt: 0 });
    st.commit();
    expect(st.load().sessions.length).toBe(1);
  });

  test("load() drops message rows that no delivery and no retained row references", () => {
    const path = newPath();
    const st = openStore(path);
    const msg = (topic: string) => ({ topic, payload: Buffer.from(topic), qos: 1 as const, retain: false, props: null, expiresAt: 0, origin: "p" });
    const byDelivery = st.addMessage(msg("by/delivery"));
    const byRetained = st.addMessage(msg("by/retained"));
    const orphan = st.addMessage(msg("orphan"));
    const orphanedLater = st.addMessage(msg("orphaned/later"));
    st.saveSession({ clientId: "c", version: 4, expiryInterval: 60, expiresAt: 0, connected: false, will: null, willAt: 0 });
    st.saveDelivery({ clientId: "c", seq: 0, messageId: byDelivery, packetId: 0, qos: 1, retain: false, released: false, subIds: null });
    st.setRetained("by/retained", byRetained);
    st.saveDelivery({ clientId: "c", seq: 1, messageId: orphanedLater, packetId: 0, qos: 1, retain: false, released: false, subIds: null });
    st.deleteDelivery("c", 1); // as after a crash between the delivery delete and the message delete
    st.commit();
    const ids = st.load().messages.map((m) => m.id).sort((a, b) => a - b);
    expect(ids).toEqual([byDelivery, byRetained].sort((a, b) => a - b));
    expect(ids).not.toContain(orphan);
    expect(ids).not.toContain(orphanedLater);
    // The rows are gone from the file, not just filtered out.
    st.close();
    open.length = 0;
    const db = new Database(path, { readonly: true });
    expect((db.query("SELECT count(*) AS n FROM messages").get() as { n: number }).n).toBe(2);
    db.close();
  });

  test("synchronous 'full' stores and restores the same way", () => {
    const path = newPath();
    const st = openStore(path, "full");
    const id = st.addMessage({ topic: "t", payload: Buffer.from([1, 2, 3]), qos: 2, retain: true, props: null, expiresAt: 0, origin: "" });
    st.setRetained("t", id);
    st.close();
    open.length = 0;
    const snap = openStore(path, "full").load();
    expect(snap.retained).toEqual([{ topic: "t", messageId: id }]);
    expect([...snap.messages[0]!.payload]).toEqual([1, 2, 3]);
  });

  test("a process killed (SIGKILL) with a transaction open: committed rows survive, uncommitted ones do not", async () => {
    const path = newPath();
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(join(ROOT, "lib/store-sqlite.ts"))});
      const st = new SqliteStore(${JSON.stringify(path)}, { synchronous: "normal" });
      const m = (t) => ({ topic: t, payload: Buffer.from(t), qos: 1, retain: true, props: null, expiresAt: 0, origin: "" });
      st.setRetained("kept", st.addMessage(m("kept")));
      st.saveSession({ clientId: "kept", version: 4, expiryInterval: 60, expiresAt: 0, connected: true, will: null, willAt: 0 });
      st.commit();
      st.setRetained("lost", st.addMessage(m("lost")));
      st.saveSession({ clientId: "lost", version: 4, expiryInterval: 60, expiresAt: 0, connected: true, will: null, willAt: 0 });
      st.deleteRetained("kept");
      process.stdout.write("written\\n");
      process.kill(process.pid, "SIGKILL");
    `;
    const proc = Bun.spawn([process.execPath, "-e", script], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [out, errText, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(errText).toBe("");
    expect(out).toBe("written\n");
    expect(proc.signalCode).toBe("SIGKILL");
    expect(code).not.toBe(0);
    const snap = openStore(path).load();
    expect(snap.retained.map((r) => r.topic)).toEqual(["kept"]);
    expect(snap.sessions.map((s) => s.clientId)).toEqual(["kept"]);
    expect(snap.messages.map((m) => m.topic)).toEqual(["kept"]);
  });
});

describe("CLI: `bun broker.ts --data FILE` with a database it cannot use", () => {
  const cases: [string, () => string, RegExp][] = [
    ["a file of random bytes", randomBytesFile, /cannot open database|not a database/],
    ["a database with a newer schema_version", newerDatabase, /newer/],
    ["a SQLite database with unrelated tables", foreignDatabase, /not created by bunmq/],
  ];
  for (const [what, make, says] of cases) {
    test(`${what}: exit status 1, one clear line on stderr, no stack trace, never "listening"`, async () => {
      const path = make();
      const proc = Bun.spawn([process.execPath, "broker.ts", "--port", "0", "--data", path], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      // If it (wrongly) starts, it would run forever: stop it after a generous wait.
      const guard = setTimeout(() => proc.kill(9), 10_000);
      try {
        const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
        expect(out).not.toContain("listening");
        expect(code).toBe(1);
        const lines = err.trimEnd().split("\n");
        expect(lines.length).toBe(1);
        expect(lines[0]).toMatch(/^bunmq: /);
        expect(lines[0]).toMatch(says);
        expect(err).not.toMatch(/^\s+at /m);
        expect(err).not.toMatch(/StoreError|SQLiteError|\.ts:\d+/);
      } finally {
        clearTimeout(guard);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill(9);
      }
    });
  }
});
