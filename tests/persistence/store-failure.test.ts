/**
 * A storage failure is fatal for SqliteStore: it must not return as if the
 * write happened (the broker would acknowledge state that is not stored).
 * The failure handler is injectable; by default it logs and exits 1.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../lib/store-sqlite.ts";

test("a failing write calls the fatal handler instead of returning", () => {
  const dir = mkdtempSync(join(tmpdir(), "bunmq-fail-"));
  const failures: unknown[] = [];
  const store = new SqliteStore(join(dir, "b.db"), {
    synchronous: "normal",
    onFatal: (err) => {
      failures.push(err);
      throw new Error("fatal handler called");
    },
  });
  // Make every message insert fail, as a full disk would.
  (store as unknown as { db: { exec(sql: string): void } }).db.exec(
    "CREATE TRIGGER fail_insert BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END;",
  );
  expect(() =>
    store.addMessage({ topic: "t", payload: Buffer.from("x"), qos: 1, retain: false, props: null, expiresAt: 0, origin: "c" }),
  ).toThrow("fatal handler called");
  expect(failures.length).toBe(1);
  expect(String(failures[0])).toContain("simulated disk full");
  rmSync(dir, { recursive: true, force: true });
});

test("the broker process stops (exit 1) instead of acknowledging a message it could not store", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunmq-fail-"));
  const file = join(dir, "b.db");
  const prep = new SqliteStore(file);
  prep.close();
  const { Database } = await import("bun:sqlite");
  const db = new Database(file);
  db.exec("CREATE TRIGGER fail_insert BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END;");
  db.close();
  const proc = Bun.spawn([process.execPath, "broker.ts", "--port", "0", "--data", file, "--log-level", "warn"], {
    cwd: join(import.meta.dir, "../.."),
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    const reader = proc.stdout.getReader();
    let out = "";
    while (!/listening on mqtt:\/\/[^:]+:(\d+)/.test(out)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`broker exited early: ${out}`);
      out += new TextDecoder().decode(value);
    }
    const port = Number(/listening on mqtt:\/\/[^:]+:(\d+)/.exec(out)![1]);
    const { RawClient } = await import("../helpers/raw.ts");
    const sub = await RawClient.connected(port, 4, { clientId: "fail-sub", clean: false });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "fail/t", qos: 1 }] });
    expect((await sub.nextOf("suback")).granted).toEqual([1]);
    const pub = await RawClient.connected(port, 4, { clientId: "fail-pub" });
    pub.send({ cmd: "publish", topic: "fail/t", payload: Buffer.from("x"), qos: 1, messageId: 7 });
    expect(await proc.exited).toBe(1);
    // No PUBACK reached the publisher: nothing was acknowledged without being stored.
    expect(pub.pending().filter((p) => p.cmd === "puback")).toEqual([]);
    expect(await new Response(proc.stderr).text()).toContain("database write failed");
    pub.destroy();
    sub.destroy();
  } finally {
    proc.kill(9);
    rmSync(dir, { recursive: true, force: true });
  }
}, 20000);
