/**
 * @module runtime/deno-password-worker
 * The worker thread behind deno-password.ts: argon2 and bcrypt in WASM
 * (hash-wasm), verifying and hashing as Bun.password does, one request at a
 * time, each answered with its id. Runs under Deno (and Bun) as a
 * node:worker_threads worker.
 */
import { parentPort } from "node:worker_threads";
import { argon2d, argon2i, argon2id, bcryptVerify } from "hash-wasm";

export type PasswordOp = { op: "verify"; password: string; hash: string } | { op: "hash"; password: string };
export type PasswordRequest = PasswordOp & { id: number };
export type PasswordReply = { id: number; ok: true; value: boolean | string } | { id: number; ok: false; error: string };

const ARGON2 = { id: argon2id, i: argon2i, d: argon2d } as const;
// Bun.password's argon2id default (its own output reads m=65536,t=2,p=1; 32-byte salt and hash).
const MEMORY_KIB = 65536;
const ITERATIONS = 2;
const SALT_BYTES = 32;
const HASH_BYTES = 32;

const PHC = /^\$argon2(id|i|d)\$v=19\$m=(\d{1,8}),t=(\d{1,8}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;
const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

const encoder = new TextEncoder();

async function verify(password: string, hash: string): Promise<boolean> {
  const bytes = encoder.encode(password);
  if (bytes.length === 0) return false; // Bun.password.verify("", h) is false too
  const m = PHC.exec(hash);
  if (m !== null) {
    const expected = fromBase64(m[6]!);
    const actual = await ARGON2[m[1] as keyof typeof ARGON2]({
      password: bytes,
      salt: fromBase64(m[5]!),
      memorySize: Number(m[2]),
      iterations: Number(m[3]),
      parallelism: Number(m[4]),
      hashLength: expected.length,
      outputType: "binary",
    });
    return equal(actual, expected);
  }
  if (BCRYPT.test(hash)) {
    // Bun feeds bcrypt the raw SHA-512 of a password over 72 bytes rather than truncating it.
    const input = bytes.length > 72 ? new Uint8Array(await crypto.subtle.digest("SHA-512", bytes)) : bytes;
    return await bcryptVerify({ password: input, hash });
  }
  return false;
}

async function hash(password: string): Promise<string> {
  if (password === "") throw new Error("password must not be empty"); // as Bun.password.hash
  return await argon2id({
    password: encoder.encode(password),
    salt: crypto.getRandomValues(new Uint8Array(SALT_BYTES)),
    memorySize: MEMORY_KIB,
    iterations: ITERATIONS,
    parallelism: 1,
    hashLength: HASH_BYTES,
    outputType: "encoded",
  });
}

/** Unpadded base64, as PHC strings carry it. Throws on a malformed one. */
function fromBase64(s: string): Uint8Array {
  const bin = atob(s + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

const port = parentPort;
if (port !== null) {
  // Sequential: the WASM work is synchronous anyway, and one at a time bounds memory to one argon2 block array.
  let queue = Promise.resolve();
  port.on("message", (req: PasswordRequest) => {
    queue = queue.then(async () => {
      let reply: PasswordReply;
      try {
        reply = { id: req.id, ok: true, value: req.op === "verify" ? await verify(req.password, req.hash).catch(() => false) : await hash(req.password) };
      } catch (err) {
        reply = { id: req.id, ok: false, error: (err as Error).message ?? String(err) };
      }
      port.postMessage(reply);
    });
  });
}
