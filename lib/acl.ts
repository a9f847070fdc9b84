/**
 * @module acl
 * Topic access control: the rules of `auth.acl` and of a Mosquitto
 * `acl_file` (acl-file.ts), compiled once per client identity (user name,
 * Client ID) into a `ClientAcl` that answers three questions:
 *
 * - may it publish to this topic (PUBLISH, and its will when it fires);
 * - may it subscribe to this filter (SUBSCRIBE, per filter);
 * - may it receive a message on this topic (every delivery: live, retained,
 *   shared, so a `#` subscriber never sees a topic it may not read).
 *
 * The first rule that matches the client, the action and the topic decides;
 * once any rule exists, what no rule allows is denied. A subscription filter
 * "matches" an allowing rule when the two overlap (some topic is matched by
 * both: deliveries are then checked per topic) and a denying rule when the
 * rule covers all of it. So `[deny secret/#, allow #]` lets a client
 * subscribe to `#` and receive everything but `secret/...`, and refuses a
 * subscription to `secret/+`.
 *
 * `%u` and `%c` levels are replaced by the user name and Client ID. A name
 * that contains `+`, `#` or `/` would gain wildcard powers (or other levels)
 * that way; such a rule does not match that client, and neither does a `%u`
 * rule for an anonymous client. `$` topics are matched only by rules whose
 * first level is literal, as MQTT matches them ([MQTT-4.7.2-1]): `#` does not
 * open `$SYS`.
 */
import { ACL_ACTIONS } from "./config.ts";

/** What a rule allows or denies (bit set). */
export const enum Access {
  Publish = 1,
  /** Subscribe, and receive what the subscription matches. */
  Subscribe = 2,
  All = 3,
}

/** An ACL rule as the config holds it (or as acl-file.ts translates a Mosquitto line). */
export interface AclRuleInput {
  user?: string;
  client?: string;
  topic: string;
  action: (typeof ACL_ACTIONS)[number];
  allow: boolean;
  /** False for Mosquitto `topic` lines, whose %u / %c are literal (only `pattern` lines substitute). */
  substitute?: boolean;
}

interface Rule {
  /** undefined: any client; null: anonymous only; else that user name. */
  readonly user: string | null | undefined;
  readonly client: RegExp | null;
  readonly levels: readonly string[];
  readonly access: number;
  readonly allow: boolean;
  readonly substitute: boolean;
  /** Source of the rule, for logs ("auth.acl.3", "acl.conf:12"). */
  readonly source: string;
}

/** One rule, specialised for one client: its topic with %u / %c filled in. */
interface Entry {
  readonly levels: readonly string[];
  readonly access: number;
  readonly allow: boolean;
}

const ACCESS: Record<AclRuleInput["action"], number> = { publish: Access.Publish, subscribe: Access.Subscribe, all: Access.All };

/** Verdicts kept per client and kind before the cache starts over (topics repeat; memory stays bounded). */
const CACHE_ENTRIES = 2048;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * A glob where `*` matches any run of characters and everything else itself;
 * `%u` stands for `user`, taken literally (a `*` in a user name is no wildcard).
 */
export function globRegExp(glob: string, user?: string): RegExp {
  const parts = glob.split("*").map((p) => (user === undefined ? escapeRe(p) : p.split("%u").map(escapeRe).join(escapeRe(user))));
  return new RegExp(`^${parts.join(".*")}$`, "s");
}

const unsafeName = (s: string) => s.includes("+") || s.includes("#") || s.includes("/");

export class AccessControl {
  private readonly rules: Rule[];

  /** `sources` names each input rule for logs, index for index. */
  constructor(inputs: readonly AclRuleInput[], sources?: readonly string[]) {
    this.rules = inputs.map((r, i) => ({
      user: r.user === undefined ? undefined : r.user === "$anonymous" ? null : r.user,
      client: r.client === undefined ? null : globRegExp(r.client),
      levels: r.topic.split("/"),
      access: ACCESS[r.action],
      allow: r.allow,
      substitute: r.substitute !== false,
      source: sources?.[i] ?? `auth.acl.${i}`,
    }));
  }

  /** Rules exist: every check applies (none: everything is allowed and no check runs). */
  get enabled(): boolean {
    return this.rules.length > 0;
  }

  get size(): number {
    return this.rules.length;
  }

