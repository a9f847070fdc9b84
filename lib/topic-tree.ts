/**
 * @module topic-tree
 * Subscription matching: a trie of topic levels with literal children in a
 * Map and the `+` / `#` children in their own fields, so a match probes
 * literal, then `+`, then `#` per level without scanning. Rules made
 * structural here:
 * - a filter starting with `+` or `#` never matches a topic starting with `$`
 *   ([MQTT-4.7.2-1]): the root's wildcard children are skipped for such topics;
 * - `a/#` matches `a` ([MQTT-4.7.1-2] 3.1.1 / [MQTT-4.7.1-1] 5): a `#` child
 *   also matches at its parent;
 * - `+` matches exactly one level, which may be empty.
 * Nodes that lose their last subscription are pruned.
 */
import type { QoS } from "./message.ts";

/** One subscription of one session. `S` is the session type (kept opaque here). */
export class Subscription<S = unknown> {
  /** Index in its node's `subs` array (for O(1) removal). */
  slot = -1;

  constructor(
    readonly session: S,
    /** The filter as the client sent it (with any `$share/{group}/` prefix). */
    readonly filter: string,
    public qos: QoS,
    public noLocal: boolean,
    public rap: boolean,
    public rh: number,
    /** Subscription Identifier, 0 when none. */
    public subId: number,
    /** Shared-subscription group name, or null. */
    readonly group: string | null,
    /** The filter that is matched (without the `$share/` prefix). */
    readonly matchFilter: string,
  ) {}
}

/** Members of one shared subscription group on one filter. */
export class SharedGroup<S = unknown> {
  members: Subscription<S>[] = [];
  /** Round-robin cursor. */
  next = 0;
  constructor(
    readonly name: string,
    readonly filter: string,
  ) {}
}

class Node<S> {
  children: Map<string, Node<S>> | null = null;
  plus: Node<S> | null = null;
  hash: Node<S> | null = null;
  subs: Subscription<S>[] = [];
  shared: Map<string, SharedGroup<S>> | null = null;

  constructor(
    readonly parent: Node<S> | null,
    readonly key: string,
  ) {}

  isEmpty(): boolean {
    return (
      this.subs.length === 0 &&
      (this.shared === null || this.shared.size === 0) &&
      (this.children === null || this.children.size === 0) &&
      this.plus === null &&
      this.hash === null
    );
  }
}

export class TopicTree<S> {
  private readonly root = new Node<S>(null, "");
  /** Non-shared plus shared subscriptions held. */
  count = 0;
  /** Bumped on every change, so match results cached by callers can be invalidated. */
  version = 0;

  /** Add a subscription (the caller guarantees one per session and filter). */
  add(sub: Subscription<S>): void {
    const node = this.nodeFor(sub.matchFilter, true)!;
    if (sub.group === null) {
      sub.slot = node.subs.length;
      node.subs.push(sub);
    } else {
      node.shared ??= new Map();
      let g = node.shared.get(sub.group);
      if (!g) node.shared.set(sub.group, (g = new SharedGroup<S>(sub.group, sub.matchFilter)));
      sub.slot = g.members.length;
      g.members.push(sub);
    }
    this.count++;
    this.version++;
  }

  /** Remove a subscription previously added. */
  remove(sub: Subscription<S>): void {
    const node = this.nodeFor(sub.matchFilter, false);
    if (!node || sub.slot < 0) return;
    if (sub.group === null) {
      swapRemove(node.subs, sub);
    } else {
      const g = node.shared?.get(sub.group);
      if (!g) return;
      swapRemove(g.members, sub);
      if (g.next >= g.members.length) g.next = 0;
      if (g.members.length === 0) node.shared!.delete(sub.group);
    }
    sub.slot = -1;
    this.count--;
    this.version++;
    this.prune(node);
  }

  /**
   * Collect every subscription matching `topic` into `out` and every shared
   * group into `groups` (both are cleared first). Returns `out.length`.
   */
  match(topic: string, out: Subscription<S>[], groups: SharedGroup<S>[]): number {
    out.length = 0;
    groups.length = 0;
    const dollar = topic.charCodeAt(0) === 0x24; // '$'
    this.walk(this.root, topic, 0, dollar, out, groups);
    return out.length;
  }

  private walk(node: Node<S>, topic: string, start: number, skipWild: boolean, out: Subscription<S>[], groups: SharedGroup<S>[]): void {
    if (start > topic.length) {
      collect(node, out, groups);
      if (node.hash !== null) collect(node.hash, out, groups); // `a/#` matches `a`
      return;
    }
    if (!skipWild) {
      if (node.hash !== null) collect(node.hash, out, groups);
      if (node.plus !== null) this.walk(node.plus, topic, nextLevel(topic, start), false, out, groups);
    }
    if (node.children !== null) {
      let end = topic.indexOf("/", start);
      if (end < 0) end = topic.length;
      const child = node.children.get(topic.substring(start, end));
      if (child !== undefined) this.walk(child, topic, end + 1, false, out, groups);
    }
  }

  private nodeFor(filter: string, create: boolean): Node<S> | null {
    let node = this.root;
    let start = 0;
    for (;;) {
      let end = filter.indexOf("/", start);
      if (end < 0) end = filter.length;
      const level = filter.substring(start, end);
      let next: Node<S> | null | undefined;
      if (level === "+") {
        next = node.plus;
        if (!next && create) next = node.plus = new Node(node, "+");
      } else if (level === "#") {
        next = node.hash;
        if (!next && create) next = node.hash = new Node(node, "#");
      } else {
        next = node.children?.get(level);
        if (!next && create) {
          node.children ??= new Map();
          node.children.set(level, (next = new Node(node, level)));
        }
      }
      if (!next) return null;
      node = next;
      if (end >= filter.length) return node;
      start = end + 1;
    }
  }

  private prune(node: Node<S>): void {
    while (node.parent !== null && node.isEmpty()) {
      const parent = node.parent;
      if (parent.plus === node) parent.plus = null;
      else if (parent.hash === node) parent.hash = null;
      else parent.children?.delete(node.key);
      node = parent;
    }
  }
}

function nextLevel(topic: string, start: number): number {
  const end = topic.indexOf("/", start);
  return end < 0 ? topic.length + 1 : end + 1;
}

function collect<S>(node: Node<S>, out: Subscription<S>[], groups: SharedGroup<S>[]): void {
  const subs = node.subs;
  for (let i = 0; i < subs.length; i++) out.push(subs[i]!);
  if (node.shared !== null) for (const g of node.shared.values()) groups.push(g);
}

function swapRemove<S>(arr: Subscription<S>[], sub: Subscription<S>): void {
  const i = sub.slot;
  if (arr[i] !== sub) return;
  const last = arr.pop()!;
  if (last !== sub) {
    arr[i] = last;
    last.slot = i;
  }
}

/**
 * True when `topic` matches `filter` (no `$share/` prefix), with the same
 * rules as the trie. Used for retained messages, ACLs and tests.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 && (filter[0] === "+" || filter[0] === "#")) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
