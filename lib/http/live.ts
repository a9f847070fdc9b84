/**
 * @module http/live
 * What the dashboard watches live, one hub per broker: the rate history of
 * the last 15 minutes (a sample a second, kept from the http listener's
 * start, so a page opened late still draws the whole chart), the recent
 * client events (connects, disconnects with their reason codes, takeovers,
 * refusals), the last message of each topic, and "watch" streams that get
 * every message matching a filter.
 *
 * Messages are seen through `broker.tap`, set only while at least one
 * stream is open: with no dashboard open the hot path pays one null check.
 * The topic table is bounded, and each stream's share of messages is
 * capped per second; what is left out is counted, never queued.
 */
import { matches } from "../acl.ts";
import type { Broker } from "../broker.ts";
import type { ConnectedEvent, DisconnectedEvent, RefusedEvent, TakeoverEvent } from "../events.ts";
import type { Message } from "../message.ts";
import { RC, reasonName } from "../protocol/reason-codes.ts";
import type { SseStream } from "./sse.ts";
import { iso, messageView, payloadView } from "./views.ts";

/** Samples kept: one a second for 15 minutes. */
export const HISTORY_SECONDS = 900;
/** Topics whose last message is kept for the topic tree. */
export const MAX_TOPICS = 10_000;
/** Recent client events kept for a page that opens. */
const MAX_EVENTS = 200;
/** Bytes of payload shown in the topic tree. */
export const TOPIC_PREVIEW = 256;
/** Bytes of payload sent to a watch stream. */
const WATCH_PREVIEW = 4096;
/** Messages a watch stream gets per second at most; more are counted as skipped. */
const WATCH_PER_SECOND = 200;
/** Open streams (dashboards and watches together) at most: each holds a backlog, so they are bounded too. */
export const MAX_STREAMS = 64;
/** Changed topics sent per second at most (the rest go in later seconds). */
const TOPICS_PER_TICK = 500;

export interface Sample {
  /** Seconds since the epoch. */
  t: number;
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
  clients: number;
}

interface TopicEntry {
  topic: string;
  qos: number;
  retain: boolean;
  /** ms since the epoch. */
  at: number;
  count: number;
  msg: Message;
  /** Changed since the last tick (it is in `dirty`). */
  dirty: boolean;
}

interface Watch {
  stream: SseStream;
  levels: string[];
  /** Messages sent in the current second, and skipped since the last report. */
  sent: number;
  skipped: number;
}

const hubs = new WeakMap<Broker, LiveHub>();

/** The hub of `broker`, made on first use. */
export function liveHub(broker: Broker): LiveHub {
  let h = hubs.get(broker);
  if (h === undefined) hubs.set(broker, (h = new LiveHub(broker)));
  return h;
}

export class LiveHub {
  /** Oldest first; at most HISTORY_SECONDS. */
  readonly history: Sample[] = [];
  readonly events: Record<string, unknown>[] = [];
  readonly topics = new Map<string, TopicEntry>();
  /** Messages whose topic did not fit in the table. */
  untracked = 0;
  /** Entries changed since the last tick, each once. */
  private dirty: TopicEntry[] = [];
  /** Wall clock of the last tick: a topic's time is to the second, without a clock read per message. */
  private clock = Date.now();
  private readonly streams = new Set<SseStream>();
  private readonly watches = new Set<Watch>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private last = { msgsIn: 0, msgsOut: 0, bytesIn: 0, bytesOut: 0 };

  constructor(private readonly broker: Broker) {
    const ev = broker.events;
    ev.connected.push((e) => this.onConnected(e));
    ev.disconnected.push((e) => this.onDisconnected(e));
    ev.refused.push((e) => this.onRefused(e));
    ev.takeover.push((e) => this.onTakeover(e));
    const m = broker.metrics;
    this.last = { msgsIn: m.totalMsgsIn, msgsOut: m.totalMsgsOut, bytesIn: m.totalBytesIn, bytesOut: m.totalBytesOut };
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref?.();
  }

  /** Room for one more stream (MAX_STREAMS). */
  get full(): boolean {
    return this.streams.size + this.watches.size >= MAX_STREAMS;
  }

  /** A stream for the dashboard: stats every second, client events, changed topics. */
  addStream(s: SseStream): void {
    this.streams.add(s);
    s.onClose = () => this.removeStream(s);
    this.updateTap();
  }

  /** A stream of the messages matching `filter` (already validated). */
  addWatch(s: SseStream, filter: string): void {
    const w: Watch = { stream: s, levels: filter.split("/"), sent: 0, skipped: 0 };
    this.watches.add(w);
    s.onClose = () => {
      this.watches.delete(w);
      this.updateTap();
    };
    this.updateTap();
  }

  get streamCount(): number {
    return this.streams.size + this.watches.size;
  }

