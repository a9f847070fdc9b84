#!/usr/bin/env bun
/**
 * bunmq under Bun (the primary runtime): install the Bun runtime
 * (bun:sqlite, Bun.listen, Bun.serve, Bun.password) and run the command
 * line (lib/cli.ts). broker.deno.ts is the same for Deno.
 */
import { main } from "./lib/cli.ts";
import { bunRuntime } from "./lib/runtime/bun.ts";
import { useRuntime } from "./lib/runtime/index.ts";

useRuntime(bunRuntime);
main();
