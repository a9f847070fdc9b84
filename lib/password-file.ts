/**
 * @module password-file
 * Password files (auth.passwordFile) in Mosquitto's format, unchanged:
 * `username:hash` per line, `#` comments and blank lines skipped. Hashes:
 * - `$6$salt$hash`: SHA-512 over the password followed by the salt
 *   (mosquitto_passwd -H sha512, Mosquitto 1.6 and earlier);
 * - `$7$iterations$salt$hash`: PBKDF2-HMAC-SHA512, 64 bytes (the default
 *   of mosquitto_passwd since 2.0);
 * - argon2id/i/d and bcrypt, as Bun.password writes them (`bunmq passwd`
 *   writes argon2id), checked by `runtime().verifyPassword`.
 * Salts and hashes are base64. A line Mosquitto would not load is refused
 * with `FILE:LINE: why`, so a broker never starts with half its users.
 * Verification is asynchronous (PBKDF2 and argon2 on worker threads), so a
 * slow hash never blocks the event loop; comparisons are constant-time.
 */
import { createHash, pbkdf2, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { runtime } from "./runtime/index.ts";

export class PasswordFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PasswordFileError";
  }
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The problem with `hash`, or null when it is a hash this module verifies. */
export function hashError(hash: string): string | null {
  if (hash.startsWith("$6$")) {
    const p = hash.split("$");
    if (p.length !== 4 || !B64.test(p[2]!) || !B64.test(p[3]!)) return "a $6$ hash is $6$<salt>$<hash> in base64";
    if (Buffer.from(p[3]!, "base64").length !== 64) return "a $6$ hash is 64 bytes (SHA-512)";
    return null;
  }
  if (hash.startsWith("$7$")) {
    const p = hash.split("$");
    if (p.length !== 5 || !/^[1-9][0-9]{0,8}$/.test(p[2]!) || !B64.test(p[3]!) || !B64.test(p[4]!)) {
      return "a $7$ hash is $7$<iterations>$<salt>$<hash> in base64";
    }
    if (Buffer.from(p[4]!, "base64").length !== 64) return "a $7$ hash is 64 bytes (PBKDF2-SHA512)";
    return null;
  }
  if (/^\$argon2(id|i|d)\$/.test(hash) || /^\$2[aby]\$\d\d\$/.test(hash)) return null;
  return "unknown hash type (expected $6$, $7$, $argon2id$ or bcrypt $2b$; plain-text passwords belong in auth.users)";
}

/** Parse a password file's text; `name` is used in messages. Throws PasswordFileError. */
export function parsePasswordFile(text: string, name: string): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, "");
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const where = `${name}:${i + 1}`;
    const colon = line.indexOf(":");
    if (colon < 0) throw new PasswordFileError(`${where}: expected username:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1).trim();
    if (user === "") throw new PasswordFileError(`${where}: empty user name`);
    if (users.has(user)) throw new PasswordFileError(`${where}: user "${user}" appears twice`);
    const bad = hashError(hash);
    if (bad !== null) throw new PasswordFileError(`${where}: ${bad}`);
    users.set(user, hash);
  }
  return users;
}

/** Read and parse a password file (at start and on reload). Throws PasswordFileError. */
export function readPasswordFile(path: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new PasswordFileError(`cannot read the password file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePasswordFile(text, path);
}

/** Is the stored value a hash (as opposed to a plain-text password from auth.users)? */
export function isHash(stored: string): boolean {
  return stored.startsWith("$") && hashError(stored) === null;
}

/** Does `password` match the hash `stored` (one that passed hashError)? Never rejects. */
export async function verifyHash(stored: string, password: Buffer): Promise<boolean> {
  try {
    if (stored.startsWith("$6$")) {
      const [, , salt, hash] = stored.split("$");
      const d = createHash("sha512").update(password).update(Buffer.from(salt!, "base64")).digest();
      return equal(d, Buffer.from(hash!, "base64"));
    }
    if (stored.startsWith("$7$")) {
      const [, , iter, salt, hash] = stored.split("$");
      const d = await new Promise<Buffer>((resolve, reject) =>
        pbkdf2(password, Buffer.from(salt!, "base64"), Number(iter), 64, "sha512", (err, key) => (err ? reject(err) : resolve(key))),
      );
      return equal(d, Buffer.from(hash!, "base64"));
    }
    return await runtime().verifyPassword(password.toString("utf8"), stored);
  } catch {
    return false;
  }
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
