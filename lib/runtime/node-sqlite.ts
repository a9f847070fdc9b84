/**
 * @module runtime/node-sqlite
 * An `SqlDriver` on `node:sqlite` (`DatabaseSync`): Deno's SQLite, and one
 * Bun has too (the store contract runs on it under both). It has no query
 * cache and no `transaction()`, which SqliteStore does not use; it refuses
 * `undefined` and booleans, which `SqlValue` rules out; a missing row is
 * `undefined` from `get`, which `SqlStatement` allows.
 */
import { DatabaseSync } from "node:sqlite";
import type { SqlDatabase, SqlDriver, SqlStatement } from "./types.ts";

/** SQLITE_BUSY's primary result code. */
const SQLITE_BUSY = 5;

function openDatabase(path: string): SqlDatabase {
  const db = new DatabaseSync(path);
  return {
    exec: (sql) => db.exec(sql),
    // StatementSync's run/all/get have the SqlStatement shapes; the cast is only over its wider parameter types.
    prepare: (sql) => db.prepare(sql) as unknown as SqlStatement,
    close: () => db.close(),
  };
}

function isBusy(err: unknown): boolean {
  const e = err as { errcode?: unknown; message?: unknown } | null;
  // errcode is the extended code (SQLITE_BUSY_* variants share the low byte).
  if (typeof e?.errcode === "number") return (e.errcode & 0xff) === SQLITE_BUSY;
  return typeof e?.message === "string" && e.message.includes("database is locked");
}

export const nodeSqlite: SqlDriver = { openDatabase, isBusy };
