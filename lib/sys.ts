/**
 * @module sys
 * The `$SYS/broker/...` topics, every `sys.interval` seconds, as retained
 * messages (held in memory only: broker.publishSys). Mosquitto's topic
 * names, so that dashboards made for it work; bunmq's own counters beside
 * them (takeovers, drops by cause, the store's commit p99). A value is
 * published when it changed since the last interval (uptime always), so an
 * idle broker sends little; a new subscriber gets every topic at once from
 * the retained messages.
 *
 * Load averages follow Mosquitto's definition: a per-minute rate over the
 * interval, smoothed exponentially over 1, 5 and 15 minutes.
 */
import type { Broker } from "./broker.ts";
import { guarded } from "./log.ts";
import { Message } from "./message.ts";
import { VERSION } from "./version.ts";

const WINDOWS = [1, 5, 15] as const;

/** Extra topics published with the broker's own (bridges add theirs: `$SYS/broker/bridges/NAME/state`). */
export type SysSource = () => Iterable<[topic: string, value: string | number]>;

export class SysPublisher {
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly last = new Map<string, string>();
  /** Counter values at the previous interval, for the load averages. */
  private prev: Record<string, number> = {};
  private readonly load = new Map<string, number>();
  readonly sources: SysSource[] = [];

  constructor(
    private readonly broker: Broker,
    private readonly intervalS: number,
  ) {}

  /** Publish once now, then every interval (nothing when the interval is 0). */
  start(): void {
    if (this.intervalS === 0) return;
    this.publish();
    this.timer = setInterval(() => guarded("$SYS update", () => this.publish()), this.intervalS * 1000);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Every topic and its current value. */
  *values(): Generator<[string, string | number]> {
    const b = this.broker;
    const m = b.metrics;
    const s = b.stats();
    const up = Math.floor((Date.now() - m.startedAt) / 1000);
    yield ["$SYS/broker/version", `bunmq version ${VERSION}`];
    yield ["$SYS/broker/uptime", `${up} seconds`];
    const offline = s.sessions - b.clients;
    yield ["$SYS/broker/clients/connected", b.clients];
    yield ["$SYS/broker/clients/disconnected", Math.max(0, offline)];
    yield ["$SYS/broker/clients/total", s.sessions];
    yield ["$SYS/broker/clients/maximum", m.maxClients];
    let stored = b.retainedCount;
    let storedBytes = 0;
    for (const x of b.sessions.values()) {
      stored += x.queue.length + x.inflight.count;
      storedBytes += x.queue.bytes + x.inflight.bytes;
    }
    yield ["$SYS/broker/messages/received", m.totalMsgsIn];
    yield ["$SYS/broker/messages/sent", m.totalMsgsOut];
    yield ["$SYS/broker/messages/stored", stored];
    yield ["$SYS/broker/publish/messages/received", m.totalMsgsIn];
    yield ["$SYS/broker/publish/messages/sent", m.totalMsgsOut];
    yield ["$SYS/broker/bytes/received", m.netIn];
    yield ["$SYS/broker/bytes/sent", m.netOut];
    yield ["$SYS/broker/subscriptions/count", s.subscriptions];
    yield ["$SYS/broker/retained messages/count", b.retainedCount];
    yield ["$SYS/broker/store/messages/count", stored];
    yield ["$SYS/broker/store/messages/bytes", storedBytes];
    for (const [name, v] of this.load) yield [`$SYS/broker/load/${name}`, v.toFixed(2)];
    yield ["$SYS/broker/takeovers", m.takeovers];
    const d = b.drops;
    yield ["$SYS/broker/dropped/queue_full", d.queueFull];
    yield ["$SYS/broker/dropped/qos0_pending", d.qos0Pending];
    yield ["$SYS/broker/dropped/acl", d.acl];
    yield ["$SYS/broker/dropped/expired", d.expired];
    yield ["$SYS/broker/dropped/too_large", d.tooLarge];
    yield ["$SYS/broker/store/commit_p99_us", Math.round(m.commit.quantile(0.99))];
    for (const src of this.sources) yield* src();
  }

  /** One update: load averages advance, changed values are published. */
  publish(): void {
    this.updateLoad();
    const b = this.broker;
    let sent = false;
    for (const [topic, v] of this.values()) {
      const text = String(v);
      if (this.last.get(topic) === text && !topic.endsWith("/uptime")) continue;
      this.last.set(topic, text);
      b.publishSys(new Message(topic, Buffer.from(text), 0, true, null, 0, ""));
      sent = true;
    }
    if (sent) b.endBatch();
  }

  private updateLoad(): void {
    const m = this.broker.metrics;
    const now: Record<string, number> = {
      "messages/received": m.totalMsgsIn,
      "messages/sent": m.totalMsgsOut,
      "bytes/received": m.netIn,
      "bytes/sent": m.netOut,
      "connections": m.connects,
    };
    const first = Object.keys(this.prev).length === 0;
    for (const [name, value] of Object.entries(now)) {
      const perMinute = first ? 0 : ((value - (this.prev[name] ?? 0)) * 60) / this.intervalS;
      for (const w of WINDOWS) {
        const key = `${name}/${w}min`;
        const cur = this.load.get(key);
        // Mosquitto's calc_load: new = x + e^(-interval/window) * (old - x).
        const next = cur === undefined ? perMinute : perMinute + Math.exp(-this.intervalS / (60 * w)) * (cur - perMinute);
        this.load.set(key, next);
      }
    }
    this.prev = now;
  }
}
