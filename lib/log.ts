/**
 * @module log
 * A tiny structured logger: `log.warn("msg", { client, err })` prints one line
 * `TIME LEVEL msg key=value ...` to stderr. Levels below the configured one
 * cost one comparison; on hot paths guard with `log.debugEnabled` so the
 * fields object is not even built.
 */

export type Level = "error" | "warn" | "info" | "debug";
const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

let threshold = RANK.info;

export function setLogLevel(level: Level): void {
  threshold = RANK[level];
}

function fmt(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /^[\w.:/@-]*$/.test(v) && v.length > 0 ? v : JSON.stringify(v);
  return String(v);
}

function write(level: Level, msg: string, fields?: Record<string, unknown>): void {
  let line = `${new Date().toISOString()} ${level.toUpperCase()} ${msg}`;
  if (fields) for (const k in fields) if (fields[k] !== undefined) line += ` ${k}=${fmt(fields[k])}`;
  process.stderr.write(line + "\n");
}

export const log = {
  error(msg: string, fields?: Record<string, unknown>) {
    if (threshold >= 0) write("error", msg, fields);
  },
  warn(msg: string, fields?: Record<string, unknown>) {
    if (threshold >= 1) write("warn", msg, fields);
  },
  info(msg: string, fields?: Record<string, unknown>) {
    if (threshold >= 2) write("info", msg, fields);
  },
  debug(msg: string, fields?: Record<string, unknown>) {
    if (threshold >= 3) write("debug", msg, fields);
  },
  get debugEnabled(): boolean {
    return threshold >= 3;
  },
};

/**
 * Run a timer or scheduler callback so that a throw is logged (one line,
 * with the stack) instead of ending the process; the timer keeps running.
 */
export function guarded(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.error(`${what} failed`, { err, stack: (err as Error)?.stack });
  }
}
