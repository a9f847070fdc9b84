/**
 * @module runtime/deno
 * The Deno runtime: node:sqlite (node-sqlite.ts), Deno.listen /
 * Deno.listenTls / Deno.connect (deno-net.ts), Deno.serve with WebSocket
 * upgrade (deno-http.ts), argon2 and bcrypt on a WASM worker
 * (deno-password.ts). Only broker.deno.ts loads this module.
 *
 * Bun.hash (wyhash) has no Deno twin; the echo filter only needs a fast
 * hash that is stable within one process, so two 32-bit lanes do.
 */
import { Deno } from "./deno-globals.ts";
import { denoServeHttp } from "./deno-http.ts";
import { denoDialTcp, denoListenTcp } from "./deno-net.ts";
import { denoHashPassword, denoVerifyPassword } from "./deno-password.ts";
import { nodeSqlite } from "./node-sqlite.ts";
import type { Runtime } from "./types.ts";

/** Two independent 32-bit lanes (FNV-1a, and a murmur-style multiply) as one 64-bit fingerprint in base-36 text. */
function hash64(data: Uint8Array): string {
  // Math.imul keeps both lanes in int32 arithmetic: a bridge hashes every payload it forwards, so no BigInt here.
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ data.length;
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return `${(a >>> 0).toString(36)}.${(b >>> 0).toString(36)}`;
}

export const denoRuntime: Runtime = {
  name: "deno",
  version: Deno.version.deno,
  openDatabase: nodeSqlite.openDatabase,
  isBusy: nodeSqlite.isBusy,
  listenTcp: denoListenTcp,
  dialTcp: denoDialTcp,
  serveHttp: denoServeHttp,
  verifyPassword: denoVerifyPassword,
  hashPassword: denoHashPassword,
  copyBytes: (src, start, end, dst, at) => dst.set(new Uint8Array(src.buffer, src.byteOffset + start, end - start), at),
  hash: hash64,
  tlsClientCertificates: false,
};
