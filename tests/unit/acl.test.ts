/**
 * lib/acl.ts and lib/acl-file.ts: rule order and defaults, substitution,
 * `$` topics, filter overlap and cover, and Mosquitto's acl_file read
 * unchanged with Mosquitto's meaning.
 */
import { describe, expect, test } from "bun:test";
import { AccessControl, type AclRuleInput, covers, matches, overlaps } from "../../lib/acl.ts";
import { AclFileError, parseAclFile } from "../../lib/acl-file.ts";
import { ConfigError, parseConfig } from "../../lib/config.ts";

const L = (s: string) => s.split("/");
const acl = (rules: AclRuleInput[], user: string | undefined, client = "c1") => new AccessControl(rules).forClient(user, client);

describe("topic matching for rules", () => {
  test("MQTT matching: + one level, # the rest and the parent ([MQTT-4.7.1-2]); $ topics only by a literal first level ([MQTT-4.7.2-1])", () => {
    expect(matches(L("a/+/c"), L("a/b/c"))).toBe(true);
    expect(matches(L("a/+/c"), L("a/b/d"))).toBe(false);
    expect(matches(L("a/#"), L("a"))).toBe(true);
    expect(matches(L("a/#"), L("a/b/c"))).toBe(true);
    expect(matches(L("#"), L("$SYS/broker/uptime"))).toBe(false);
    expect(matches(L("+/broker/uptime"), L("$SYS/broker/uptime"))).toBe(false);
    expect(matches(L("$SYS/#"), L("$SYS/broker/uptime"))).toBe(true);
  });

  test("covers: every topic of the filter is the rule's", () => {
    expect(covers(L("a/#"), L("a/+/c"))).toBe(true);
    expect(covers(L("a/#"), L("a/#"))).toBe(true);
    expect(covers(L("a/+"), L("a/b"))).toBe(true);
    expect(covers(L("a/+"), L("a/#"))).toBe(false);
    expect(covers(L("a/b"), L("a/+"))).toBe(false);
    expect(covers(L("#"), L("+/x"))).toBe(true);
    expect(covers(L("#"), L("$SYS/#"))).toBe(false);
    expect(covers(L("a/+/c"), L("a/b/c"))).toBe(true);
    expect(covers(L("a/+/c"), L("a/b/c/d"))).toBe(false);
  });

  test("overlaps: some topic is matched by both", () => {
    expect(overlaps(L("#"), L("sensors/#"))).toBe(true);
    expect(overlaps(L("+/temp"), L("sensors/+"))).toBe(true);
    expect(overlaps(L("a/b"), L("a/c"))).toBe(false);
    expect(overlaps(L("a"), L("a/#"))).toBe(true);
    expect(overlaps(L("a/b/c"), L("a/b"))).toBe(false);
    expect(overlaps(L("#"), L("$SYS/#"))).toBe(false);
    expect(overlaps(L("$SYS/#"), L("#"))).toBe(false);
    expect(overlaps(L("$SYS/+"), L("$SYS/broker"))).toBe(true);
  });
});

