/**
 * @module bunmq
 * The package entry: `import { startBroker } from "bunmq"`. Importing it
 * starts nothing; see lib/embed.ts and README.md ("Embedding it in a test suite").
 */
export { ConfigError, startBroker, type BrokerStats, type EmbeddedBroker, type EmbedOptions } from "./lib/embed.ts";
export { VERSION } from "./lib/version.ts";
