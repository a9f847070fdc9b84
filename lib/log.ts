/**
 * @module log
 * A tiny structured logger: `log.warn("msg", { client, err })` writes one line
 * `TIME LEVEL msg key=value ...` (or, with format "json", one JSON object
 * `{"time","level","msg",...fields}`) to stderr or to the log file. Levels
 * below the configured one cost one comparison; on hot paths guard with
 * `log.debugEnabled` so the fields object is not even built.
 */
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export type Level = "silent" | "error" | "warn" | "info" | "debug";
const RANK: Record<Level, number> = { silent: -1, error: 0, warn: 1, info: 2, debug: 3 };

let threshold = RANK.info;
let json = false;
/** The log file's descriptor, or -1 for stderr. */
let fd = -1;

export function setLogLevel(level: Level): void {
  threshold = RANK[level];
}

/**
 * Format and destination. A file is opened for appending (created with its
 * directory); it throws when it cannot be, so that a start fails with the
 * reason rather than logging nowhere.
 */
export function configureLog(opts: { level?: Level; format?: "text" | "json"; file?: string | null }): void {
  if (opts.level !== undefined) setLogLevel(opts.level);
  if (opts.format !== undefined) json = opts.format === "json";
  if (opts.file !== undefined) {
    const next = opts.file === null ? -1 : openLogFile(opts.file);
    if (fd >= 0) closeSync(fd);
    fd = next;
  }
}

function openLogFile(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, "a", 0o640);
}

function fmt(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /^[\w.:/@-]*$/.test(v) && v.length > 0 ? v : JSON.stringify(v);
  return String(v);
}

function jsonValue(v: unknown): unknown {
  if (v instanceof Error) return v.message;
  if (typeof v === "bigint") return v.toString();
  return v;
}

function write(level: Level, msg: string, fields?: Record<string, unknown>): void {
  let line: string;
  const time = new Date().toISOString();
  if (json) {
    const o: Record<string, unknown> = { time, level, msg };
    if (fields) for (const k in fields) if (fields[k] !== undefined && !(k in o)) o[k] = jsonValue(fields[k]);
    line = JSON.stringify(o);
  } else {
    line = `${time} ${level.toUpperCase()} ${msg}`;
    if (fields) for (const k in fields) if (fields[k] !== undefined) line += ` ${k}=${fmt(fields[k])}`;
  }
  line += "\n";
  if (fd >= 0) {
    try {
      writeSync(fd, line);
      return;
    } catch {
      // The file went away (disk full, unmounted): fall back to stderr rather than lose the line.
    }
  }
  process.stderr.write(line);
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
