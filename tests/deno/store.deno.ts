/**
 * Run by `deno test -A --no-check tests/deno/store.deno.ts` (deno.json maps
 * `bun:test` to bun-test-shim.ts): the Store contract
 * (tests/persistence/store.contract.ts) on SqliteStore over node:sqlite
 * under a real Deno, the store bunmq uses there. store.test.ts runs it from
 * `bun test`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "bun:test";
import { nodeSqlite } from "../../lib/runtime/node-sqlite.ts";
import { SqliteStore } from "../../lib/store-sqlite.ts";
import { storeContract } from "../persistence/store.contract.ts";

const dir = mkdtempSync(join(tmpdir(), "bunmq-store-deno-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
let current = "";
const opts = { synchronous: "normal", driver: nodeSqlite } as const;

storeContract(
  "SqliteStore on node:sqlite under Deno",
  () => {
    current = join(dir, `s${++n}.db`);
    return new SqliteStore(current, opts);
  },
  () => new SqliteStore(current, opts),
  (st) => (st as SqliteStore).abandon(),
);
