/**
 * @module runtime/deno-password
 * Deno's Bun.password: argon2id hashing and argon2/bcrypt verification on
 * one long-lived worker thread (deno-password-worker.ts), so a slow hash
 * never blocks the event loop. The worker starts on first use and holds the
 * process open only while a request is pending.
 *
 * It is a node:worker_threads Worker, not a web Worker: Deno's web Worker
 * has no unref, and an idle one keeps the process alive; this one is
 * ref'd while requests are pending and unref'd between them.
 */
import { Worker } from "node:worker_threads";
import { log } from "../log.ts";
import type { PasswordOp, PasswordReply, PasswordRequest } from "./deno-password-worker.ts";

type Pending = { resolve(value: boolean | string): void; reject(err: Error): void };

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 0;

function start(): Worker {
  const w = new Worker(new URL("./deno-password-worker.ts", import.meta.url));
  w.unref();
  w.on("message", (reply: PasswordReply) => {
    const p = pending.get(reply.id);
    if (p === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) w.unref();
    if (reply.ok) p.resolve(reply.value);
    else p.reject(new Error(reply.error));
  });
  // A crashed worker (an out-of-memory argon2, say) fails what it held; the next request starts another.
  const fail = (err: Error) => {
    if (worker !== w) return;
    worker = null;
    report(err);
    const held = [...pending.values()];
    pending.clear();
    for (const p of held) p.reject(err);
  };
  w.on("error", fail);
  w.on("exit", (code) => fail(new Error(`the password worker exited (code ${code})`)));
  return w;
}

/** The last worker failure logged: a broker without --allow-read would otherwise log one per CONNECT. */
let reported = "";

function report(err: Error): void {
  if (err.message === reported) return;
  reported = err.message;
  log.error("password worker failed: hashed passwords cannot be checked", { err: err.message });
}

function call(req: PasswordOp): Promise<boolean | string> {
  let w: Worker;
  try {
    w = worker ??= start();
  } catch (err) {
    // Deno without read access to the worker file throws here (NotCapable).
    report(err as Error);
    return Promise.reject(err);
  }
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    if (pending.size === 1) w.ref();
    const msg: PasswordRequest = { ...req, id };
    w.postMessage(msg);
  });
}

/** Does `password` match the argon2id/i/d or bcrypt hash `hash` (as Bun.password writes them)? False for a bad or unknown hash; never rejects. */
export async function denoVerifyPassword(password: string, hash: string): Promise<boolean> {
  if (!hash.startsWith("$argon2") && !hash.startsWith("$2")) return false;
  try {
    return (await call({ op: "verify", password, hash })) === true;
  } catch {
    return false;
  }
}

/** An argon2id PHC string with Bun.password's default parameters (m=65536, t=2, p=1). */
export async function denoHashPassword(password: string): Promise<string> {
  return (await call({ op: "hash", password })) as string;
}
