/**
 * @module acl-file
 * Mosquitto's `acl_file` format, read unchanged and translated into bunmq
 * ACL rules (acl.ts) with Mosquitto's meaning:
 *
 *     # comment
 *     topic [read|write|readwrite|deny] TOPIC   (before any `user` line: anonymous clients)
 *     user NAME
 *     topic [read|write|readwrite|deny] TOPIC   (that user; no substitution)
 *     pattern [read|write|readwrite|deny] TOPIC (every client; %u and %c substituted)
 *
 * The access defaults to readwrite; `read` is subscribe-and-receive, `write`
 * publish. As in Mosquitto, a client is checked against its own user's lines
 * (or the anonymous ones) and then against the patterns, `deny` lines first
 * within each; the first line that matches and grants the access allows it.
 * Lines of one user may be spread over the file; they are merged, as
 * Mosquitto merges them.
 */
import { readFileSync } from "node:fs";
import { AccessControl, type AclRuleInput } from "./acl.ts";

/** The ACL file cannot be used: unreadable, or a line Mosquitto would refuse too. One line, naming the file and line. */
export class AclFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AclFileError";
  }
}

const ACTIONS: Record<string, { action: AclRuleInput["action"]; allow: boolean }> = {
  read: { action: "subscribe", allow: true },
  write: { action: "publish", allow: true },
  readwrite: { action: "all", allow: true },
  deny: { action: "all", allow: false },
};

/** Rules in check order, and where each came from ("file:line"). */
export interface AclFileRules {
  rules: AclRuleInput[];
  sources: string[];
}

export function readAclFile(path: string): AclFileRules {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new AclFileError(`cannot read the ACL file ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseAclFile(text, path);
}

interface Line {
  rule: AclRuleInput;
  source: string;
}

export function parseAclFile(text: string, name = "acl file"): AclFileRules {
  // Per user (null: anonymous), in order of first appearance; then the patterns.
  const users = new Map<string | null, { deny: Line[]; allow: Line[] }>();
  const patterns = { deny: [] as Line[], allow: [] as Line[] };
  let user: string | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trimEnd();
    const at = `${name}:${i + 1}`;
    const line = raw.trimStart();
    if (line.length === 0 || line.startsWith("#")) continue;
    const [word, ...rest] = line.split(/\s+/);
    if (word === "user") {
      const u = line.slice(4).trim();
      if (u.length === 0) throw new AclFileError(`${at}: user without a name`);
      user = u;
      continue;
    }
    if (word !== "topic" && word !== "pattern") throw new AclFileError(`${at}: expected topic, pattern or user, found "${word}"`);
    if (rest.length === 0) throw new AclFileError(`${at}: ${word} without a topic`);
    let kind = ACTIONS.readwrite!;
    let topic: string;
    if (rest.length > 1) {
      const k = ACTIONS[rest[0]!];
      if (k === undefined) throw new AclFileError(`${at}: access must be read, write, readwrite or deny, not "${rest[0]}"`);
      kind = k;
      // The topic is the rest of the line (it may contain spaces), as Mosquitto reads it.
      topic = line.slice(line.indexOf(rest[0]!, word.length) + rest[0]!.length).trim();
    } else {
      topic = rest[0]!;
    }
    const bad = filterError(topic);
    if (bad !== null) throw new AclFileError(`${at}: invalid topic "${topic}": ${bad}`);
    const entry: Line = {
      rule: { topic, action: kind.action, allow: kind.allow, substitute: word === "pattern", ...(word === "topic" ? { user: user ?? "$anonymous" } : {}) },
      source: at,
    };
    let list = patterns;
    if (word === "topic") {
      let u = users.get(user);
      if (u === undefined) users.set(user, (u = { deny: [], allow: [] }));
      list = u;
    }
    (kind.allow ? list.allow : list.deny).push(entry);
  }
  const ordered: Line[] = [];
  for (const u of users.values()) ordered.push(...u.deny, ...u.allow);
  ordered.push(...patterns.deny, ...patterns.allow);
  return { rules: ordered.map((l) => l.rule), sources: ordered.map((l) => l.source) };
}

/** Mosquitto's mosquitto_sub_topic_check: wildcards are whole levels, `#` only last. */
function filterError(topic: string): string | null {
  const levels = topic.split("/");
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l === "#" && i !== levels.length - 1) return "# must be the last level";
    if (l !== "#" && l !== "+" && (l.includes("#") || l.includes("+"))) return "a wildcard must be a whole level";
  }
  return null;
}

/** The rules in force for an `auth` section: its `acl`, then those of its `aclFile` (read now). */
export function loadAccessControl(auth: { acl: readonly AclRuleInput[]; aclFile?: string }): AccessControl {
  const rules: AclRuleInput[] = [...auth.acl];
  const sources = auth.acl.map((_, i) => `auth.acl.${i}`);
  if (auth.aclFile !== undefined) {
    const f = readAclFile(auth.aclFile);
    rules.push(...f.rules);
    sources.push(...f.sources);
  }
  return new AccessControl(rules, sources);
}
