/**
 * @module version
 * The broker's version, read from package.json at build time (bun bundles
 * the JSON into the compiled executable), for --version, the start-up line,
 * $SYS/broker/version and /metrics.
 */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
