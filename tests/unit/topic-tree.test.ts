/**
 * Pure data structures of the routing path: the subscription trie
 * (lib/topic-tree.ts), the retained store (lib/retained.ts), the string and
 * topic validators (lib/protocol/validate.ts) and the in-flight table
 * (lib/session.ts). Matching rules: [MQTT-4.7.1-1..3], [MQTT-4.7.2-1], §4.7.3.
 */
import { describe, expect, test } from "bun:test";
import { Delivery, Message, type QoS } from "../../lib/message.ts";
import { MqttError, RC } from "../../lib/protocol/reason-codes.ts";
import { decodeUtf8, isValidFilter, parseSharedFilter, topicNameError } from "../../lib/protocol/validate.ts";
import { RetainedStore } from "../../lib/retained.ts";
import { InflightTable } from "../../lib/session.ts";
import { type SharedGroup, Subscription, TopicTree, topicMatches } from "../../lib/topic-tree.ts";

function sub(session: string, filter: string, opts: { qos?: QoS; group?: string; subId?: number } = {}): Subscription<string> {
  const group = opts.group ?? null;
  const full = group === null ? filter : `$share/${group}/${filter}`;
  return new Subscription<string>(session, full, opts.qos ?? 0, false, false, 0, opts.subId ?? 0, group, filter);
}

function matchIds(tree: TopicTree<string>, topic: string): { subs: string[]; groups: SharedGroup<string>[] } {
  const out: Subscription<string>[] = [];
  const groups: SharedGroup<string>[] = [];
  const n = tree.match(topic, out, groups);
  expect(n).toBe(out.length);
  return { subs: out.map((s) => `${s.session}:${s.filter}`).sort(), groups: [...groups] };
}

/** [filter, topic, matches] */
const TABLE: [string, string, boolean][] = [
  // exact
  ["a/b/c", "a/b/c", true],
  ["a/b/c", "a/b", false],
  ["a/b", "a/b/c", false],
  ["A/b", "a/b", false], // case-sensitive [MQTT-4.7.3-4]
  ["a b/c", "a b/c", true], // spaces are ordinary characters
  // `#` [MQTT-4.7.1-2] 3.1.1 / [MQTT-4.7.1-1] 5
  ["#", "a", true],
  ["#", "a/b/c", true],
  ["#", "/", true],
  ["#", "/a", true],
  ["a/#", "a", true], // the parent level
  ["a/#", "a/", true],
  ["a/#", "a/b", true],
  ["a/#", "a/b/c/d", true],
  ["a/#", "b", false],
  ["a/#", "ab", false],
  ["a/b/#", "a", false],
  ["a/b/#", "a/b", true],
  ["/#", "/a", true],
  ["/#", "a", false],
  // `+` matches exactly one level, possibly empty [MQTT-4.7.1-3] 3.1.1 / [MQTT-4.7.1-2] 5
  ["+", "a", true],
  ["+", "a/b", false],
  ["+", "/x", false],
  ["+", "", true],
  ["a/+", "a/b", true],
  ["a/+", "a/", true], // empty level
  ["a/+", "a", false],
  ["a/+", "a/b/c", false],
  ["a/+/c", "a//c", true],
  ["a/+/c", "a/b/c", true],
  ["a/+/c", "a/b/d", false],
  ["+/+", "/x", true],
  ["/+", "/x", true],
  ["+/+", "a", false],
  ["+/#", "a", true],
  ["+/#", "a/b/c", true],
  ["+/b/#", "a/b", true],
  ["+/b/#", "a/c", false],
  ["a/+/#", "a/b", true],
  ["a/+/#", "a", false],
  // leading and trailing slashes make different topics (§4.7.3)
  ["/a", "a", false],
  ["a", "/a", false],
  ["/a", "/a", true],
  ["a/", "a", false],
  ["a/", "a/", true],
  ["/", "/", true],
  ["a//b", "a//b", true],
  ["a//b", "a/b", false],
  // `$` topics [MQTT-4.7.2-1]
  ["#", "$SYS/x", false],
  ["+/x", "$SYS/x", false],
  ["+/#", "$SYS/x", false],
  ["+", "$SYS", false],
  ["$SYS/#", "$SYS/x", true],
  ["$SYS/#", "$SYS", true],
  ["$SYS/+", "$SYS/x", true],
  ["$SYS/x", "$SYS/x", true],
  ["+/monitor/Clients", "$SYS/monitor/Clients", false],
  ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
  ["a/+", "a/$b", true], // `$` only matters at the first level
  ["a/#", "a/$b", true],
  ["#", "x$", true],
  // unicode, no normalization
  ["é/+", "é/x", true],
  ["é/+", "e\u0301/x", false],
  ["😀/#", "😀/a/b", true],
];