  /** The topic table, for a page that opens: every topic with its last message. */
  topicList(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const e of this.topics.values()) out.push(this.topicView(e));
    return out;
  }

  /** Live numbers for the header and the chart. */
  stats(): Record<string, unknown> {
    const b = this.broker;
    const m = b.metrics;
    let queued = 0;
    let inflight = 0;
    for (const s of b.sessions.values()) {
      queued += s.queue.length;
      inflight += s.inflight.count;
    }
    const st = b.stats();
    return {
      time: iso(Date.now()),
      uptime: Math.floor((Date.now() - m.startedAt) / 1000),
      clients: st.clients,
      connections: st.connections,
      sessions: st.sessions,
      subscriptions: st.subscriptions,
      retained: st.retained,
      messagesIn: st.messagesIn,
      messagesOut: st.messagesOut,
      bytesIn: m.totalBytesIn,
      bytesOut: m.totalBytesOut,
      dropped: st.dropped,
      takeovers: m.takeovers,
      authFailures: m.authFailures,
      queued,
      inflight,
      sample: this.history.at(-1) ?? null,
    };
  }

  private removeStream(s: SseStream): void {
    this.streams.delete(s);
    this.updateTap();
  }

  private updateTap(): void {
    const want = this.streams.size + this.watches.size > 0;
    this.broker.tap = want ? this.onMessage : null;
  }

  // Runs for every message while a stream is open: a map lookup and a few field writes.
  private readonly onMessage = (msg: Message): void => {
    const e = this.topics.get(msg.topic);
    if (e !== undefined) {
      e.msg = msg;
      e.qos = msg.qos;
      e.retain = msg.retain;
      e.at = this.clock;
      e.count++;
      if (!e.dirty) {
        e.dirty = true;
        this.dirty.push(e);
      }
    } else if (this.topics.size < MAX_TOPICS) {
      const n: TopicEntry = { topic: msg.topic, qos: msg.qos, retain: msg.retain, at: this.clock, count: 1, msg, dirty: true };
      this.topics.set(msg.topic, n);
      this.dirty.push(n);
    } else {
      this.untracked++;
    }
    if (this.watches.size === 0) return;
    let levels: string[] | null = null;
    for (const w of this.watches) {
      levels ??= msg.topic.split("/");
      if (!matches(w.levels, levels)) continue; // [MQTT-4.7.1-2], [MQTT-4.7.2-1]
      if (w.sent >= WATCH_PER_SECOND) {
        w.skipped++;
        continue;
      }
      w.sent++;
      w.stream.send("message", { ...messageView(msg, WATCH_PREVIEW), at: iso(Date.now()) });
    }
  };

  private topicView(e: TopicEntry): Record<string, unknown> {
    return { topic: e.topic, qos: e.qos, retain: e.retain, at: iso(e.at), count: e.count, ...payloadView(e.msg.payload, TOPIC_PREVIEW) };
  }

  private tick(): void {
    if (this.broker.shuttingDown) {
      this.stop();
      return;
    }
    this.clock = Date.now();
    const m = this.broker.metrics;
    const now = { msgsIn: m.totalMsgsIn, msgsOut: m.totalMsgsOut, bytesIn: m.totalBytesIn, bytesOut: m.totalBytesOut };
    const sample: Sample = {
      t: Math.floor(Date.now() / 1000),
      msgsIn: now.msgsIn - this.last.msgsIn,
      msgsOut: now.msgsOut - this.last.msgsOut,
      bytesIn: now.bytesIn - this.last.bytesIn,
      bytesOut: now.bytesOut - this.last.bytesOut,
      clients: this.broker.stats().clients,
    };
    this.last = now;
    this.history.push(sample);
    if (this.history.length > HISTORY_SECONDS) this.history.shift();
    for (const w of this.watches) {
      if (w.skipped > 0) w.stream.send("skipped", { count: w.skipped });
      w.sent = 0;
      w.skipped = 0;
    }
    if (this.streams.size === 0) return;
    const stats = this.stats();
    const topics: Record<string, unknown>[] = [];
    const n = Math.min(this.dirty.length, TOPICS_PER_TICK);
    for (let i = 0; i < n; i++) {
      const e = this.dirty[i]!;
      e.dirty = false;
      topics.push(this.topicView(e));
    }
    this.dirty = n === this.dirty.length ? [] : this.dirty.slice(n);
    for (const s of this.streams) {
      s.send("stats", stats);
      if (topics.length > 0) s.send("topics", topics);
    }
  }

  /** End every stream and the sampling timer (the broker is stopping). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const s of [...this.streams]) s.close();
    for (const w of [...this.watches]) w.stream.close();
    this.broker.tap = null;
  }

  private push(e: Record<string, unknown>): void {
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.shift();
    for (const s of this.streams) s.send("event", e);
  }

  private onConnected(e: ConnectedEvent): void {
    this.push({ type: "connected", at: iso(Date.now()), client: e.clientId, address: e.conn.remote, version: e.conn.version, clean: e.clean, resumed: e.resumed, username: e.conn.username ?? null });
  }

  private onDisconnected(e: DisconnectedEvent): void {
    if (!e.wasActive) return;
    const code = e.reason;
    if (code === RC.SESSION_TAKEN_OVER) return; // shown once, as the takeover
    this.push({ type: "disconnected", at: iso(Date.now()), client: e.clientId, address: e.conn.remote, why: e.why, reasonCode: code ?? null, reason: code === undefined ? null : reasonName(code) });
  }

  private onRefused(e: RefusedEvent): void {
    this.push({ type: "refused", at: iso(Date.now()), client: e.clientId, address: e.conn.remote, reasonCode: e.code, reason: reasonName(e.code), why: e.why ?? null });
  }

  private onTakeover(e: TakeoverEvent): void {
    this.push({ type: "takeover", at: iso(Date.now()), client: e.clientId, oldAddress: e.oldRemote, newAddress: e.newRemote, reasonCode: RC.SESSION_TAKEN_OVER, reason: reasonName(RC.SESSION_TAKEN_OVER) });
  }
}
