/**
 * @module store-sqlite
 * `SqliteStore`: the durable `Store` on SQLite (bun:sqlite under Bun,
 * node:sqlite under Deno, through the runtime seam), modelled on mosquitto's
 * persist-sqlite plugin. WAL journal; every statement prepared once; writes
 * go into one open transaction that the broker commits once per batch (group
 * commit, before that batch's acks are written) or, in "interval" mode, on a
 * timer. A payload is stored once in `messages` and referenced by every
 * delivery row and by `retained`; the broker counts references and deletes a
 * message row when the last one goes. A `schema_version` table guards
 * against opening a newer or foreign database.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { log } from "./log.ts";
import type { QoS } from "./message.ts";
import { runtime, type SqlDatabase, type SqlDriver, type SqlStatement, type SqlValue } from "./runtime/index.ts";
import type { Will } from "./session.ts";
import type { Snapshot, Store, StoredDelivery, StoredMessage, StoredSession, StoredSubscription } from "./store.ts";

/** 2: sessions.username (the owner of a session under auth.clientIdOwnership). */
export const SCHEMA_VERSION = 2;

/** How long opening waits for a lock held by a process that is still closing the database. */
const BUSY_TIMEOUT_MS = 2000;

const lockFile = (path: string) => `${path}.lock`;

/** The database cannot be used: newer schema, not a bunmq file, corrupt, unwritable. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreError";
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
  retain INTEGER NOT NULL, props BLOB, expires_at INTEGER NOT NULL, origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, message_id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, version INTEGER NOT NULL, expiry_interval INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, connected INTEGER NOT NULL,
  will_topic TEXT, will_payload BLOB, will_qos INTEGER, will_retain INTEGER, will_props BLOB,
  will_delay INTEGER, will_expiry INTEGER, will_at INTEGER NOT NULL, username TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
  rap INTEGER NOT NULL, rh INTEGER NOT NULL, sub_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, filter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
  client_id TEXT NOT NULL, seq INTEGER NOT NULL, message_id INTEGER NOT NULL, packet_id INTEGER NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, released INTEGER NOT NULL, sub_ids TEXT,
  PRIMARY KEY (client_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbound (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
`;

type Row = Record<string, unknown>;

export interface SqliteOptions {
  synchronous: "normal" | "full";
  /** Called when a write fails; must not return normally (default: log and exit 1). */
  onFatal?: (err: unknown) => never;
  /** The SQLite to open the file with (default: the runtime's; the store contract runs on each). */
  driver?: SqlDriver;
}

function exitOnStorageFailure(err: unknown): never {
  log.error("database write failed; stopping so that nothing is acknowledged without being stored", { err });
  process.exit(1);
}

export class SqliteStore implements Store {
  readonly description: string;
  readonly durable: boolean;
  private readonly db!: SqlDatabase;
  private inTx = false;
  private readonly s: Record<string, SqlStatement>;

  private readonly onFatal: (err: unknown) => never;
  /** The owner-pid file written once the lock is ours (removed on close). */
  private lockPath: string | null = null;
  private readonly driver: SqlDriver;