describe("matching table: TopicTree.match and topicMatches agree", () => {
  for (const [filter, topic, expected] of TABLE) {
    test(`${JSON.stringify(filter)} ${expected ? "matches" : "does not match"} ${JSON.stringify(topic)}`, () => {
      expect(topicMatches(filter, topic)).toBe(expected);
      const tree = new TopicTree<string>();
      tree.add(sub("s", filter));
      // a decoy that must never interfere
      tree.add(sub("decoy", "zzz/never"));
      expect(matchIds(tree, topic).subs).toEqual(expected ? [`s:${filter}`] : []);
    });
  }

  test("all filters in one tree: each topic gets exactly the table's matches", () => {
    const tree = new TopicTree<string>();
    const filters = [...new Set(TABLE.map(([f]) => f))];
    for (const f of filters) tree.add(sub("s", f));
    expect(tree.count).toBe(filters.length);
    for (const topic of new Set(TABLE.map(([, t]) => t))) {
      const expected = filters.filter((f) => topicMatches(f, topic)).map((f) => `s:${f}`).sort();
      expect({ topic, got: matchIds(tree, topic).subs }).toEqual({ topic, got: expected });
    }
  });
});

describe("TopicTree", () => {
  test("several subscriptions of different sessions matching one topic are all returned", () => {
    const tree = new TopicTree<string>();
    tree.add(sub("a", "x/y"));
    tree.add(sub("b", "x/+"));
    tree.add(sub("c", "#"));
    tree.add(sub("d", "x/#"));
    tree.add(sub("e", "+/y"));
    tree.add(sub("f", "x/z"));
    expect(matchIds(tree, "x/y").subs).toEqual(["a:x/y", "b:x/+", "c:#", "d:x/#", "e:+/y"]);
  });

  test("shared groups are returned separately, one entry per group, not as subscriptions", () => {
    const tree = new TopicTree<string>();
    tree.add(sub("s1", "a/+", { group: "g1" }));
    tree.add(sub("s2", "a/+", { group: "g1" }));
    tree.add(sub("s3", "a/+", { group: "g2" }));
    tree.add(sub("s4", "a/#", { group: "g1" }));
    tree.add(sub("plain", "a/b"));
    expect(tree.count).toBe(5);
    const { subs, groups } = matchIds(tree, "a/b");
    expect(subs).toEqual(["plain:a/b"]);
    const summary = groups.map((g) => `${g.filter}|${g.name}|${g.members.map((m) => m.session).sort().join(",")}`).sort();
    expect(summary).toEqual(["a/#|g1|s4", "a/+|g1|s1,s2", "a/+|g2|s3"]);
    // A topic only the shared filters see.
    const only = matchIds(tree, "a/c");
    expect(only.subs).toEqual([]);
    expect(only.groups.length).toBe(3);
    // Shared filters obey the `$` rule too.
    const tree2 = new TopicTree<string>();
    tree2.add(sub("s", "#", { group: "g" }));
    expect(matchIds(tree2, "$SYS/x").groups).toEqual([]);
    expect(matchIds(tree2, "x").groups.length).toBe(1);
  });

  test("match clears its output arrays first", () => {
    const tree = new TopicTree<string>();
    tree.add(sub("s", "a"));
    const out: Subscription<string>[] = [sub("stale", "zzz")];
    const groups: SharedGroup<string>[] = [{ name: "stale" } as SharedGroup<string>];
    expect(tree.match("b", out, groups)).toBe(0);
    expect(out).toEqual([]);
    expect(groups).toEqual([]);
  });

  test("remove prunes: count goes back, the trie is empty again, and a re-add works", () => {
    const tree = new TopicTree<string>();
    const root = (tree as unknown as { root: { isEmpty(): boolean } }).root;
    const subs = [
      sub("a", "x/y/z"),
      sub("b", "x/+/z"),
      sub("c", "x/#"),
      sub("d", "#"),
      sub("e", "+"),
      sub("f", "x/y/z", { group: "g" }),
      sub("g", "x/y/z", { group: "g" }),
      sub("h", "deep/a/b/c/d/e/f"),
    ];
    for (const s of subs) tree.add(s);
    expect(tree.count).toBe(subs.length);
    expect(root.isEmpty()).toBe(false);
    for (const s of subs) tree.remove(s);
    expect(tree.count).toBe(0);
    expect(root.isEmpty()).toBe(true);
    expect(matchIds(tree, "x/y/z")).toEqual({ subs: [], groups: [] });
    // Removing twice is harmless and does not drive the count negative.
    tree.remove(subs[0]!);
    expect(tree.count).toBe(0);
    // Re-add the same filters (new subscriptions and the removed objects).
    tree.add(sub("a2", "x/y/z"));
    tree.add(subs[2]!);
    expect(tree.count).toBe(2);
    expect(matchIds(tree, "x/y/z").subs).toEqual(["a2:x/y/z", "c:x/#"]);
  });

  test("removing one subscription keeps its siblings and the branch they need", () => {
    const tree = new TopicTree<string>();
    const deep = sub("deep", "a/b/c");
    const mid = sub("mid", "a/b");
    tree.add(deep);
    tree.add(mid);
    tree.remove(deep);
    expect(matchIds(tree, "a/b").subs).toEqual(["mid:a/b"]);
    expect(matchIds(tree, "a/b/c").subs).toEqual([]);
    tree.remove(mid);
    tree.add(sub("again", "a/b/c"));
    expect(matchIds(tree, "a/b/c").subs).toEqual(["again:a/b/c"]);
  });

  test("removing the last member of a shared group removes the group", () => {
    const tree = new TopicTree<string>();
    const m1 = sub("m1", "t", { group: "g" });
    const m2 = sub("m2", "t", { group: "g" });
    tree.add(m1);
    tree.add(m2);
    tree.remove(m1);
    expect(matchIds(tree, "t").groups.map((g) => g.members.map((m) => m.session))).toEqual([["m2"]]);
    tree.remove(m2);
    expect(matchIds(tree, "t").groups).toEqual([]);
    expect(tree.count).toBe(0);
  });

  test("many subscribers on one node: removals in any order keep exactly the rest", () => {
    const tree = new TopicTree<string>();
    const N = 2000;
    const all = Array.from({ length: N }, (_, i) => sub(`s${i}`, "hot/topic"));
    for (const s of all) tree.add(s);
    expect(matchIds(tree, "hot/topic").subs.length).toBe(N);
    // Remove a pseudo-random half (swap-remove must keep slots right).
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const order = all.map((s) => ({ s, k: rnd() })).sort((a, b) => a.k - b.k).map((x) => x.s);
    const removed = new Set(order.slice(0, N / 2));
    for (const s of order.slice(0, N / 2)) tree.remove(s);
    expect(tree.count).toBe(N / 2);
    const expected = all.filter((s) => !removed.has(s)).map((s) => `${s.session}:hot/topic`).sort();
    expect(matchIds(tree, "hot/topic").subs).toEqual(expected);
    for (const s of order.slice(N / 2)) tree.remove(s);
    expect(tree.count).toBe(0);
    expect(matchIds(tree, "hot/topic").subs).toEqual([]);
  });
});