describe("rules", () => {
  test("no rule: the ACL is off (every check is skipped)", () => {
    expect(new AccessControl([]).enabled).toBe(false);
  });

  test("once a rule exists the default is deny; the first matching rule wins", () => {
    const a = acl(
      [
        { topic: "a/secret", action: "all", allow: false },
        { topic: "a/#", action: "all", allow: true },
      ],
      "u",
    );
    expect(a.canPublish("a/x")).toBe(true);
    expect(a.canPublish("a/secret")).toBe(false);
    expect(a.canRead("a/secret")).toBe(false);
    expect(a.canPublish("b")).toBe(false);
    expect(a.canRead("b")).toBe(false);
  });

  test("a rule for another action does not decide: the next rule is looked at", () => {
    const a = acl(
      [
        { topic: "t", action: "publish", allow: false },
        { topic: "t", action: "all", allow: true },
      ],
      "u",
    );
    expect(a.canPublish("t")).toBe(false);
    expect(a.canRead("t")).toBe(true);
    expect(a.canSubscribe("t")).toBe(true);
  });

  test("user, $anonymous and client glob select the rules of a client", () => {
    const rules: AclRuleInput[] = [
      { user: "alice", topic: "alice/#", action: "all", allow: true },
      { user: "$anonymous", topic: "public/#", action: "subscribe", allow: true },
      { client: "dev-*", topic: "devices/#", action: "publish", allow: true },
    ];
    expect(acl(rules, "alice").canPublish("alice/x")).toBe(true);
    expect(acl(rules, "bob").canPublish("alice/x")).toBe(false);
    expect(acl(rules, undefined).canRead("public/news")).toBe(true);
    expect(acl(rules, "alice").canRead("public/news")).toBe(false);
    expect(acl(rules, "bob", "dev-7").canPublish("devices/7")).toBe(true);
    expect(acl(rules, "bob", "xdev-7").canPublish("devices/7")).toBe(false);
  });

  test("%u and %c are whole levels, substituted", () => {
    const rules: AclRuleInput[] = [
      { topic: "users/%u/#", action: "all", allow: true },
      { topic: "clients/%c", action: "publish", allow: true },
    ];
    const a = acl(rules, "alice", "phone");
    expect(a.canPublish("users/alice/x")).toBe(true);
    expect(a.canPublish("users/bob/x")).toBe(false);
    expect(a.canPublish("clients/phone")).toBe(true);
    expect(a.canPublish("clients/other")).toBe(false);
  });

  test("a user name or Client ID with +, # or / gains no wildcard power from substitution: the rule does not match", () => {
    const rules: AclRuleInput[] = [
      { topic: "users/%u/#", action: "all", allow: true },
      { topic: "clients/%c", action: "all", allow: true },
    ];
    for (const name of ["+", "#", "a/b", "x+"]) {
      const a = acl(rules, name, name);
      expect(a.canPublish("users/anything/x")).toBe(false);
      expect(a.canPublish(`users/${name}/x`)).toBe(false);
      expect(a.canSubscribe("users/+/x")).toBe(false);
      expect(a.canRead("clients/anything")).toBe(false);
    }
    // An anonymous client never matches a %u rule.
    expect(acl(rules, undefined).canPublish("users/%u/x")).toBe(false);
  });

  test("subscribe: allowed when an allowing rule overlaps the filter, denied when a denying rule covers it", () => {
    const rules: AclRuleInput[] = [
      { topic: "secret/#", action: "subscribe", allow: false },
      { topic: "#", action: "subscribe", allow: true },
    ];
    const a = acl(rules, "u");
    expect(a.canSubscribe("#")).toBe(true); // deliveries are then checked per topic
    expect(a.canRead("secret/x")).toBe(false);
    expect(a.canRead("public/x")).toBe(true);
    expect(a.canSubscribe("secret/+")).toBe(false);
    expect(a.canSubscribe("$SYS/#")).toBe(false); // # does not open $SYS
    const narrow = acl([{ topic: "sensors/#", action: "subscribe", allow: true }], "u");
    expect(narrow.canSubscribe("#")).toBe(true);
    expect(narrow.canRead("other")).toBe(false);
    expect(narrow.canSubscribe("other/#")).toBe(false);
  });

  test("$SYS is readable only where a rule names it", () => {
    const a = acl([{ topic: "#", action: "all", allow: true }], "u");
    expect(a.canRead("$SYS/broker/uptime")).toBe(false);
    const b = acl([{ topic: "$SYS/#", action: "subscribe", allow: true }], "u");
    expect(b.canRead("$SYS/broker/uptime")).toBe(true);
    expect(b.canSubscribe("$SYS/broker/+")).toBe(true);
  });

  test("the config validates ACL topics and names the field", () => {
    const bad = (topic: string) => () => parseConfig({ auth: { acl: [{ topic, action: "all", allow: true }] } });
    expect(bad("a/#/b")).toThrow(/auth\.acl\.0\.topic: # must be the last level/);
    expect(bad("a/b+")).toThrow(/auth\.acl\.0\.topic: a wildcard must be a whole level/);
    expect(bad("users/x%u")).toThrow(/auth\.acl\.0\.topic: %u and %c must be a whole level/);
    expect(() => parseConfig({ auth: { acl: [{ topic: "a", action: "read", allow: true }] } })).toThrow(ConfigError);
    expect(() => parseConfig({ auth: { acl: [{ topic: "a", action: "all" }] } })).toThrow(/auth\.acl\.0\.allow/);
  });
});

describe("Mosquitto acl_file", () => {
  const FILE = `# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic write  spaced topic/x

user bob
topic bob/#

pattern read devices/%c/#
pattern write users/%u/out
pattern deny users/%u/out/blocked
`;

  test("topic lines before any user line are the anonymous client's", () => {
    const { rules } = parseAclFile(FILE);
    const anon = new AccessControl(rules).forClient(undefined, "c");
    expect(anon.canRead("public/x")).toBe(true);
    expect(anon.canPublish("public/x")).toBe(false);
    expect(new AccessControl(rules).forClient("alice", "c").canRead("public/x")).toBe(false);
  });

  test("user lines: deny first within the user, readwrite by default, the topic is the rest of the line", () => {
    const { rules } = parseAclFile(FILE);
    const alice = new AccessControl(rules).forClient("alice", "c");
    expect(alice.canPublish("alice/x")).toBe(true);
    expect(alice.canPublish("alice/secret")).toBe(false); // deny wins though listed after the readwrite line
    expect(alice.canPublish("spaced topic/x")).toBe(true);
    expect(alice.canRead("spaced topic/x")).toBe(false);
    const bob = new AccessControl(rules).forClient("bob", "c");
    expect(bob.canPublish("bob/x")).toBe(true);
    expect(bob.canRead("bob/x")).toBe(true);
    expect(bob.canPublish("alice/x")).toBe(false);
  });

  test("pattern lines apply to every client with %u / %c, deny first; topic lines do not substitute", () => {
    const { rules } = parseAclFile(FILE + "user carol\ntopic write literal/%u\n");
    const ac = new AccessControl(rules);
    const carol = ac.forClient("carol", "dev9");
    expect(carol.canRead("devices/dev9/temp")).toBe(true);
    expect(carol.canRead("devices/dev8/temp")).toBe(false);
    expect(carol.canPublish("users/carol/out")).toBe(true);
    expect(carol.canPublish("users/carol/out/blocked")).toBe(false);
    expect(carol.canPublish("literal/%u")).toBe(true);
    expect(carol.canPublish("literal/carol")).toBe(false);
  });

  test("lines of one user spread over the file are merged", () => {
    const { rules } = parseAclFile("user a\ntopic x\nuser b\ntopic y\nuser a\ntopic z\n");
    const a = new AccessControl(rules).forClient("a", "c");
    expect(a.canPublish("x") && a.canPublish("z")).toBe(true);
    expect(a.canPublish("y")).toBe(false);
  });

  test("a line Mosquitto refuses is refused with the file and line number", () => {
    expect(() => parseAclFile("topic readwrite a\nfoo bar\n", "acl.conf")).toThrow(new AclFileError('acl.conf:2: expected topic, pattern or user, found "foo"'));
    expect(() => parseAclFile("topic maybe a/b\n", "acl.conf")).toThrow(/acl\.conf:1: access must be read, write, readwrite or deny/);
    expect(() => parseAclFile("user\n", "acl.conf")).toThrow(/acl\.conf:1: user without a name/);
    expect(() => parseAclFile("\n\ntopic read a/#/b\n", "acl.conf")).toThrow(/acl\.conf:3: invalid topic/);
    expect(() => parseAclFile("topic\n", "acl.conf")).toThrow(/acl\.conf:1: topic without a topic/);
  });

  test("CRLF line ends and indented comments are accepted", () => {
    const { rules } = parseAclFile("  # note\r\nuser a\r\ntopic read x/#\r\n");
    expect(new AccessControl(rules).forClient("a", "c").canRead("x/1")).toBe(true);
  });
});
