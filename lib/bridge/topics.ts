/**
 * @module bridge/topics
 * A bridge's topic entries turned into what the hot path needs: the local
 * and upstream subscriptions, and the mapping of a topic from one side to
 * the other, as Mosquitto's `topic PATTERN DIR QOS LOCAL REMOTE` lines do:
 * outgoing, `localPrefix` is stripped and `remotePrefix` added; incoming,
 * the reverse. Mapped topics are cached per topic string (bounded).
 *
 * `EchoFilter` is the origin marker for a 3.1.1 upstream that does not
 * honour the bridge bit: it remembers what went out (topic + payload) for
 * a short while, and an identical message that comes back is the upstream
 * echoing our own publish, acknowledged and dropped.
 */
import { runtime } from "../runtime/index.ts";
import { topicMatches } from "../topic-tree.ts";
import type { BridgeTopicConfig } from "./config.ts";

interface Entry {
  /** The filter on this side (prefix + pattern). */
  filter: string;
  /** Stripped from the matched topic. */
  strip: string;
  /** Added to what is left. */
  add: string;
}

/** Topics cached per direction before the cache is cleared (a bound on memory). */
const CACHE_MAX = 10_000;

export class TopicMap {
  /** Local filters to subscribe to, with their QoS (out / both). */
  readonly localSubs: { filter: string; qos: 0 | 1 | 2 }[] = [];
  /** Upstream filters to subscribe to, with their QoS (in / both). */
  readonly remoteSubs: { filter: string; qos: 0 | 1 | 2 }[] = [];
  private readonly out: Entry[] = [];
  private readonly in: Entry[] = [];
  /** No prefix anywhere: topics go through unchanged. */
  readonly identity: boolean;
  private readonly outCache = new Map<string, Buffer>();
  private readonly inCache = new Map<string, string | null>();

  constructor(topics: readonly BridgeTopicConfig[]) {
    let identity = true;
    for (const t of topics) {
      if (t.localPrefix !== "" || t.remotePrefix !== "") identity = false;
      const qos = t.qos as 0 | 1 | 2;
      if (t.direction !== "in") {
        this.localSubs.push({ filter: t.localPrefix + t.pattern, qos });
        this.out.push({ filter: t.localPrefix + t.pattern, strip: t.localPrefix, add: t.remotePrefix });
      }
      if (t.direction !== "out") {
        this.remoteSubs.push({ filter: t.remotePrefix + t.pattern, qos });
        this.in.push({ filter: t.remotePrefix + t.pattern, strip: t.remotePrefix, add: t.localPrefix });
      }
    }
    this.identity = identity;
  }

  /** The upstream topic of a local one, as bytes; the first matching entry decides (unchanged when none does). */
  remoteBytes(local: string): Buffer {
    let b = this.outCache.get(local);
    if (b === undefined) {
      const e = this.out.find((x) => topicMatches(x.filter, local));
      b = Buffer.from(e === undefined ? local : e.add + local.slice(e.strip.length), "utf8");
      if (this.outCache.size >= CACHE_MAX) this.outCache.clear();
      this.outCache.set(local, b);
    }
    return b;
  }

  /** The local topic of an upstream one, or null when no `in`/`both` entry matches it. */
  localTopic(remote: string): string | null {
    let t = this.inCache.get(remote);
    if (t === undefined) {
      const e = this.in.find((x) => topicMatches(x.filter, remote));
      t = e === undefined ? null : e.add + remote.slice(e.strip.length);
      if (this.inCache.size >= CACHE_MAX) this.inCache.clear();
      this.inCache.set(remote, t);
    }
    return t;
  }
}

/** How long a sent message is remembered for echo detection: two generations of this. */
const ECHO_GENERATION_MS = 30_000;
/** Fingerprints held per generation, at most (a bound on memory under a flood). */
const ECHO_MAX = 100_000;

export class EchoFilter {
  private cur = new Map<string, number>();
  private prev = new Map<string, number>();
  private since: number;
  /** Echoes recognised and dropped. */
  dropped = 0;

  constructor(now: number) {
    this.since = now;
  }

  private key(topic: Buffer | string, payload: Uint8Array): string {
    return `${typeof topic === "string" ? topic : topic.toString("utf8")}\u0000${runtime().hash(payload)}`;
  }

  private roll(now: number): void {
    if (now - this.since < ECHO_GENERATION_MS && this.cur.size < ECHO_MAX) return;
    this.prev = this.cur;
    this.cur = new Map();
    this.since = now;
  }

  /** A message went upstream on `topic`. */
  sent(topic: Buffer, payload: Uint8Array, now: number): void {
    this.roll(now);
    const k = this.key(topic, payload);
    this.cur.set(k, (this.cur.get(k) ?? 0) + 1);
  }

  /** A message arrived from upstream: true when it is the echo of one we sent (it is then forgotten). */
  isEcho(topic: string, payload: Uint8Array, now: number): boolean {
    this.roll(now);
    const k = this.key(topic, payload);
    for (const m of [this.cur, this.prev]) {
      const n = m.get(k);
      if (n === undefined) continue;
      if (n <= 1) m.delete(k);
      else m.set(k, n - 1);
      this.dropped++;
      return true;
    }
    return false;
  }
}
