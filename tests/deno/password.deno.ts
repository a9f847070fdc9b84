/**
 * Run by `deno run -A tests/deno/password.deno.ts` (password.test.ts does):
 * lib/runtime/deno-password.ts under Deno against hashes Bun.password made,
 * one `ok - …` / `not ok - …` line per check, then `HASH <argon2id>` (a
 * Deno-made hash, for the Bun side to verify). Exits non-zero on a failure;
 * on success it exits on its own, which shows the idle worker does not hold
 * the process open.
 */
import { denoHashPassword, denoVerifyPassword } from "../../lib/runtime/deno-password.ts";

// Made by Bun 1.4.4's Bun.password.hash (defaults: argon2 m=65536,t=2,p=1; bcrypt cost 10).
const BUN = {
  argon2id: "$argon2id$v=19$m=65536,t=2,p=1$Gqd5uw8BelyxuP88BK7KoVm+angiP+BaY7yskv7sNQo$lAXY6ERVCYmUI9B9iyfZtLnWmnUybl/XcDyxbYiorXA",
  argon2i: "$argon2i$v=19$m=65536,t=2,p=1$lBv5jQD3tPkzZVPFbHUKdHVY//p04yLS1LYvXp7d7no$iG1/ruO7JREjfx57Uu93NOeHjSVnnHq7D1miNSj5/YI",
  argon2d: "$argon2d$v=19$m=65536,t=2,p=1$BtyURxvKzMPuguq4B/fpSYNnXYzhs5ME1CSh+oDNUuM$GOSnIgH36ljx9HzmiVzoqEXMdvQQKALUfo+NqlzObu8",
  bcrypt: "$2b$10$fiWVp7y5h4I9ybmIpY2qJuJm8MnLcqRBF..n8N/cJiGKDJpPGDpJq",
  // Password "a" x 100: Bun bcrypts the SHA-512 of a password over 72 bytes.
  bcryptLong: "$2b$10$KHwc4miOdmROjapOe/0nPuX2nc/GlBdVXPui5/ZK6PPWBx18Yi2ZC",
  unicode: "$argon2id$v=19$m=65536,t=2,p=1$KhYpHrdZOFmmymEmJtqbMBbkwmXn+BY7sBBtHOB7Zx8$eBuJVWeuRX/Y9PP2d0tNVZeXmRPaKuh61iAVzwBQ7O4",
};
const P = "secret";
const GARBAGE: [string, string][] = [
  ["empty", ""],
  ["not a hash", "garbage"],
  ["argon2 prefix only", "$argon2id$"],
  ["argon2 with non-base64 salt and hash", "$argon2id$v=19$m=65536,t=2,p=1$!!!!$????"],
  ["argon2 with a salt under 8 bytes", "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaGhhc2g"],
  ["argon2 version 16", BUN.argon2id.replace("v=19", "v=16")],
  ["argon2 hash truncated", BUN.argon2id.slice(0, -10)],
  ["bcrypt too short", "$2b$10$short"],
  ["bcrypt $2x$", BUN.bcrypt.replace("$2b$", "$2x$")],
  ["Mosquitto $6$ (not this module's)", "$6$c2FsdA==$aGFzaA=="],
];

let failed = 0;
function check(name: string, ok: boolean, detail = ""): void {
  if (!ok) failed++;
  console.log(`${ok ? "ok" : "not ok"} - ${name}${ok || detail === "" ? "" : ` (${detail})`}`);
}
async function expectVerify(name: string, password: string, hash: string, want: boolean): Promise<void> {
  let got: unknown;
  try {
    got = await denoVerifyPassword(password, hash);
  } catch (err) {
    got = `rejected: ${(err as Error).message}`;
  }
  check(name, got === want, `got ${String(got)}`);
}

await expectVerify("argon2id from Bun: right password", P, BUN.argon2id, true);
await expectVerify("argon2id from Bun: wrong password", "Secret", BUN.argon2id, false);
await expectVerify("argon2i from Bun: right password", P, BUN.argon2i, true);
await expectVerify("argon2d from Bun: right password", P, BUN.argon2d, true);
await expectVerify("argon2d from Bun: wrong password", "secre", BUN.argon2d, false);
await expectVerify("argon2id from Bun: non-ASCII password", "pässwörd ✓ 🔑", BUN.unicode, true);
await expectVerify("argon2id from Bun: empty password", "", BUN.argon2id, false);
await expectVerify("bcrypt from Bun: right password", P, BUN.bcrypt, true);
await expectVerify("bcrypt from Bun: wrong password", "secret!", BUN.bcrypt, false);
await expectVerify("bcrypt $2a$ of the same hash", P, BUN.bcrypt.replace("$2b$", "$2a$"), true);
await expectVerify("bcrypt $2y$ of the same hash", P, BUN.bcrypt.replace("$2b$", "$2y$"), true);
await expectVerify("bcrypt from Bun, password over 72 bytes", "a".repeat(100), BUN.bcryptLong, true);
await expectVerify("bcrypt from Bun, its first 72 bytes only", "a".repeat(72), BUN.bcryptLong, false);
for (const [what, g] of GARBAGE) await expectVerify(`garbage hash: ${what}`, P, g, false);

// Concurrent requests are answered by id, each with its own result.
const many = await Promise.all([
  denoVerifyPassword(P, BUN.argon2id),
  denoVerifyPassword("nope", BUN.bcrypt),
  denoVerifyPassword(P, "garbage"),
  denoVerifyPassword(P, BUN.bcrypt),
  denoVerifyPassword("nope", BUN.argon2i),
]);
check("concurrent verifications keep their own results", JSON.stringify(many) === "[true,false,false,true,false]", JSON.stringify(many));

// The event loop keeps turning while a verification runs (a blocking one would let no tick through).
let ticks = 0;
const timer = setInterval(() => ticks++, 1);
const during = await denoVerifyPassword(P, BUN.argon2id);
clearInterval(timer);
check(`the event loop ticks during a verification (${ticks} ticks)`, during && ticks > 0, `ticks ${ticks}, result ${during}`);

const made = await denoHashPassword(P);
check("denoHashPassword: argon2id with Bun's parameters", /^\$argon2id\$v=19\$m=65536,t=2,p=1\$[A-Za-z0-9+/]{43}\$[A-Za-z0-9+/]{43}$/.test(made), made);
await expectVerify("denoHashPassword's hash verifies", P, made, true);
await expectVerify("denoHashPassword's hash refuses a wrong password", "secreT", made, false);
let emptyRejected = false;
try {
  await denoHashPassword("");
} catch {
  emptyRejected = true;
}
check("denoHashPassword refuses an empty password (as Bun.password.hash)", emptyRejected);
console.log(`HASH ${made}`);

console.log(`${failed === 0 ? "all passed" : `${failed} failed`}`);
if (failed > 0) process.exit(1);
