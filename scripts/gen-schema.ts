/**
 * Writes config.schema.json, the JSON Schema of the config file, from the
 * zod schema in lib/config.ts (input side: every key optional, defaults
 * shown). The description of each option comes from README.md's option
 * tables (the config file table, and the listeners table for
 * `listeners[].*`), so the schema, the README and the code cannot tell
 * different stories: an option the README does not document fails here.
 *
 *   bun run scripts/gen-schema.ts          write config.schema.json
 *   bun run scripts/gen-schema.ts --check  exit 1 if the checked-in file is not what would be written
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ConfigSchema } from "../lib/config.ts";

const ROOT = join(import.meta.dir, "..");
export const SCHEMA_PATH = join(ROOT, "config.schema.json");

type Json = { [k: string]: unknown };

/** Options without a row of their own in README.md. */
const EXTRA: Record<string, string> = {
  $schema: "The JSON Schema of this file (`./config.schema.json`), for editors; ignored by the broker.",
  limits: "Limits that protect memory and other clients; every one has a finite default.",
  persistence: "Where and how session state and retained messages are stored.",
  auth: "Authentication and access control.",
  mqtt: "Protocol options.",
  sys: "`$SYS` topics.",
  http: "The `http` listener's endpoints (/healthz, /metrics, /api/v1, the dashboard).",
  shutdown: "What a shutdown (SIGINT, SIGTERM) does.",
  "listeners[]": "One address and one transport.",
  "listeners[].tls": "TLS of an `mqtts`, `wss` or `http` (HTTPS) listener; file paths are relative to the config file.",
  "listeners[].allowedOrigins[]": "A browser origin, e.g. `https://app.example.com`.",
  "auth.users[]": "A user.",
  "auth.users[].username": "The user name.",
  "auth.users[].password": "Plain text, or a hash: Mosquitto's `$6$`/`$7$`, or a `Bun.password.hash()` string (argon2/bcrypt).",
  "auth.users[].clientIdPattern": "Client IDs this user may connect with (`*` any characters, `%u` the user name); overrides `auth.clientIdPattern`.",
  "auth.acl[]": "One ACL rule; the first that matches the client, the action and the topic decides.",
  "auth.acl[].user": "User name the rule applies to (absent: every user).",
  "auth.acl[].client": "Client ID the rule applies to (absent: every client).",
  "auth.acl[].topic": "Topic filter; `%u` and `%c` are replaced by the user name and Client ID.",
  "auth.acl[].action": "`publish`, `subscribe` (and receive) or `all`.",
  "auth.acl[].allow": "Allow (true) or deny (false).",
  "mqtt.redirect.serverReference": "Where clients are sent: `host:port`.",
  "mqtt.redirect.permanent": "v5 CONNACK 0x9D (moved permanently) when true, else 0x9C (use another server).",
};

/** Plain text of a Markdown table cell. */
function plain(md: string): string {
  return md
    .replace(/\\\|/g, "|")
    .replace(/\[([^\]]+)\]\([^)]*\)/g, "$1")
    .trim();
}

/** `| \`name\`, \`other\` | default | meaning |` rows of the table after `heading`, by option path. */
function readmeRows(readme: string, heading: string, prefix: string): Map<string, string> {
  const out = new Map<string, string>();
  const at = readme.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README.md has no section "${heading}"`);
  const next = readme.slice(at + heading.length + 2).search(/\n#{2,3} /);
  const body = readme.slice(at, next < 0 ? undefined : at + heading.length + 2 + next);
  for (const line of body.split("\n")) {
    const cells = line.match(/^\|(.*)\|$/)?.[1]?.split(/(?<!\\)\|/);
    if (cells === undefined || cells.length < 3) continue;
    const names = [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    if (names.length === 0) continue;
    const dflt = plain(cells[1]!);
    const meaning = plain(cells.slice(2).join("|"));
    const text = dflt === "" || dflt.startsWith("(") ? meaning : `${meaning} (default: ${dflt})`;
    for (const n of names) out.set(prefix + n, text);
  }
  return out;
}

function descriptions(): Map<string, string> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const d = new Map([...readmeRows(readme, "### Config file", ""), ...readmeRows(readme, "## Listeners: TLS and WebSockets", "listeners[].")]);
  for (const [k, v] of Object.entries(EXTRA)) if (!d.has(k)) d.set(k, v);
  return d;
}

/** Attach descriptions by path; collect the paths that have none. */
function describe(node: Json, path: string, d: Map<string, string>, missing: string[]): void {
  if (path !== "") {
    const text = d.get(path) ?? d.get(`${path}[]`) ?? d.get(path.replace(/\[\]$/, ""));
    if (text === undefined) missing.push(path);
    else {
      node.description = text.replace(/`/g, "");
      node.markdownDescription = text;
    }
  }
  // A non-standard format (zod's "starts_with") would make strict validators refuse the schema.
  if (typeof node.format === "string" && !["uri", "email", "date-time"].includes(node.format)) delete node.format;
  const props = node.properties as Record<string, Json> | undefined;
  if (props) for (const [k, v] of Object.entries(props)) describe(v, path === "" ? k : `${path}.${k}`, d, missing);
  const items = node.items as Json | undefined;
  if (items && typeof items === "object" && (items.type === "object" || items.properties)) describe(items, `${path}[]`, d, missing);
  for (const k of ["anyOf", "oneOf", "allOf"]) {
    const alts = node[k] as Json[] | undefined;
    if (alts) for (const a of alts) if (a.type === "object" || a.properties) describe(a, path, d, missing);
  }
}

export function generate(): string {
  const schema = z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" }) as Json;
  const missing: string[] = [];
  describe(schema, "", descriptions(), missing);
  if (missing.length > 0) throw new Error(`options without a description (add a row to README.md or to EXTRA in scripts/gen-schema.ts): ${missing.join(", ")}`);
  const out = { $schema: schema.$schema, $id: "https://github.com/bunmq/bunmq/config.schema.json", title: "bunmq configuration", description: "The bunmq config file (bun run broker.ts --config FILE). Every option is optional.", ...schema };
  return JSON.stringify(out, null, 2) + "\n";
}

if (import.meta.main) {
  const text = generate();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(SCHEMA_PATH, "utf8");
    } catch {
      // missing: reported below
    }
    if (current !== text) {
      console.error("config.schema.json is not up to date with lib/config.ts and README.md: run `bun run schema` and commit it");
      process.exit(1);
    }
    console.log("config.schema.json is up to date");
  } else {
    writeFileSync(SCHEMA_PATH, text);
    console.log(`wrote ${SCHEMA_PATH}`);
  }
}
