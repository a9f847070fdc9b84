#!/usr/bin/env bun
/**
 * bunmq entry point: parse flags, load and validate the config, start the
 * broker, stop cleanly on SIGINT/SIGTERM. No protocol logic lives here.
 */
import { parseArgs } from "node:util";
import { type Config, ConfigError, flagOverrides, loadConfig, type Overrides } from "./lib/config.ts";
import { ConfigWatcher } from "./lib/config-watch.ts";
import { AclFileError } from "./lib/acl-file.ts";
import { PasswordFileError } from "./lib/password-file.ts";
import { passwdMain } from "./lib/passwd-cli.ts";
import { ListenError, listenError } from "./lib/listen-error.ts";
import { guarded, log, setLogLevel } from "./lib/log.ts";
import { openStore, startBroker } from "./lib/server.ts";
import { StoreError } from "./lib/store-sqlite.ts";
import { TlsError } from "./lib/tls-material.ts";

const USAGE = `usage: bunmq [--config FILE] [--host HOST] [--port PORT] [--data PATH] [--log-level LEVEL]
       bunmq passwd FILE USER [--stdin] [-D]

  --config FILE      JSON config (see config.example.json); flags override it
  --host HOST        address of the first listener (default 127.0.0.1;
                     use 0.0.0.0 to listen on all interfaces)
  --port PORT        port of the first listener (default 1883; 0 = any free port)
  --data PATH        SQLite database file (default ./data/bunmq.db);
                     ":memory:" keeps state in memory only
  --log-level LEVEL  error | warn | info | debug (default info)
  --help             print this help

  passwd FILE USER   add or update USER in the password file FILE with an
                     argon2id hash (prompted, or one line of stdin with
                     --stdin); -D deletes USER. Mosquitto's password files
                     ($6$, $7$) are read as they are (auth.passwordFile).

Listeners for TLS (mqtts), WebSockets (ws) and secure WebSockets (wss) are
set in the config file. SIGHUP, or a change to the config, password or ACL
file, reloads users, ACLs and TLS certificates without dropping connections.`;

function main(): void {
  if (process.argv[2] === "passwd") {
    passwdMain(process.argv.slice(3)).then((code) => process.exit(code));
    return;
  }
  let args;
  try {
    args = parseArgs({
      options: {
        config: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "log-level": { type: "string" },
        data: { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`bunmq: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  let config: Config;
  let overrides: Overrides;
  try {
    // Flags are checked first, under their own names (`--port: ...`); the file is then
    // validated on its own before they are applied (lib/config.ts).
    overrides = flagOverrides({ host: args.host, port: args.port, logLevel: args["log-level"], data: args.data });
    config = loadConfig(args.config, overrides);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`bunmq: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  setLogLevel(config.logLevel);
  // Opening the store may fail (newer schema, corrupt file): say so, never half-start.
  let store;
  try {
    store = openStore(config.persistence);
  } catch (err) {
    if (err instanceof StoreError) {
      console.error(`bunmq: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  startBroker(config, store).then(
    (running) => {
      // Handlers first: a signal right after the "listening" line must still stop cleanly.
      // SIGHUP and changes to the config, password or ACL file reload users, ACLs and certificates.
      const watcher = new ConfigWatcher(running, args.config, overrides);
      const shutdown = (signal: string) => {
        log.info("shutting down", { signal });
        watcher.stop();
        running.stop().then(() => process.exit(0));
      };
      process.once("SIGINT", () => shutdown("SIGINT"));
      process.once("SIGTERM", () => shutdown("SIGTERM"));
      process.on("SIGHUP", () => guarded("reload", () => watcher.reload("SIGHUP")));
      for (const a of running.addresses) console.log(`bunmq listening on ${a.url}`);
      console.log(`state: ${running.broker.journal.store.description} (durability: ${config.persistence.durability})`);
      if (running.addresses.every((a) => a.host === "127.0.0.1" || a.host === "::1" || a.host === "localhost")) {
        console.log("(loopback only; use --host 0.0.0.0 to listen on all interfaces)");
      }
    },
    (err: Error) => {
      console.error(`bunmq: ${startFailure(err, config.listeners)}`);
      process.exit(1);
    },
  );
}

/** One line for an error that stopped the start. */
function startFailure(err: Error, listeners: Config["listeners"]): string {
  if (err instanceof StoreError || err instanceof ListenError || err instanceof TlsError) return err.message;
  if (err instanceof PasswordFileError || err instanceof AclFileError) return err.message;
  const failed = failedListener(err, listeners);
  return failed ? listenError(err, failed.host, failed.port).message : `cannot start: ${err.message}`;
}

/**
 * The listener a raw Bun.listen error is about, for as long as the listener
 * code passes Bun's error through unmapped: Bun's error carries `syscall`,
 * `address` and `port` when it has an errno, and otherwise only the message
 * "Failed to listen at HOST".
 */
function failedListener(err: Error, listeners: Config["listeners"]): { host: string; port: number } | undefined {
  const e = err as Error & { syscall?: unknown; address?: unknown; port?: unknown };
  if (e.syscall === "listen" && typeof e.address === "string" && typeof e.port === "number") {
    return listeners.find((l) => l.host === e.address && l.port === e.port) ?? { host: e.address, port: e.port };
  }
  const host = /^Failed to listen at (.+)$/.exec(err.message)?.[1];
  return host === undefined ? undefined : listeners.find((l) => l.host === host);
}

main();
