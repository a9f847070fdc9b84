/**
 * @module cli
 * The command line, for every runtime: parse flags, load and validate the
 * config (or only check it: --check-config), set up the log, start the
 * broker, stop cleanly on SIGINT/SIGTERM. The entry points (broker.ts for
 * Bun, broker.deno.ts for Deno) install their runtime and call `main`.
 * No protocol logic lives here.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type Config, ConfigError, flagOverrides, loadConfig, type Overrides } from "./config.ts";
import { ConfigWatcher } from "./config-watch.ts";
import { AclFileError, loadAccessControl } from "./acl-file.ts";
import { Authenticator } from "./auth.ts";
import { PasswordFileError } from "./password-file.ts";
import { passwdMain } from "./passwd-cli.ts";
import { ListenError, listenError } from "./listen-error.ts";
import { configureLog, guarded, log } from "./log.ts";
import { openStore, startBroker } from "./server.ts";
import { StoreError } from "./store-sqlite.ts";
import { loadTlsMaterial, TlsError } from "./tls-material.ts";
import { VERSION } from "./version.ts";
import { runtime } from "./runtime/index.ts";

const USAGE = `usage: bunmq [--config FILE] [--host HOST] [--port PORT] [--data PATH]
             [--log-level LEVEL] [--log-format FORMAT] [--log-file PATH]
       bunmq --check-config FILE [flags]
       bunmq passwd FILE USER [--stdin] [-D]
       bunmq --version | --help

  --config FILE        JSON config (see config.example.json and its JSON Schema,
                       config.schema.json); flags override it
  --host HOST          address of the first listener (default 127.0.0.1;
                       use 0.0.0.0 to listen on all interfaces)
  --port PORT          port of the first listener (default 1883; 0 = any free port)
  --data PATH          SQLite database file (default ./data/bunmq.db);
                       ":memory:" keeps state in memory only
  --log-level LEVEL    silent | error | warn | info | debug (default info)
  --log-format FORMAT  text | json (one JSON object per line; default text)
  --log-file PATH      append log lines to PATH instead of writing them to stderr
  --check-config FILE  validate FILE (and the flags) as a start would, print the
                       effective config with every default as JSON (passwords
                       and tokens redacted) and exit 0; or print why not, exit 2
  --version            print the version
  -h, --help           print this help

  passwd FILE USER     add or update USER in the password file FILE with an
                       argon2id hash (prompted, or one line of stdin with
                       --stdin); -D deletes USER. Mosquitto's password files
                       ($6$, $7$) are read as they are (auth.passwordFile).

Listeners for TLS (mqtts), WebSockets (ws), secure WebSockets (wss) and the
HTTP endpoints (http: /healthz, /metrics) are set in the config file. SIGHUP,
or a change to the config, password or ACL file, reloads users, ACLs, the log
level and TLS certificates without dropping connections. SIGINT and SIGTERM
publish the wills of connected clients (shutdown.publishWills) and stop.`;

export function main(): void {
  if (process.argv[2] === "passwd") {
    passwdMain(process.argv.slice(3)).then((code) => process.exit(code));
    return;
  }
  let args;
  try {
    args = parseArgs({
      options: {
        config: { type: "string" },
        "check-config": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        "log-file": { type: "string" },
        data: { type: "string" },
        version: { type: "boolean" },
        help: { type: "boolean", short: "h" },
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
  if (args.version) {
    console.log(`bunmq ${VERSION}`);
    return;
  }
  const checking = args["check-config"] !== undefined;
  if (checking && args.config !== undefined && args.config !== args["check-config"]) {
    console.error("bunmq: --check-config FILE is the config to check; leave out --config");
    process.exit(2);
  }
  const path = args["check-config"] ?? args.config;
  let config: Config;
  let overrides: Overrides;
  try {
    // Flags are checked first, under their own names (`--port: ...`); the file is then
    // validated on its own before they are applied (lib/config.ts).
    overrides = flagOverrides({ host: args.host, port: args.port, logLevel: args["log-level"], data: args.data });
    const logFlags = logOverrides(args["log-format"], args["log-file"]);
    config = withLog(loadConfig(path, overrides), logFlags);
    if (checking) checkFiles(config);
  } catch (err) {
    if (err instanceof ConfigError || (checking && isFileError(err))) {
      console.error(`bunmq: ${(err as Error).message}`);
      process.exit(2);
    }
    throw err;
  }
  if (checking) {
    console.log(JSON.stringify(redacted(config), null, 2));
    return;
  }
  try {
    configureLog({ level: config.logLevel, format: config.logFormat, file: config.logFile ?? null });
  } catch (err) {
    console.error(`bunmq: cannot open log file ${config.logFile}: ${(err as Error).message}`);
    process.exit(1);
  }
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
      const watcher = new ConfigWatcher(running, path, overrides);
      const shutdown = (signal: string) => {
        log.info("shutting down", { signal, publishWills: config.shutdown.publishWills });
        watcher.stop();
        running.stop().then(() => process.exit(0));
      };
      process.once("SIGINT", () => shutdown("SIGINT"));
      process.once("SIGTERM", () => shutdown("SIGTERM"));
      process.on("SIGHUP", () => guarded("reload", () => watcher.reload("SIGHUP")));
      console.log(`bunmq ${VERSION} (${runtime().name} ${runtime().version})`);
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

/**
 * --log-format and --log-file, checked under their own names. They are not
 * config overrides (lib/config.ts knows host, port, log level and data), so a
 * reload keeps the running log destination whatever the file says.
 */