describe("RetainedStore", () => {
  const m = (topic: string, payload = "p", expiresAt = 0) => new Message(topic, Buffer.from(payload), 0, true, null, expiresAt, "c");
  const topics = (msgs: Message[]) => msgs.map((x) => x.topic).sort();

  test("set, replace, delete [MQTT-3.3.1-5], [MQTT-3.3.1-10]", () => {
    const r = new RetainedStore();
    expect(r.set(m("a/b", "1"))).toBeNull();
    expect(r.size).toBe(1);
    const second = m("a/b", "2");
    expect(r.set(second)!.payload.toString()).toBe("1");
    expect(r.size).toBe(1);
    expect(r.get("a/b")).toBe(second);
    expect(r.get("a")).toBeNull();
    expect(r.get("a/b/c")).toBeNull();
    r.set(m("a"));
    expect(r.size).toBe(2);
    expect(r.delete("a/b")).toBe(second);
    expect(r.size).toBe(1);
    expect(r.get("a/b")).toBeNull();
    expect(r.get("a")).not.toBeNull();
    expect(r.delete("a/b")).toBeNull();
    expect(r.delete("nothing/here")).toBeNull();
    expect(r.size).toBe(1);
    r.delete("a");
    expect(r.size).toBe(0);
    expect(r.all()).toEqual([]);
    expect((r as unknown as { root: { children: Map<string, unknown> | null } }).root.children?.size ?? 0).toBe(0);
  });

  test("match with wildcards", () => {
    const r = new RetainedStore();
    for (const t of ["a", "a/b", "a/c", "a/b/c", "a/", "/a", "b/b", "a//c"]) r.set(m(t));
    expect(topics(r.match("a/b", 0))).toEqual(["a/b"]);
    expect(topics(r.match("a/+", 0))).toEqual(["a/", "a/b", "a/c"]);
    expect(topics(r.match("a/#", 0))).toEqual(["a", "a/", "a//c", "a/b", "a/b/c", "a/c"]);
    expect(topics(r.match("+/b", 0))).toEqual(["a/b", "b/b"]);
    expect(topics(r.match("+/+/c", 0))).toEqual(["a//c", "a/b/c"]);
    expect(topics(r.match("+", 0))).toEqual(["a"]);
    expect(topics(r.match("/+", 0))).toEqual(["/a"]);
    expect(topics(r.match("#", 0))).toEqual(["/a", "a", "a/", "a//c", "a/b", "a/b/c", "a/c", "b/b"]);
    expect(topics(r.match("+/#", 0))).toEqual(["/a", "a", "a/", "a//c", "a/b", "a/b/c", "a/c", "b/b"]);
    expect(topics(r.match("x/#", 0))).toEqual([]);
    // Every match agrees with topicMatches.
    for (const f of ["a/+", "+/+", "#", "a/#", "+/#", "/#", "+/b/#", "a/+/+"]) {
      expect({ f, got: topics(r.match(f, 0)) }).toEqual({ f, got: topics(r.all()).filter((t) => topicMatches(f, t)) });
    }
  });

  test("`$` rule: root wildcards do not see `$` topics; `$SYS/#` does [MQTT-4.7.2-1]", () => {
    const r = new RetainedStore();
    r.set(m("$SYS/broker/uptime"));
    r.set(m("$SYS"));
    r.set(m("normal/x"));
    r.set(m("a/$b"));
    expect(topics(r.match("#", 0))).toEqual(["a/$b", "normal/x"]);
    expect(topics(r.match("+/broker/uptime", 0))).toEqual([]);
    expect(topics(r.match("+", 0))).toEqual([]);
    expect(topics(r.match("+/#", 0))).toEqual(["a/$b", "normal/x"]);
    expect(topics(r.match("$SYS/#", 0))).toEqual(["$SYS", "$SYS/broker/uptime"]);
    expect(topics(r.match("$SYS/+/uptime", 0))).toEqual(["$SYS/broker/uptime"]);
    expect(topics(r.match("a/+", 0))).toEqual(["a/$b"]);
  });

  test("expired messages are removed when met and reported (v5 §3.3.1.3)", () => {
    const r = new RetainedStore();
    r.set(m("e/old", "x", 1000));
    r.set(m("e/new", "y", 5000));
    r.set(m("e/never", "z", 0));
    const gone: Message[] = [];
    expect(topics(r.match("e/+", 999, (x) => gone.push(x)))).toEqual(["e/never", "e/new", "e/old"]);
    expect(gone).toEqual([]);
    expect(topics(r.match("e/+", 1000, (x) => gone.push(x)))).toEqual(["e/never", "e/new"]);
    expect(topics(gone)).toEqual(["e/old"]);
    expect(r.size).toBe(2);
    expect(r.get("e/old")).toBeNull();
    expect(topics(r.match("#", 10_000, (x) => gone.push(x)))).toEqual(["e/never"]);
    expect(topics(gone)).toEqual(["e/new", "e/old"]);
    expect(r.size).toBe(1);
    // A topic whose message expired can be retained again.
    r.set(m("e/old", "again"));
    expect(r.get("e/old")!.payload.toString()).toBe("again");
    expect(r.size).toBe(2);
  });

  test("an expired parent does not take its children with it", () => {
    const r = new RetainedStore();
    r.set(m("p", "x", 10));
    r.set(m("p/c", "y"));
    expect(topics(r.match("p/#", 100))).toEqual(["p/c"]);
    expect(r.size).toBe(1);
    expect(r.get("p/c")).not.toBeNull();
  });
});