  /** The rules that concern this client, with %u / %c filled in. */
  forClient(username: string | undefined, clientId: string): ClientAcl {
    const entries: Entry[] = [];
    for (const r of this.rules) {
      if (r.user === null ? username !== undefined : r.user !== undefined && r.user !== username) continue;
      if (r.client !== null && !r.client.test(clientId)) continue;
      let levels = r.levels;
      if (r.substitute && (levels.includes("%u") || levels.includes("%c"))) {
        if (levels.includes("%u") && (username === undefined || username.length === 0 || unsafeName(username))) continue;
        if (levels.includes("%c") && (clientId.length === 0 || unsafeName(clientId))) continue;
        levels = levels.map((l) => (l === "%u" ? username! : l === "%c" ? clientId : l));
      }
      entries.push({ levels, access: r.access, allow: r.allow });
    }
    return new ClientAcl(entries);
  }
}

/** The verdicts for one client identity; built by AccessControl.forClient. */
export class ClientAcl {
  private readonly pubCache = new Map<string, boolean>();
  private readonly readCache = new Map<string, boolean>();

  constructor(private readonly entries: readonly Entry[]) {}

  /** May publish to `topic` (a valid topic name). */
  canPublish(topic: string): boolean {
    return this.cached(this.pubCache, topic, Access.Publish);
  }

  /** May receive a message on `topic` (a valid topic name). */
  canRead(topic: string): boolean {
    return this.cached(this.readCache, topic, Access.Subscribe);
  }

  /** May subscribe to `filter` (a valid filter; for `$share/g/f`, pass `f`). */
  canSubscribe(filter: string): boolean {
    const f = filter.split("/");
    for (const e of this.entries) {
      if ((e.access & Access.Subscribe) === 0) continue;
      if (e.allow ? overlaps(f, e.levels) : covers(e.levels, f)) return e.allow;
    }
    return false;
  }

  private cached(cache: Map<string, boolean>, topic: string, access: Access): boolean {
    let v = cache.get(topic);
    if (v === undefined) {
      v = this.decide(topic, access);
      if (cache.size >= CACHE_ENTRIES) cache.clear();
      cache.set(topic, v);
    }
    return v;
  }

  private decide(topic: string, access: Access): boolean {
    const t = topic.split("/");
    for (const e of this.entries) {
      if ((e.access & access) !== 0 && matches(e.levels, t)) return e.allow;
    }
    return false;
  }
}

const isDollar = (level: string | undefined) => level !== undefined && level.charCodeAt(0) === 0x24;
const wild = (level: string | undefined) => level === "+" || level === "#";

/** Filter levels `f` match topic levels `t` (MQTT matching, `$` topics only by a literal first level). */
export function matches(f: readonly string[], t: readonly string[]): boolean {
  if (isDollar(t[0]) && wild(f[0])) return false;
  for (let i = 0; i < f.length; i++) {
    const l = f[i]!;
    if (l === "#") return true; // also the parent level: "a/#" matches "a" ([MQTT-4.7.1-2])
    if (i >= t.length) return false;
    if (l !== "+" && l !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Every topic that filter `f` matches is matched by `rule` as well. */
export function covers(rule: readonly string[], f: readonly string[]): boolean {
  if (isDollar(f[0]) !== isDollar(rule[0]) && wild(rule[0])) return false;
  for (let i = 0; i < rule.length; i++) {
    const r = rule[i]!;
    if (r === "#") return true;
    if (i >= f.length) return false;
    const l = f[i]!;
    if (l === "#") return false; // f goes deeper than this rule reaches
    if (r === "+") continue;
    if (l === "+" || l !== r) return false;
  }
  return rule.length === f.length;
}

/** Some topic is matched by both filter `f` and `rule`. */
export function overlaps(f: readonly string[], rule: readonly string[]): boolean {
  // A wildcard first level never matches a `$` topic, so it meets only wildcards or non-`$` levels.
  if ((wild(f[0]) && isDollar(rule[0])) || (wild(rule[0]) && isDollar(f[0]))) return false;
  const n = Math.min(f.length, rule.length);
  for (let i = 0; i < n; i++) {
    const a = f[i]!;
    const b = rule[i]!;
    if (a === "#" || b === "#") return true;
    if (a === "+" || b === "+" || a === b) continue;
    return false;
  }
  if (f.length === rule.length) return true;
  // One is longer: it overlaps only if its next level is "#" (which also matches the parent).
  const longer = f.length > rule.length ? f : rule;
  return longer[n] === "#";
}
