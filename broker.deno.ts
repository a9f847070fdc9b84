/**
 * bunmq under Deno 2: install the Deno runtime (node:sqlite, Deno.listen,
 * Deno.serve, a WASM password worker) and run the same command line as
 * broker.ts. Run it with `deno task start` or
 * `deno run -A --unstable-net broker.deno.ts` (deno.json turns the flag on:
 * TLS listeners bind with SO_REUSEPORT to reload certificates).
 */
import { main } from "./lib/cli.ts";
import { denoRuntime } from "./lib/runtime/deno.ts";
import { useRuntime } from "./lib/runtime/index.ts";

useRuntime(denoRuntime);
main();