describe("decodeUtf8 [MQTT-1.5.4-1], [MQTT-1.5.4-2], [MQTT-1.5.4-3]", () => {
  const dec = (bytes: number[]) => {
    const b = Buffer.from([0xaa, ...bytes, 0xbb]); // decode a slice, not the whole buffer
    return decodeUtf8(b, 1, 1 + bytes.length);
  };
  const code = (bytes: number[]) => {
    try {
      dec(bytes);
    } catch (e) {
      expect(e).toBeInstanceOf(MqttError);
      return (e as MqttError).code;
    }
    return -1;
  };

  test("ascii, empty, multibyte", () => {
    expect(dec([])).toBe("");
    expect(dec([...Buffer.from("hello/world")])).toBe("hello/world");
    expect(dec([...Buffer.from("héllo 日本 😀", "utf8")])).toBe("héllo 日本 😀");
    expect(dec([0x7f])).toBe("\u007f");
    expect(dec([0xf4, 0x8f, 0xbf, 0xbf])).toBe("\u{10FFFF}");
  });

  test("a leading BOM (EF BB BF) is kept as U+FEFF", () => {
    expect(dec([0xef, 0xbb, 0xbf, 0x61])).toBe("\uFEFFa");
    expect(dec([0x61, 0xef, 0xbb, 0xbf])).toBe("a\uFEFF");
  });

  const bad: [string, number[]][] = [
    ["lone continuation", [0x80]],
    ["truncated 2-byte", [0x61, 0xc3]],
    ["truncated 3-byte", [0xe6, 0x97]],
    ["truncated 4-byte", [0xf0, 0x9f, 0x98]],
    ["overlong 2-byte '/'", [0xc0, 0xaf]],
    ["overlong 2-byte C1", [0xc1, 0xbf]],
    ["overlong 3-byte", [0xe0, 0x80, 0xaf]],
    ["overlong 4-byte", [0xf0, 0x80, 0x80, 0xaf]],
    ["high surrogate U+D800", [0xed, 0xa0, 0x80]],
    ["low surrogate U+DFFF", [0xed, 0xbf, 0xbf]],
    ["surrogate pair encoded as CESU-8", [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]],
    ["beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["F5 lead byte", [0xf5, 0x80, 0x80, 0x80]],
    ["FE", [0xfe]],
    ["FF", [0xff]],
  ];
  for (const [name, bytes] of bad) {
    test(`${name} → 0x81`, () => {
      expect(code(bytes)).toBe(RC.MALFORMED_PACKET);
    });
  }

  test("U+0000 → 0x81, in ascii and in non-ascii strings", () => {
    expect(code([0x00])).toBe(RC.MALFORMED_PACKET);
    expect(code([0x61, 0x00])).toBe(RC.MALFORMED_PACKET);
    expect(code([0xc3, 0xa9, 0x00])).toBe(RC.MALFORMED_PACKET);
    expect(code([0xc3, 0xa9, 0x61, 0x00, 0x62])).toBe(RC.MALFORMED_PACKET);
    // The overlong NUL (C0 80, "modified UTF-8") is ill-formed too.
    expect(code([0xc0, 0x80])).toBe(RC.MALFORMED_PACKET);
  });
});

describe("topicNameError", () => {
  const cases: [string, number][] = [
    ["a", 0],
    ["a/b/c", 0],
    ["/", 0],
    ["/a", 0],
    ["a/", 0],
    ["a//b", 0],
    ["$SYS/x", 0],
    ["spaces are fine", 0],
    ["日本/😀", 0],
    ["", RC.PROTOCOL_ERROR], // [MQTT-4.7.3-1]
    ["+", RC.PROTOCOL_ERROR], // [MQTT-3.3.2-2]
    ["#", RC.PROTOCOL_ERROR],
    ["a/+/b", RC.PROTOCOL_ERROR],
    ["a/#", RC.PROTOCOL_ERROR],
    ["a+", RC.PROTOCOL_ERROR],
    ["a#b", RC.PROTOCOL_ERROR],
    ["a\u0000b", RC.MALFORMED_PACKET], // [MQTT-4.7.3-2]
  ];
  for (const [topic, expected] of cases) {
    test(`${JSON.stringify(topic)} → ${expected}`, () => {
      expect(topicNameError(topic, 128)).toBe(expected);
    });
  }

  test("level count: exactly maxLevels is fine, one more is Topic Name invalid", () => {
    expect(topicNameError("a/b/c", 3)).toBe(0);
    expect(topicNameError("a/b/c/d", 3)).toBe(RC.TOPIC_NAME_INVALID);
    expect(topicNameError("///", 4)).toBe(0);
    expect(topicNameError("////", 4)).toBe(RC.TOPIC_NAME_INVALID);
  });
});

describe("isValidFilter", () => {
  const cases: [string, boolean][] = [
    ["a", true],
    ["#", true],
    ["+", true],
    ["a/#", true],
    ["a/+", true],
    ["+/+", true],
    ["+/#", true],
    ["a/+/b/#", true],
    ["/", true],
    ["//", true],
    ["/#", true],
    ["a//b", true],
    ["$SYS/#", true],
    ["日本/+", true],
    ["", false], // [MQTT-4.7.3-1]
    ["a#", false],
    ["a/b#", false],
    ["#/a", false],
    ["a/#/b", false],
    ["##", false],
    ["a+", false],
    ["+a", false],
    ["a/+b", false],
    ["a/b+/c", false],
    ["++", false],
    ["a\u0000", false],
  ];
  for (const [filter, valid] of cases) {
    test(`${JSON.stringify(filter)} is ${valid ? "valid" : "invalid"}`, () => {
      expect(isValidFilter(filter, 128)).toBe(valid);
    });
  }

  test("level count limit", () => {
    expect(isValidFilter("a/b/#", 3)).toBe(true);
    expect(isValidFilter("a/b/c/#", 3)).toBe(false);
  });
});

describe("parseSharedFilter [MQTT-4.8.2-1], [MQTT-4.8.2-2]", () => {
  const cases: [string, ReturnType<typeof parseSharedFilter>][] = [
    ["$share/g/t", { group: "g", filter: "t" }],
    ["$share/group-1/a/+/#", { group: "group-1", filter: "a/+/#" }],
    ["$share/g/#", { group: "g", filter: "#" }],
    ["$share/g//x", { group: "g", filter: "/x" }],
    ["$share/g", "invalid"],
    ["$share/", "invalid"],
    ["$share//t", "invalid"],
    ["$share/g+/t", "invalid"],
    ["$share/g#/t", "invalid"],
    ["$share/+/t", "invalid"],
    ["$share/g/a#", "invalid"],
    ["$share/g/", "invalid"],
    ["$share/g/a/#/b", "invalid"],
    ["a/b", null],
    ["$SYS/#", null],
    ["$sharex/g/t", null],
    ["$Share/g/t", null],
  ];
  for (const [filter, expected] of cases) {
    test(`${JSON.stringify(filter)} → ${JSON.stringify(expected)}`, () => {
      expect(parseSharedFilter(filter, 128)).toEqual(expected);
    });
  }
});

describe("InflightTable", () => {
  const delivery = (id: number, seq: number) => {
    const d = new Delivery(new Message("t", Buffer.alloc(0), 1, false, null, 0, ""), 1, false, null);
    d.packetId = id;
    d.seq = seq;
    return d;
  };

  test("get / add / remove", () => {
    const t = new InflightTable();
    const d = delivery(5, 0);
    t.add(d);
    expect(t.count).toBe(1);
    expect(t.get(5)).toBe(d);
    expect(t.get(21)).toBeUndefined(); // same slot in a 16-slot table, different id
    expect(t.remove(21)).toBeUndefined();
    expect(t.remove(5)).toBe(d);
    expect(t.count).toBe(0);
    expect(t.get(5)).toBeUndefined();
  });

  test("ids start at 1 and run in sequence", () => {
    const t = new InflightTable();
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = t.nextId();
      ids.push(id);
      t.add(delivery(id, i));
    }
    expect(ids).toEqual([1, 2, 3, 4, 5]);
  });

  test("nextId never returns an id in flight (random add/remove) [MQTT-2.3.1-4] / [MQTT-2.2.1-4]", () => {
    const t = new InflightTable();
    const live = new Map<number, Delivery>();
    let seed = 42;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    let seq = 0;
    for (let i = 0; i < 150_000; i++) {
      if (live.size < 40 && (rnd() < 0.6 || live.size === 0)) {
        const id = t.nextId();
        expect(id).toBeGreaterThanOrEqual(1);
        expect(id).toBeLessThanOrEqual(65535);
        if (live.has(id)) throw new Error(`nextId returned ${id}, which is in flight (iteration ${i})`);
        const d = delivery(id, seq++);
        t.add(d);
        live.set(id, d);
      } else {
        const ids = [...live.keys()];
        const id = ids[Math.floor(rnd() * ids.length)]!;
        expect(t.remove(id)).toBe(live.get(id)!);
        live.delete(id);
      }
      if (i % 5000 === 0) {
        expect(t.count).toBe(live.size);
        for (const [id, d] of live) expect(t.get(id)).toBe(d);
      }
    }
  });

  test("wraps at 65535 to 1 and never returns 0", () => {
    const t = new InflightTable();
    let last = 0;
    for (let i = 1; i <= 65535; i++) {
      const id = t.nextId();
      expect(id).toBe(i);
      t.add(delivery(id, i));
      t.remove(id);
      last = id;
    }
    expect(last).toBe(65535);
    expect(t.nextId()).toBe(1);
  });

  test("after the wrap, ids still in flight are skipped", () => {
    const t = new InflightTable();
    // Put 1..3 in flight, then advance the counter to the end without using more ids.
    for (let i = 1; i <= 3; i++) t.add(delivery(t.nextId(), i));
    let id = 0;
    let calls = 0;
    while (id !== 65535) {
      id = t.nextId();
      expect(id === 1 || id === 2 || id === 3 || id === 0).toBe(false);
      if (++calls > 70_000) throw new Error("nextId never reached 65535");
    }
    id = t.nextId();
    expect(id).toBe(4); // 1..3 are still in flight
    expect(t.get(1)).toBeDefined();
  });

  test("grows past its initial 16 slots and keeps every entry reachable", () => {
    const t = new InflightTable();
    const all: Delivery[] = [];
    for (let i = 0; i < 1000; i++) {
      const d = delivery(t.nextId(), i);
      t.add(d);
      all.push(d);
    }
    expect(t.count).toBe(1000);
    expect(new Set(all.map((d) => d.packetId)).size).toBe(1000);
    for (const d of all) expect(t.get(d.packetId)).toBe(d);
    // Restored ids that collide in a small table (same low bits) are accepted too.
    const r = new InflightTable();
    const restored = [1, 17, 33, 49, 65, 1025, 4097].map((id, i) => delivery(id, i));
    for (const d of restored) r.add(d);
    for (const d of restored) expect(r.get(d.packetId)).toBe(d);
    expect(r.count).toBe(restored.length);
  });

  test("holds as many in flight as limits.maxInflight allows (up to 65535)", () => {
    // config.ts accepts maxInflight up to 65535; the table must be able to hold that many.
    const t = new InflightTable();
    try {
      for (let i = 0; i < 65535; i++) t.add(delivery(t.nextId(), i));
    } catch (e) {
      throw new Error(`the table refused a new packet id with only ${t.count} in flight: ${(e as Error).message}`);
    }
    expect(t.count).toBe(65535);
  });

  test("ordered() returns deliveries by seq, not by packet id or slot", () => {
    const t = new InflightTable();
    const spec: [number, number][] = [
      [40, 3],
      [2, 0],
      [65535, 1],
      [17, 4],
      [1, 2],
    ];
    for (const [id, seq] of spec) t.add(delivery(id, seq));
    expect(t.ordered().map((d) => d.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(t.ordered().map((d) => d.packetId)).toEqual([2, 65535, 1, 40, 17]);
    t.remove(1);
    expect(t.ordered().map((d) => d.packetId)).toEqual([2, 65535, 40, 17]);
  });

  test("clear empties the table", () => {
    const t = new InflightTable();
    for (let i = 0; i < 40; i++) t.add(delivery(t.nextId(), i));
    t.clear();
    expect(t.count).toBe(0);
    expect(t.ordered()).toEqual([]);
    const id = t.nextId();
    expect(id).toBeGreaterThan(0);
    t.add(delivery(id, 0));
    expect(t.get(id)).toBeDefined();
  });
});
