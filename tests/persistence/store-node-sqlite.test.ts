/**
 * The Store contract on `SqliteStore` over node:sqlite (the driver Deno
 * uses, lib/runtime/node-sqlite.ts), run here under Bun, whose node:sqlite
 * is the same SQLite API; tests/deno/store.deno.ts runs the same contract
 * under a real Deno. Plus the driver's own edges: SQLITE_BUSY is recognised
 * (the one-broker-per-file lock), and a missing row reads as "none".
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeSqlite } from "../../lib/runtime/node-sqlite.ts";
import { SqliteStore, StoreError } from "../../lib/store-sqlite.ts";
import { storeContract } from "./store.contract.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-store-node-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const newPath = () => join(dir, `s${++n}.db`);
let current = newPath();
const opts = { synchronous: "normal", driver: nodeSqlite } as const;

storeContract(
  "SqliteStore on node:sqlite",
  () => {
    current = newPath();
    return new SqliteStore(current, opts);
  },
  () => new SqliteStore(current, opts),
  (st) => (st as SqliteStore).abandon(),
);

describe("node:sqlite driver", () => {
  test("a second store on a file another holds is refused as locked (isBusy recognises node:sqlite's SQLITE_BUSY)", () => {
    const path = newPath();
    const first = new SqliteStore(path, opts);
    try {
      let err: unknown;
      try {
        new SqliteStore(path, opts).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StoreError);
      expect((err as Error).message).toContain("is in use by another bunmq");
    } finally {
      first.close();
    }
  }, 10_000);

  test("isBusy: true for SQLITE_BUSY from node:sqlite, false for other SQLite errors", () => {
    const a = nodeSqlite.openDatabase(join(dir, "busy.db"));
    const b = nodeSqlite.openDatabase(join(dir, "busy.db"));
    try {
      a.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x)");
      a.exec("BEGIN EXCLUSIVE");
      let busy: unknown;
      try {
        b.exec("BEGIN EXCLUSIVE");
      } catch (e) {
        busy = e;
      }
      expect(busy).toBeDefined();
      expect(nodeSqlite.isBusy(busy)).toBe(true);
      let syntax: unknown;
      try {
        a.exec("SELEC 1");
      } catch (e) {
        syntax = e;
      }
      expect(syntax).toBeDefined();
      expect(nodeSqlite.isBusy(syntax)).toBe(false);
      a.exec("COMMIT");
    } finally {
      a.close();
      b.close();
    }
  });

  test("get() of no row reads as none; integers come back as numbers, blobs as bytes", () => {
    const db = nodeSqlite.openDatabase(":memory:");
    try {
      db.exec("CREATE TABLE t (i INTEGER, b BLOB)");
      db.prepare("INSERT INTO t VALUES (?, ?)").run(7, new Uint8Array([0, 255]));
      expect(db.prepare("SELECT * FROM t WHERE i = ?").get(8) ?? null).toBe(null);
      const row = db.prepare("SELECT * FROM t").get() as { i: unknown; b: unknown } | undefined;
      expect(row?.i).toBe(7);
      expect([...(row?.b as Uint8Array)]).toEqual([0, 255]);
    } finally {
      db.close();
    }
  });
});