  constructor(path: string, opts: SqliteOptions = { synchronous: "normal" }) {
    this.description = `sqlite:${path}`;
    this.durable = path !== ":memory:";
    this.onFatal = opts.onFatal ?? exitOnStorageFailure;
    this.driver = opts.driver ?? runtime();
    try {
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
      this.db = this.driver.openDatabase(path);
      this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // One broker per database: the exclusive lock is the OS's (fcntl), held
      // until close or process death (kill -9 included), and in WAL mode it also
      // keeps the WAL index out of shared memory. It must precede journal_mode.
      this.db.exec("PRAGMA locking_mode = EXCLUSIVE");
      this.lock(path);
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec(`PRAGMA synchronous = ${opts.synchronous === "full" ? "FULL" : "NORMAL"}`);
      this.db.exec("PRAGMA foreign_keys = OFF");
      this.checkSchema();
    } catch (err) {
      try {
        this.db?.close();
      } catch {}
      if (err instanceof StoreError) throw err;
      throw new StoreError(`cannot open database ${path}: ${(err as Error).message}`);
    }
    const q = (sql: string) => this.db.prepare(sql);
    this.s = {
      begin: q("BEGIN"),
      commit: q("COMMIT"),
      addMessage: q("INSERT INTO messages (topic, payload, qos, retain, props, expires_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      deleteMessage: q("DELETE FROM messages WHERE id = ?"),
      saveSession: q(
        `INSERT OR REPLACE INTO sessions (client_id, version, expiry_interval, expires_at, connected,
          will_topic, will_payload, will_qos, will_retain, will_props, will_delay, will_expiry, will_at, username)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      deleteSession: q("DELETE FROM sessions WHERE client_id = ?"),
      deleteSessionSubs: q("DELETE FROM subscriptions WHERE client_id = ?"),
      deleteSessionDeliveries: q("DELETE FROM deliveries WHERE client_id = ?"),
      deleteSessionInbound: q("DELETE FROM inbound WHERE client_id = ?"),
      saveSub: q("INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local, rap, rh, sub_id) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      deleteSub: q("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?"),
      setRetained: q("INSERT OR REPLACE INTO retained (topic, message_id) VALUES (?, ?)"),
      deleteRetained: q("DELETE FROM retained WHERE topic = ?"),
      saveDelivery: q(
        "INSERT OR REPLACE INTO deliveries (client_id, seq, message_id, packet_id, qos, retain, released, sub_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      deleteDelivery: q("DELETE FROM deliveries WHERE client_id = ? AND seq = ?"),
      addInbound: q("INSERT OR IGNORE INTO inbound (client_id, packet_id) VALUES (?, ?)"),
      deleteInbound: q("DELETE FROM inbound WHERE client_id = ? AND packet_id = ?"),
    };
  }

  /**
   * Take the database's exclusive lock now (not at the first write), or say
   * who has it: the owner's pid is in `<path>.lock`, written once the lock is
   * ours. The pid file is only a label; the SQLite lock is what excludes.
   */
  private lock(path: string): void {
    try {
      this.db.exec("BEGIN EXCLUSIVE");
      this.db.exec("COMMIT");
    } catch (err) {
      if (!this.driver.isBusy(err)) throw err;
      let owner = "another process";
      try {
        const pid = Number.parseInt(readFileSync(lockFile(path), "utf8"), 10);
        if (pid > 0) owner = `another bunmq (pid ${pid})`;
      } catch {}
      throw new StoreError(`database ${path} is in use by ${owner}; stop it or use another --data path`);
    }
    if (path === ":memory:") return;
    try {
      writeFileSync(lockFile(path), `${process.pid}\n`);
      this.lockPath = lockFile(path);
    } catch (err) {
      log.debug("cannot write the lock owner file", { path: lockFile(path), err });
    }
  }

  private checkSchema(): void {
    const tables = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
    const names = new Set(tables.map((t) => t.name));
    if (names.size > 0 && !names.has("schema_version")) {
      throw new StoreError("the database was not created by bunmq (no schema_version table); refusing to use it");
    }
    if (names.has("schema_version")) {
      const row = this.db.prepare("SELECT max(version) AS v FROM schema_version").get() as { v: number | null };
      const v = row.v ?? 0;
      if (v > SCHEMA_VERSION) {
        throw new StoreError(`the database has schema version ${v}, newer than this bunmq supports (${SCHEMA_VERSION}); upgrade bunmq or use another file`);
      }
      if (v === SCHEMA_VERSION) return;
    }
    this.db.exec("BEGIN");
    try {
      // Version 1 -> 2: a column, added in place (rows keep their data; their owner is unknown, anonymous).
      if (names.has("sessions") && !this.hasColumn("sessions", "username")) this.db.exec("ALTER TABLE sessions ADD COLUMN username TEXT");
      this.db.exec(SCHEMA);
      this.db.exec("DELETE FROM schema_version");
      this.db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(SCHEMA_VERSION);
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }

  private hasColumn(table: string, column: string): boolean {
    return (this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).some((c) => c.name === column);
  }

  /**
   * Run a statement. A storage failure (disk full, I/O error) is fatal: the
   * broker must not go on acknowledging what it can no longer make durable,
   * so it logs and exits; everything committed so far is restored at the
   * next start.
   */
  private exec(st: SqlStatement, ...args: SqlValue[]): { lastInsertRowid: number | bigint } {
    try {
      return st.run(...args);
    } catch (err) {
      return this.onFatal(err);
    }
  }

  private tx(): void {
    if (!this.inTx) {
      this.exec(this.s.begin!);
      this.inTx = true;
    }
  }

  addMessage(m: Omit<StoredMessage, "id">): number {
    this.tx();
    const r = this.exec(this.s.addMessage!, m.topic, m.payload, m.qos, m.retain ? 1 : 0, m.props, m.expiresAt, m.origin);
    return Number(r.lastInsertRowid);
  }

  deleteMessage(id: number): void {
    this.tx();
    this.exec(this.s.deleteMessage!, id);
  }

  saveSession(x: StoredSession): void {
    this.tx();
    const w = x.will;
    this.exec(
      this.s.saveSession!,
      x.clientId,
      x.version,
      x.expiryInterval,
      x.expiresAt,
      x.connected ? 1 : 0,
      w?.topic ?? null,
      w?.payload ?? null,
      w?.qos ?? null,
      w ? (w.retain ? 1 : 0) : null,
      w?.props ?? null,
      w?.delay ?? null,
      w?.expiry ?? null,
      x.willAt,
      x.username ?? null,
    );
  }

  deleteSession(clientId: string): void {
    this.tx();
    this.exec(this.s.deleteSession!, clientId);
    this.exec(this.s.deleteSessionSubs!, clientId);
    this.exec(this.s.deleteSessionDeliveries!, clientId);
    this.exec(this.s.deleteSessionInbound!, clientId);
  }

  saveSubscription(x: StoredSubscription): void {
    this.tx();
    this.exec(this.s.saveSub!, x.clientId, x.filter, x.qos, x.noLocal ? 1 : 0, x.rap ? 1 : 0, x.rh, x.subId);
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.tx();
    this.exec(this.s.deleteSub!, clientId, filter);
  }

  setRetained(topic: string, messageId: number): void {
    this.tx();
    this.exec(this.s.setRetained!, topic, messageId);
  }

  deleteRetained(topic: string): void {
    this.tx();
    this.exec(this.s.deleteRetained!, topic);
  }

  saveDelivery(d: StoredDelivery): void {
    this.tx();
    this.exec(this.s.saveDelivery!, d.clientId, d.seq, d.messageId, d.packetId, d.qos, d.retain ? 1 : 0, d.released ? 1 : 0, d.subIds ? d.subIds.join(",") : null);
  }

  deleteDelivery(clientId: string, seq: number): void {
    this.tx();
    this.exec(this.s.deleteDelivery!, clientId, seq);
  }

  addInbound(clientId: string, packetId: number): void {
    this.tx();
    this.exec(this.s.addInbound!, clientId, packetId);
  }

  deleteInbound(clientId: string, packetId: number): void {
    this.tx();
    this.exec(this.s.deleteInbound!, clientId, packetId);
  }

  commit(): void {
    if (this.inTx) {
      this.exec(this.s.commit!);
      this.inTx = false;
    }
  }

  load(): Snapshot {
    this.commit();
    // Messages nothing references any more (e.g. after a crash between writes) are dropped first.
    this.db.exec(
      "DELETE FROM messages WHERE id NOT IN (SELECT message_id FROM deliveries) AND id NOT IN (SELECT message_id FROM retained)",
    );
    const messages = (this.db.prepare("SELECT * FROM messages ORDER BY id").all() as Row[]).map(
      (r): StoredMessage => ({
        id: r.id as number,
        topic: r.topic as string,
        payload: toBuffer(r.payload)!,
        qos: r.qos as QoS,
        retain: r.retain === 1,
        props: toBuffer(r.props),
        expiresAt: r.expires_at as number,
        origin: r.origin as string,
      }),
    );
    const retained = (this.db.prepare("SELECT topic, message_id FROM retained").all() as Row[]).map((r) => ({
      topic: r.topic as string,
      messageId: r.message_id as number,
    }));
    const sessions = (this.db.prepare("SELECT * FROM sessions").all() as Row[]).map(
      (r): StoredSession => ({
        clientId: r.client_id as string,
        version: r.version as 3 | 4 | 5,
        expiryInterval: r.expiry_interval as number,
        expiresAt: r.expires_at as number,
        connected: r.connected === 1,
        will:
          r.will_topic === null
            ? null
            : ({
                topic: r.will_topic as string,
                payload: toBuffer(r.will_payload) ?? Buffer.alloc(0),
                qos: r.will_qos as QoS,
                retain: r.will_retain === 1,
                props: toBuffer(r.will_props),
                delay: r.will_delay as number,
                expiry: r.will_expiry as number,
              } satisfies Will),
        willAt: r.will_at as number,
        ...(typeof r.username === "string" ? { username: r.username } : {}),
      }),
    );
    const subscriptions = (this.db.prepare("SELECT * FROM subscriptions").all() as Row[]).map(
      (r): StoredSubscription => ({
        clientId: r.client_id as string,
        filter: r.filter as string,
        qos: r.qos as QoS,
        noLocal: r.no_local === 1,
        rap: r.rap === 1,
        rh: r.rh as number,
        subId: r.sub_id as number,
      }),
    );
    const deliveries = (this.db.prepare("SELECT * FROM deliveries ORDER BY client_id, seq").all() as Row[]).map(
      (r): StoredDelivery => ({
        clientId: r.client_id as string,
        seq: r.seq as number,
        messageId: r.message_id as number,
        packetId: r.packet_id as number,
        qos: r.qos as QoS,
        retain: r.retain === 1,
        released: r.released === 1,
        subIds: r.sub_ids === null ? null : String(r.sub_ids).split(",").map(Number),
      }),
    );
    const inbound = (this.db.prepare("SELECT client_id, packet_id FROM inbound").all() as Row[]).map((r) => ({
      clientId: r.client_id as string,
      packetId: r.packet_id as number,
    }));
    return { messages, retained, sessions, subscriptions, deliveries, inbound };
  }

  /**
   * Release the database as a killed process would: the open transaction is
   * rolled back, nothing is committed or checkpointed, the lock file stays.
   * For crash tests inside one process (a real SIGKILL test exists too).
   */
  abandon(): void {
    this.db.close();
  }

  close(): void {
    this.commit();
    try {
      this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      // Closes now, prepared statements or not, and so releases the exclusive lock.
      this.db.close();
      if (this.lockPath !== null) rmSync(this.lockPath, { force: true });
    }
  }
}

function toBuffer(v: unknown): Buffer | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return Buffer.from(String(v));
}
