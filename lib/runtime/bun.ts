/**
 * @module runtime/bun
 * The Bun runtime: bun:sqlite, Bun.listen / Bun.connect (bun-net.ts),
 * Bun.serve (bun-http.ts), Bun.password and Bun.hash, passed straight
 * through. Only Bun loads this module (runtime/index.ts).
 */
import { Database } from "bun:sqlite";
import { bunServeHttp } from "./bun-http.ts";
import { bunDialTcp, bunListenTcp } from "./bun-net.ts";
import type { Runtime, SqlDatabase, SqlStatement } from "./types.ts";

function openDatabase(path: string): SqlDatabase {
  const db = new Database(path, { create: true });
  return {
    exec: (sql) => void db.exec(sql),
    // Bun's Statement is an SqlStatement as it is (its get gives null for no row).
    prepare: (sql) => db.prepare(sql) as unknown as SqlStatement,
    // close(true) closes now; close(false) would keep the file (and its lock) open until every statement is finalized.
    close: () => db.close(true),
  };
}

export const bunRuntime: Runtime = {
  name: "bun",
  version: Bun.version,
  openDatabase,
  isBusy: (err) => (err as { code?: unknown } | null)?.code === "SQLITE_BUSY",
  listenTcp: bunListenTcp,
  dialTcp: bunDialTcp,
  serveHttp: bunServeHttp,
  verifyPassword: (password, hash) => Bun.password.verify(password, hash).catch(() => false),
  hashPassword: (password) => Bun.password.hash(password, "argon2id"),
  copyBytes: (src, start, end, dst, at) => void src.copy(dst, at, start, end),
  hash: (data) => Bun.hash(data).toString(36),
  tlsClientCertificates: true,
};
