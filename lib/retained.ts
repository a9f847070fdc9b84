/**
 * @module retained
 * Retained messages, one per topic, in a trie of topic levels so that a
 * subscribe-time lookup walks only the branches its filter can match (no
 * scan of every retained topic). Same `$` rule as the subscription trie:
 * a filter starting with a wildcard never matches a `$` topic ([MQTT-4.7.2-1]).
 * Expired messages are dropped when met ([MQTT-3.3.2-5], v5 §3.3.1.3).
 */
import type { Message } from "./message.ts";

/** Nodes visited between two `null` yields of `matching()`. */
const WORK_TICK = 256;

class RNode {
  children: Map<string, RNode> | null = null;
  msg: Message | null = null;
  constructor(
    readonly parent: RNode | null,
    readonly key: string,
  ) {}
}

export class RetainedStore {
  private readonly root = new RNode(null, "");
  size = 0;

  get(topic: string): Message | null {
    let node: RNode | undefined = this.root;
    for (const level of topic.split("/")) {
      node = node.children?.get(level);
      if (!node) return null;
    }
    return node.msg;
  }

  /** Store or replace ([MQTT-3.3.1-5]); returns the previous message. */
  set(msg: Message): Message | null {
    let node = this.root;
    for (const level of msg.topic.split("/")) {
      node.children ??= new Map();
      let next = node.children.get(level);
      if (!next) node.children.set(level, (next = new RNode(node, level)));
      node = next;
    }
    const prev = node.msg;
    node.msg = msg;
    if (!prev) this.size++;
    return prev;
  }

  /** Remove the topic's retained message ([MQTT-3.3.1-10] 3.1.1 / [MQTT-3.3.1-6] 5). */
  delete(topic: string): Message | null {
    let node: RNode | undefined = this.root;
    for (const level of topic.split("/")) {
      node = node.children?.get(level);
      if (!node) return null;
    }
    const prev = node.msg;
    if (prev) {
      node.msg = null;
      this.size--;
      this.prune(node);
    }
    return prev;
  }

  /**
   * Every unexpired retained message matching `filter` (without `$share/`),
   * in topic-tree order. Expired ones met on the way are removed and passed
   * to `onExpired`.
   */
  match(filter: string, now: number, onExpired?: (m: Message) => void): Message[] {
    const out: Message[] = [];
    const expired: Message[] = [];
    for (const m of this.matching(filter)) {
      if (m === null) continue;
      if (m.expired(now)) expired.push(m);
      else out.push(m);
    }
    for (const m of expired) {
      this.delete(m.topic);
      onExpired?.(m);
    }
    return out;
  }

  /**
   * The retained messages matching `filter`, lazily, so that a subscription
   * over a million topics can be served across many event-loop turns. It
   * yields `null` every WORK_TICK nodes visited without a match, so the
   * consumer can bound the work per turn even for a sparse filter. Topics
   * added while it runs may or may not be visited; deleting topics while it
   * runs is safe (Map iteration tolerates deletion).
   */
  *matching(filter: string): Generator<Message | null, void, void> {
    yield* this.walk(this.root, filter.split("/"), 0, true, { n: 0 });
  }

  /** Every retained message (for persistence snapshots and tests). */
  all(): Message[] {
    const out: Message[] = [];
    const stack: RNode[] = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.msg) out.push(n.msg);
      if (n.children) for (const c of n.children.values()) stack.push(c);
    }
    return out;
  }

  private *walk(node: RNode, levels: string[], i: number, root: boolean, work: { n: number }): Generator<Message | null, void, void> {
    if (++work.n % WORK_TICK === 0) yield null;
    if (i === levels.length) {
      if (node.msg) yield node.msg;
      return;
    }
    const level = levels[i]!;
    if (level === "#") {
      // `#` matches the parent level too, then every descendant.
      if (!root && node.msg) yield node.msg;
      yield* this.descendants(node, root, work);
      return;
    }
    if (!node.children) return;
    if (level === "+") {
      for (const [key, child] of node.children) {
        if (root && key.charCodeAt(0) === 0x24) continue;
        yield* this.walk(child, levels, i + 1, false, work);
      }
      return;
    }
    const child = node.children.get(level);
    if (child) yield* this.walk(child, levels, i + 1, false, work);
  }

  private *descendants(node: RNode, root: boolean, work: { n: number }): Generator<Message | null, void, void> {
    if (!node.children) return;
    for (const [key, child] of node.children) {
      if (root && key.charCodeAt(0) === 0x24) continue;
      if (++work.n % WORK_TICK === 0) yield null;
      if (child.msg) yield child.msg;
      yield* this.descendants(child, false, work);
    }
  }

  private prune(node: RNode): void {
    while (node.parent && !node.msg && (!node.children || node.children.size === 0)) {
      node.parent.children!.delete(node.key);
      node = node.parent;
    }
  }
}
