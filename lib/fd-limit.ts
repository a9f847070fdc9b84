/**
 * @module fd-limit
 * The process's open-file limit, raised from the soft to the hard limit at
 * start (as nginx's worker_rlimit_nofile or systemd's LimitNOFILE would), and
 * the connection limit derived from it.
 *
 * Why it matters: Bun's listener accepts in native code, and when accept(2)
 * fails with EMFILE it returns to the event loop with the connection still
 * pending, so the loop wakes again at once: 100% CPU and no answer for the
 * client. The broker therefore never lets its connections reach the limit:
 * it keeps a margin for the database, the listeners and Bun's own
 * descriptors, and sheds sockets beyond maxConnections at accept (a reset).
 */
import { log } from "./log.ts";

/** Descriptors kept free for the store (db, WAL), listeners, stdio and Bun's own (epoll, timers, DNS). */
export const FD_MARGIN = 64;

export interface FdLimit {
  soft: number;
  hard: number;
  /** The soft limit before it was raised. */
  before: number;
}

/** Raise the soft open-file limit to the hard limit; null when the platform gives no access (then nothing is derived). */
export function raiseFdLimit(): FdLimit | null {
  try {
    return raise();
  } catch (err) {
    log.debug("cannot read or raise the open-file limit", { err });
    return null;
  }
}

/**
 * The connection limit in force: the configured one, or the open-file limit
 * minus FD_MARGIN. A configured value the descriptor limit cannot carry is
 * lowered, with a warning, rather than let accept() spin at the limit.
 */
export function connectionLimit(configured: number | undefined, fd: FdLimit | null): number {
  if (fd === null) return configured ?? 100_000;
  const fit = Math.max(1, fd.soft - FD_MARGIN);
  if (configured === undefined) return fit;
  if (configured > fit) {
    log.warn("limits.maxConnections is more than the open-file limit allows; lowered", { configured, limit: fit, nofile: fd.soft });
    return fit;
  }
  return configured;
}

const RLIMIT_NOFILE = process.platform === "darwin" ? 8 : 7;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

function raise(): FdLimit | null {
  if (process.platform !== "linux" && process.platform !== "darwin") return null;
  // bun:ffi is loaded lazily: only here, and only on platforms that have setrlimit.
  const { dlopen, ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const libc = dlopen(process.platform === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
    getrlimit: { args: ["i32", "ptr"], returns: "i32" },
    setrlimit: { args: ["i32", "ptr"], returns: "i32" },
  });
  try {
    const rl = new BigUint64Array(2); // struct rlimit { rlim_t cur, max } (64-bit)
    if (libc.symbols.getrlimit(RLIMIT_NOFILE, ptr(rl)) !== 0) return null;
    const before = rl[0]!;
    let hard = rl[1]!;
    // macOS reports RLIM_INFINITY but refuses a soft limit above OPEN_MAX (10240).
    if (process.platform === "darwin" && hard > 10240n) hard = 10240n;
    if (hard === RLIM_INFINITY) hard = 1n << 20n;
    if (before < hard) {
      rl[0] = hard;
      if (libc.symbols.setrlimit(RLIMIT_NOFILE, ptr(rl)) !== 0) rl[0] = before;
    }
    const soft = Number(rl[0]!);
    if (soft !== Number(before)) log.debug("open-file limit raised", { from: Number(before), to: soft });
    return { soft, hard: Number(rl[1]!), before: Number(before) };
  } finally {
    libc.close();
  }
}