function logOverrides(format: string | undefined, file: string | undefined): Pick<Partial<Config>, "logFormat" | "logFile"> {
  const out: Pick<Partial<Config>, "logFormat" | "logFile"> = {};
  if (format !== undefined) {
    if (format !== "text" && format !== "json") throw new ConfigError("--log-format: expected text or json");
    out.logFormat = format;
  }
  if (file !== undefined) {
    if (file === "") throw new ConfigError("--log-file: expected a file path");
    out.logFile = resolve(file); // relative to the working directory, as typed
  }
  return out;
}

function withLog(config: Config, flags: Pick<Partial<Config>, "logFormat" | "logFile">): Config {
  return Object.keys(flags).length === 0 ? config : Object.freeze({ ...config, ...flags });
}

/** --check-config also reads the files a start would: password file, ACL file, certificates. */
function checkFiles(config: Config): void {
  new Authenticator(config.auth);
  loadAccessControl(config.auth);
  config.listeners.forEach((l, i) => {
    if (l.tls !== undefined) loadTlsMaterial(l.tls, `listeners.${i}`);
  });
}

function isFileError(err: unknown): boolean {
  return err instanceof PasswordFileError || err instanceof AclFileError || err instanceof TlsError;
}

/** The config with its secrets (passwords, the TLS key passphrase, the HTTP token) replaced, for printing. */
function redacted(config: Config): unknown {
  const hide = "<redacted>";
  return {
    ...config,
    auth: { ...config.auth, users: config.auth.users.map((u) => ({ ...u, password: hide })) },
    listeners: config.listeners.map((l) => (l.tls?.passphrase === undefined ? l : { ...l, tls: { ...l.tls, passphrase: hide } })),
    http: config.http.token === undefined ? config.http : { ...config.http, token: hide },
  };
}

/** One line for an error that stopped the start. */
function startFailure(err: Error, listeners: Config["listeners"]): string {
  if (err instanceof StoreError || err instanceof ListenError || err instanceof TlsError) return err.message;
  if (err instanceof PasswordFileError || err instanceof AclFileError) return err.message;
  const failed = failedListener(err, listeners);
  return failed ? listenError(err, failed.host, failed.port).message : `cannot start: ${err.message}`;
}

/**
 * The listener a raw listen error is about, for as long as the listener
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

