/**
 * @module runtime
 * The one place `lib/` gets its runtime from. The entry point installs it
 * (`useRuntime(bunRuntime)` in broker.ts, the Deno runtime in broker.deno.ts)
 * before anything listens or opens a database.
 *
 * Under Bun, code that embeds the broker or tests it without an entry point
 * gets the Bun runtime on first use: Bun is the primary runtime, and loading
 * it lazily (a `require` only Bun ever reaches) keeps `bun:sqlite` out of
 * Deno's module graph.
 */
import type { Runtime } from "./types.ts";

export type * from "./types.ts";

let current: Runtime | null = null;

/** Install the runtime (the entry point does, once). */
export function useRuntime(r: Runtime): void {
  current = r;
}

/** The installed runtime; under Bun, Bun's when none was installed. */
export function runtime(): Runtime {
  if (current !== null) return current;
  if (typeof (globalThis as { Bun?: unknown }).Bun === "undefined") {
    throw new Error("no runtime installed: start bunmq through broker.ts (Bun) or broker.deno.ts (Deno)");
  }
  // A synchronous require, so that runtime() stays synchronous; only Bun gets here.
  current = (require("./bun.ts") as typeof import("./bun.ts")).bunRuntime;
  return current;
}
