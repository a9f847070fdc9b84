/**
 * lib/config.ts: the shipped example file, the defaults (every memory limit
 * finite, DESIGN.md 4; maxConnections derived at start), strict validation
 * with errors that name the field path, the file validated on its own before
 * command-line overrides win over it, and flag values checked under the
 * flag's own name.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, ConfigError, flagOverrides, LimitsSchema, loadConfig, parseConfig } from "../../lib/config.ts";

const ROOT = join(import.meta.dir, "..", "..");
const EXAMPLE = join(ROOT, "config.example.json");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunmq-config-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function file(content: string | object): string {
  const p = join(dir, `c${fileNo++}.json`);
  writeFileSync(p, typeof content === "string" ? content : JSON.stringify(content));
  return p;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

describe("config.example.json", () => {
  test("parses under the schema (loadConfig) and equals the defaults; it names the JSON Schema for editors", async () => {
    const { $schema, ...fromFile } = loadConfig(EXAMPLE);
    expect($schema).toBe("./config.schema.json");
    expect(fromFile).toEqual(parseConfig({}));
    const { $schema: _, ...parsed } = parseConfig(await Bun.file(EXAMPLE).json());
    expect(parsed).toEqual(parseConfig({}));
  });

  test("lists every limit, persistence and auth setting (it documents them all)", async () => {
    const raw = await Bun.file(EXAMPLE).json();
    const defaults = parseConfig({});
    expect(Object.keys(raw).filter((k) => k !== "$schema").sort()).toEqual(Object.keys(defaults).sort());
    expect(Object.keys(raw.limits).sort()).toEqual(Object.keys(defaults.limits).sort());
    expect(Object.keys(raw.persistence).sort()).toEqual(Object.keys(defaults.persistence).sort());
    expect(Object.keys(raw.auth).sort()).toEqual(Object.keys(defaults.auth).sort());
  });

  test("lists every limit of the schema except maxConnections, whose default is derived at start (the README documents it)", async () => {
    const raw = await Bun.file(EXAMPLE).json();
    const schemaKeys = Object.keys(LimitsSchema.shape).filter((k) => k !== "maxConnections");
    expect(Object.keys(raw.limits).sort()).toEqual(schemaKeys.sort());
    expect(raw.limits.maxConnectSize).toBe(65536);
    expect(raw.limits.maxPublisherStallMs).toBe(2000);
    const readme = await Bun.file(join(ROOT, "README.md")).text();
    for (const k of Object.keys(LimitsSchema.shape)) expect(readme).toContain(`\`limits.${k}\``);
    expect(readme).toMatch(/`limits\.maxConnections`[^\n]*open-file limit minus a margin/);
  });
});

describe("defaults", () => {
  const d = parseConfig({});

  test("every limit has a finite, positive default (DESIGN.md 4); only the rate limits, which guard no memory, default to 0 = off", () => {
    const limits = d.limits as Record<string, number>;
    const rates = new Set(["publishRate", "publishBytesRate", "connectRate"]);
    expect(Object.keys(limits).length).toBeGreaterThan(10);
    for (const [k, v] of Object.entries(limits)) {
      expect({ k, finite: typeof v === "number" && Number.isFinite(v) && Number.isInteger(v) }).toEqual({ k, finite: true });
      expect({ k, positive: v > 0 }).toEqual({ k, positive: !rates.has(k) });
    }
  });

  test("the memory-protecting limits are present and bounded", () => {
    const memory: (keyof Config["limits"])[] = [
      "maxPacketSize",
      "maxConnectSize",
      "maxClientIdLength",
      "maxTopicLevels",
      "maxInflight",
      "receiveMaximum",
      "maxQueuedMessages",
      "maxQueuedBytes",
      "maxPendingOutput",
      "maxSubscriptionsPerSession",
      "maxRetainedMessages",
      "topicAliasMaximum",
      "connectTimeoutMs",
      "drainTimeoutMs",
    ];
    for (const k of memory) {
      const v = d.limits[k];
      expect({ k, ok: typeof v === "number" && Number.isFinite(v) && v > 0 }).toEqual({ k, ok: true });
    }
    // Sanity: a packet limit below the protocol maximum, queues that cannot hold gigabytes per session by default.
    expect(d.limits.maxPacketSize).toBeLessThan(268_435_455);
    expect(d.limits.maxQueuedBytes).toBeLessThanOrEqual(1024 * 1024 * 1024);
    expect(d.limits.maxPendingOutput).toBeLessThanOrEqual(1024 * 1024 * 1024);
  });

  test("maxConnections has no default: left out, it is derived from the open-file limit at start", () => {
    expect(d.limits.maxConnections).toBeUndefined();
    expect("maxConnections" in d.limits).toBe(false);
    expect(parseConfig({ limits: { maxConnections: 5 } }).limits.maxConnections).toBe(5);
    expect(parseConfig({ limits: { maxConnections: 10_000_000 } }).limits.maxConnections).toBe(10_000_000);
    for (const bad of [0, 10_000_001, 1.5, "5", null]) {
      expect(configError(() => parseConfig({ limits: { maxConnections: bad } })).message).toContain("limits.maxConnections:");
    }
  });

  test("maxConnectSize: default 64 KiB, 64 .. 268435460", () => {
    expect(d.limits.maxConnectSize).toBe(65536);
    expect(parseConfig({ limits: { maxConnectSize: 64 } }).limits.maxConnectSize).toBe(64);
    expect(parseConfig({ limits: { maxConnectSize: 268_435_460 } }).limits.maxConnectSize).toBe(268_435_460);
    for (const bad of [63, 268_435_461, 1000.5]) {
      expect(configError(() => parseConfig({ limits: { maxConnectSize: bad } })).message).toContain("limits.maxConnectSize:");
    }
  });

  test("maxPublisherStallMs: default 2000, 0 (never hold a publisher back) .. 3600000", () => {
    expect(d.limits.maxPublisherStallMs).toBe(2000);
    expect(parseConfig({ limits: { maxPublisherStallMs: 0 } }).limits.maxPublisherStallMs).toBe(0);
    expect(parseConfig({ limits: { maxPublisherStallMs: 3_600_000 } }).limits.maxPublisherStallMs).toBe(3_600_000);
    for (const bad of [-1, 3_600_001, 0.5]) {
      expect(configError(() => parseConfig({ limits: { maxPublisherStallMs: bad } })).message).toContain("limits.maxPublisherStallMs:");
    }
  });

  test("loopback listener on 1883, info log, a persistence path, anonymous allowed", () => {
    expect(d.listeners).toEqual([{ host: "127.0.0.1", port: 1883, protocol: "mqtt" }]);
    expect(d.logLevel).toBe("info");
    expect(d.persistence.path.length).toBeGreaterThan(0);
    expect(d.auth).toEqual({ allowAnonymous: true, users: [], acl: [], clientIdOwnership: false });
  });

  test("partial sections are filled with defaults", () => {
    const c = parseConfig({ limits: { maxInflight: 5 }, listeners: [{ port: 0 }] });
    expect(c.limits.maxInflight).toBe(5);
    expect(c.limits.maxPacketSize).toBe(d.limits.maxPacketSize);
    expect(c.listeners).toEqual([{ host: "127.0.0.1", port: 0, protocol: "mqtt" }]);
  });

  test("the result is frozen, deep", () => {
    const c = parseConfig({});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.limits)).toBe(true);
    expect(Object.isFrozen(c.listeners[0])).toBe(true);
    expect(() => {
      (c.limits as { maxInflight: number }).maxInflight = 1;
    }).toThrow();
  });
});

describe("validation errors name the field", () => {
  test("unknown key inside a section: ConfigError naming limits.maxPakcetSize", () => {
    const e = configError(() => parseConfig({ limits: { maxPakcetSize: 1000 } }));
    expect(e.name).toBe("ConfigError");
    // The section and the misspelt key both appear ...
    expect(e.message).toContain("limits");
    expect(e.message).toContain("maxPakcetSize");
    // ... as one path, like every other error (`limits.maxInflight: ...`).
    expect(e.message).toContain("limits.maxPakcetSize");
  });

  test("unknown key inside a listener names listeners.0.prot", () => {
    const e = configError(() => parseConfig({ listeners: [{ host: "127.0.0.1", prot: 1 }] }));
    expect(e.message).toContain("prot");
    expect(e.message).toContain("listeners.0.prot");
  });

  test("unknown top-level key is named", () => {
    const e = configError(() => parseConfig({ limit: {} }));
    expect(e.message).toContain("limit");
    expect(e.message).toMatch(/unrecognized|unknown/i);
  });

  const wrong: [string, object, string][] = [
    ["number as string", { limits: { maxInflight: "10" } }, "limits.maxInflight"],
    ["boolean as string", { auth: { allowAnonymous: "yes" } }, "auth.allowAnonymous"],
    ["port out of range", { listeners: [{ port: 70000 }] }, "listeners.0.port"],
    ["negative port", { listeners: [{ port: -1 }] }, "listeners.0.port"],
    ["fractional limit", { limits: { maxQueuedMessages: 1.5 } }, "limits.maxQueuedMessages"],
    ["limit below its minimum", { limits: { maxPendingOutput: 10 } }, "limits.maxPendingOutput"],
    ["bad enum", { logLevel: "loud" }, "logLevel"],
    ["bad durability", { persistence: { durability: "sometimes" } }, "persistence.durability"],
    ["empty listener list", { listeners: [] }, "listeners"],
    ["user without password", { auth: { users: [{ username: "u" }] } }, "auth.users.0.password"],
    ["section of the wrong type", { limits: 5 }, "limits"],
  ];
  for (const [name, input, path] of wrong) {
    test(`${name}: message names ${path}`, () => {
      const e = configError(() => parseConfig(input));
      expect(e.message).toContain(`${path}:`);
    });
  }

  test("several problems are all reported", () => {
    const e = configError(() => parseConfig({ limits: { maxInflight: 0, maxQueuedMessages: "x" }, logLevel: 3 }));
    expect(e.message).toContain("limits.maxInflight");
    expect(e.message).toContain("limits.maxQueuedMessages");
    expect(e.message).toContain("logLevel");
  });

  test("the message names its source file", () => {
    const p = file({ limits: { maxInflight: "x" } });
    const e = configError(() => loadConfig(p));
    expect(e.message).toContain(p);
    expect(e.message).toContain("limits.maxInflight");
  });
});

describe("flagOverrides: flag values are checked under the flag's name", () => {
  test("valid values become overrides", () => {
    expect(flagOverrides({})).toEqual({});
    expect(flagOverrides({ host: "::1", port: "0", logLevel: "debug", data: ":memory:" })).toEqual({
      host: "::1",
      port: 0,
      logLevel: "debug",
      data: ":memory:",
    });
    expect(flagOverrides({ port: "65535" }).port).toBe(65535);
    expect(flagOverrides({ port: "01883" }).port).toBe(1883);
  });

  const bad: [Parameters<typeof flagOverrides>[0], string][] = [
    [{ port: "abc" }, "--port: expected an integer 0-65535"],
    [{ port: "70000" }, "--port: expected an integer 0-65535"],
    [{ port: "65536" }, "--port: expected an integer 0-65535"],
    [{ port: "-1" }, "--port: expected an integer 0-65535"],
    [{ port: "1.5" }, "--port: expected an integer 0-65535"],
    [{ port: "1e3" }, "--port: expected an integer 0-65535"],
    [{ port: " 1" }, "--port: expected an integer 0-65535"],
    [{ port: "" }, "--port: expected an integer 0-65535"],
    [{ logLevel: "loud" }, "--log-level: expected one of silent, error, warn, info, debug"],
    [{ logLevel: "" }, "--log-level: expected one of silent, error, warn, info, debug"],
    [{ data: "" }, "--data: expected a file path, or :memory:"],
    [{ host: "" }, "--host: expected a host name or IP address"],
  ];
  for (const [flags, message] of bad) {
    test(`${JSON.stringify(flags)} → "${message}"`, () => {
      const e = configError(() => flagOverrides(flags));
      expect(e.message).toBe(message);
    });
  }
});

describe("loadConfig: files", () => {
  test("no file: defaults", () => {
    expect(loadConfig(undefined)).toEqual(parseConfig({}));
  });

  test("a missing file is a ConfigError naming it", () => {
    const p = join(dir, "does-not-exist.json");
    const e = configError(() => loadConfig(p));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/cannot read/i);
  });

  test("invalid JSON is a ConfigError naming the file", () => {
    const p = file('{ "limits": { "maxInflight": 5, } ');
    const e = configError(() => loadConfig(p));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/JSON/);
  });

  for (const [name, content] of [
    ["array", "[]"],
    ["null", "null"],
    ["number", "42"],
    ["string", '"x"'],
  ] as const) {
    test(`a JSON ${name} instead of an object is a ConfigError`, () => {
      const e = configError(() => loadConfig(file(content)));
      expect(e.message).toMatch(/object/i);
    });
  }

  test("file values are used", () => {
    const p = file({ listeners: [{ host: "0.0.0.0", port: 1999 }], logLevel: "debug", limits: { maxInflight: 7 } });
    const c = loadConfig(p);
    expect(c.listeners).toEqual([{ host: "0.0.0.0", port: 1999, protocol: "mqtt" }]);
    expect(c.logLevel).toBe("debug");
    expect(c.limits.maxInflight).toBe(7);
  });
});

describe("loadConfig: overrides win over the file (--host, --port, --log-level)", () => {
  const base = { listeners: [{ host: "0.0.0.0", port: 1999, protocol: "mqtt" as const }, { host: "::1", port: 2000, protocol: "mqtt" as const }], logLevel: "debug", limits: { maxInflight: 7 } };

  test("--host, --port and --log-level replace the file's first listener and log level", () => {
    const c = loadConfig(file(base), { host: "127.0.0.2", port: 0, logLevel: "warn" });
    expect(c.listeners[0]).toEqual({ host: "127.0.0.2", port: 0, protocol: "mqtt" });
    expect(c.listeners[1]).toEqual({ host: "::1", port: 2000, protocol: "mqtt" }); // other listeners untouched
    expect(c.logLevel).toBe("warn");
    expect(c.limits.maxInflight).toBe(7); // the rest of the file still applies
  });

  test("--port alone keeps the file's host; --host alone keeps the file's port", () => {
    expect(loadConfig(file(base), { port: 4242 }).listeners[0]).toEqual({ host: "0.0.0.0", port: 4242, protocol: "mqtt" });
    expect(loadConfig(file(base), { host: "localhost" }).listeners[0]).toEqual({ host: "localhost", port: 1999, protocol: "mqtt" });
  });

  test("--log-level alone leaves the listeners as in the file", () => {
    const c = loadConfig(file(base), { logLevel: "error" });
    expect(c.logLevel).toBe("error");
    expect(c.listeners).toEqual(base.listeners);
  });

  test("without a file, overrides apply over the defaults", () => {
    const c = loadConfig(undefined, { port: 0, logLevel: "error" });
    expect(c.listeners).toEqual([{ host: "127.0.0.1", port: 0, protocol: "mqtt" }]);
    expect(c.logLevel).toBe("error");
    expect(loadConfig(undefined, { host: "0.0.0.0" }).listeners).toEqual([{ host: "0.0.0.0", port: 1883, protocol: "mqtt" }]);
  });

  test("overrides are validated like the file", () => {
    expect(configError(() => loadConfig(undefined, { port: 70000 })).message).toContain("listeners.0.port");
    expect(configError(() => loadConfig(undefined, { port: "abc" as unknown as number })).message).toContain("listeners.0.port");
    expect(configError(() => loadConfig(undefined, { logLevel: "verbose" })).message).toContain("logLevel");
  });

  test("the file is validated on its own first: an override does not hide an invalid value it replaces", () => {
    const p = file({ listeners: [{ host: "127.0.0.1", port: 99999 }] });
    expect(configError(() => loadConfig(p)).message).toContain("listeners.0.port");
    const e = configError(() => loadConfig(p, { port: 0 }));
    expect(e.message).toContain(p);
    expect(e.message).toContain("listeners.0.port:");
  });

  const hidden: [string, object, Parameters<typeof loadConfig>[1], string[]][] = [
    ["wrong type under --port", { listeners: [{ port: "x" }] }, { port: 1 }, ["listeners.0.port:"]],
    ["listeners not a list, under --port", { listeners: "x" }, { port: 1 }, ["listeners:"]],
    ["empty host under --host", { listeners: [{ host: "" }] }, { host: "127.0.0.1" }, ["listeners.0.host:"]],
    ["bad logLevel under --log-level", { logLevel: "loud" }, { logLevel: "info" }, ["logLevel:"]],
    ["bad persistence.path under --data", { persistence: { path: 7 } }, { data: ":memory:" }, ["persistence.path:"]],
    ["persistence not an object, under --data", { persistence: "x" }, { data: ":memory:" }, ["persistence:"]],
    ["unknown key beside the overridden port", { listeners: [{ port: "x", prot: 1 }] }, { port: 1 }, ["listeners.0.port:", "listeners.0.prot:"]],
    ["unknown top-level key", { listener: [{ port: 1 }] }, { port: 1 }, ["listener:"]],
  ];
  for (const [name, content, overrides, paths] of hidden) {
    test(`the file's own error is reported despite the override: ${name}`, () => {
      const p = file(content);
      const e = configError(() => loadConfig(p, overrides));
      expect(e.message).toContain(p);
      for (const path of paths) expect(e.message).toContain(path);
    });
  }

  test("the data override sets persistence.path and keeps the rest of the section", () => {
    const c = loadConfig(file({ persistence: { synchronous: "full" } }), { data: "/tmp/x.db" });
    expect(c.persistence.path).toBe("/tmp/x.db");
    expect(c.persistence.synchronous).toBe("full");
  });

  test("the file is not modified by the overrides", async () => {
    const p = file(base);
    const before = await Bun.file(p).text();
    loadConfig(p, { host: "127.0.0.9", port: 1, logLevel: "error" });
    expect(await Bun.file(p).text()).toBe(before);
  });
});

describe("listeners: transports", () => {
  const TLS = { cert: "server.crt", key: "server.key" };

  test("protocol defaults to mqtt; ports default by protocol (1883, 8883, 8080, 8081); ws and wss get the path /mqtt", () => {
    const c = parseConfig({ listeners: [{}, { protocol: "mqtts", tls: TLS }, { protocol: "ws" }, { protocol: "wss", tls: TLS }, { protocol: "ws", path: "/x", port: 9 }] });
    expect(c.listeners.map((l) => [l.protocol, l.port, l.path])).toEqual([
      ["mqtt", 1883, undefined],
      ["mqtts", 8883, undefined],
      ["ws", 8080, "/mqtt"],
      ["wss", 8081, "/mqtt"],
      ["ws", 9, "/x"],
    ]);
    expect(c.listeners[1]!.tls).toMatchObject({ requireClientCert: false, useIdentityAsUsername: false, minVersion: "TLSv1.2" });
  });

  const invalid: [string, object, string][] = [
    ["mqtts without tls", { protocol: "mqtts" }, "listeners.0.tls: required for protocol mqtts"],
    ["wss without tls", { protocol: "wss" }, "listeners.0.tls: required for protocol wss"],
    ["tls on mqtt", { tls: TLS }, "listeners.0.tls: only for protocol mqtts, wss or http"],
    ["tls on ws", { protocol: "ws", tls: TLS }, "listeners.0.tls: only for protocol mqtts, wss or http"],
    ["path on mqtt", { path: "/mqtt" }, "listeners.0.path: only for protocol ws or wss"],
    ["a path without /", { protocol: "ws", path: "mqtt" }, "listeners.0.path: expected a path starting with /"],
    ["requireClientCert without ca", { protocol: "mqtts", tls: { ...TLS, requireClientCert: true } }, "listeners.0.tls.ca: required with requireClientCert"],
    ["useIdentityAsUsername without requireClientCert", { protocol: "mqtts", tls: { ...TLS, ca: "ca.crt", useIdentityAsUsername: true } }, "listeners.0.tls.useIdentityAsUsername: needs requireClientCert"],
    ["useIdentityAsUsername on wss", { protocol: "wss", tls: { ...TLS, ca: "ca.crt", requireClientCert: true, useIdentityAsUsername: true } }, "listeners.0.tls.useIdentityAsUsername: supported on mqtts listeners only"],
    ["an unknown minVersion", { protocol: "mqtts", tls: { ...TLS, minVersion: "TLSv1.1" } }, "listeners.0.tls.minVersion"],
    ["an unknown protocol", { protocol: "http2" }, "listeners.0.protocol"],
    ["an unknown tls key", { protocol: "mqtts", tls: { ...TLS, certfile: "x" } }, "listeners.0.tls.certfile: unknown option"],
    ["maxConnections 0", { maxConnections: 0 }, "listeners.0.maxConnections"],
  ];
  for (const [name, listener, message] of invalid) {
    test(`${name}: "${message}"`, () => {
      expect(configError(() => parseConfig({ listeners: [listener] })).message).toContain(message);
    });
  }

  test("two listeners on one host:port are refused, unless both are ws (or both wss with the same TLS) on different paths", () => {
    expect(configError(() => parseConfig({ listeners: [{ port: 5000 }, { port: 5000 }] })).message).toContain("listeners.1.port: 127.0.0.1:5000 is already used by listeners.0");
    expect(configError(() => parseConfig({ listeners: [{ port: 5000, protocol: "ws" }, { port: 5000, protocol: "ws" }] })).message).toContain("listeners.1.path: /mqtt on 127.0.0.1:5000 is already served by listeners.0");
    expect(configError(() => parseConfig({ listeners: [{ port: 5000, protocol: "ws" }, { port: 5000, protocol: "wss", tls: TLS, path: "/b" }] })).message).toContain("listeners.1.port");
    expect(parseConfig({ listeners: [{ port: 5000, protocol: "ws" }, { port: 5000, protocol: "ws", path: "/b" }] }).listeners).toHaveLength(2);
    expect(parseConfig({ listeners: [{ port: 5000 }, { port: 5000, host: "127.0.0.2" }] }).listeners).toHaveLength(2); // another address
    expect(parseConfig({ listeners: [{ port: 0 }, { port: 0 }] }).listeners).toHaveLength(2); // each its own free port
  });

  test("TLS paths are relative to the config file (loadConfig), or to the working directory (parseConfig); absolute ones stay", () => {
    const p = file({ listeners: [{ protocol: "mqtts", tls: { cert: "certs/s.crt", key: "/abs/s.key", ca: "../ca.crt", requireClientCert: true } }] });
    const t = loadConfig(p).listeners[0]!.tls!;
    expect(t.cert).toBe(join(dir, "certs/s.crt"));
    expect(t.key).toBe("/abs/s.key");
    expect(t.ca).toBe(join(dir, "..", "ca.crt"));
    expect(parseConfig({ listeners: [{ protocol: "mqtts", tls: TLS }] }).listeners[0]!.tls!.cert).toBe(join(process.cwd(), "server.crt"));
    // --port keeps the first listener's TLS and its resolved paths.
    const withPort = loadConfig(p, { port: 0 }).listeners[0]!;
    expect(withPort.port).toBe(0);
    expect(withPort.tls!.cert).toBe(join(dir, "certs/s.crt"));
  });
});
