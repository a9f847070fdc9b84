/**
 * @module http/prometheus
 * GET /metrics: the broker's state and counters in the Prometheus text
 * exposition format (version 0.0.4). Gauges that are sums over sessions or
 * connections are computed here, per scrape, so the hot path only
 * increments counters (metrics.ts, drops.ts, admission.ts).
 */
import type { Broker } from "../broker.ts";
import { Refusal } from "../admission.ts";
import { VERSION } from "../version.ts";

/** Builds one exposition: `# HELP`, `# TYPE` and the samples of each family. */
class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string, samples: [Record<string, string | number> | null, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) this.lines.push(`${name}${fmtLabels(labels)} ${fmtValue(v)}`);
  }

  raw(line: string): void {
    this.lines.push(line);
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

function fmtLabels(l: Record<string, string | number> | null): string {
  if (l === null) return "";
  const parts = Object.entries(l).map(([k, v]) => `${k}="${String(v).replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function fmtValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  return String(v);
}

const QOS = [0, 1, 2] as const;

export function prometheusText(broker: Broker): string {
  const m = broker.metrics;
  const e = new Exposition();
  e.family("bunmq_info", "gauge", "Broker version.", [[{ version: VERSION }, 1]]);
  e.family("bunmq_uptime_seconds", "gauge", "Seconds since the broker started.", [[null, (Date.now() - m.startedAt) / 1000]]);

  // Connections by listener and protocol version (0 = CONNECT not accepted yet).
  const byListener = new Map<string, { listener: string; transport: string; version: number; n: number }>();
  for (const l of broker.listenerInfos) {
    for (const v of [3, 4, 5]) byListener.set(`${l.url}|${v}`, { listener: l.url, transport: l.protocol, version: v, n: 0 });
  }
  for (const c of broker.connections) {
    if (c.uplink !== null) continue; // a bridge's own connection upstream: bunmq_bridge_* below
    const v = c.session !== null ? c.version : 0;
    const key = `${c.listener.url}|${v}`;
    let row = byListener.get(key);
    if (row === undefined) byListener.set(key, (row = { listener: c.listener.url, transport: c.listener.protocol, version: v, n: 0 }));
    row.n++;
  }
  e.family(
    "bunmq_connections",
    "gauge",
    "Open connections by listener and MQTT protocol version (version 0: CONNECT not accepted yet).",
    [...byListener.values()].map((r) => [{ listener: r.listener, transport: r.transport, protocol_version: r.version }, r.n]),
  );

  let online = 0;
  let offline = 0;
  let queued = 0;
  let queuedMax = 0;
  let queuedBytes = 0;
  let inflight = 0;
  for (const s of broker.sessions.values()) {
    if (s.conn !== null) online++;
    else offline++;
    const q = s.queue.length;
    queued += q;
    queuedBytes += s.queue.bytes;
    if (q > queuedMax) queuedMax = q;
    inflight += s.inflight.count;
  }
  e.family("bunmq_sessions", "gauge", "Sessions by state.", [
    [{ state: "online" }, online],
    [{ state: "offline" }, offline],
  ]);
  e.family("bunmq_subscriptions", "gauge", "Subscriptions held by all sessions.", [[null, broker.stats().subscriptions]]);
  e.family("bunmq_retained_messages", "gauge", "Retained messages held.", [[null, broker.retainedCount]]);
  e.family("bunmq_queued_messages", "gauge", "Messages queued for sessions (offline, or beyond the in-flight window).", [[null, queued]]);
  e.family("bunmq_queued_messages_max", "gauge", "The longest queue of one session.", [[null, queuedMax]]);
  e.family("bunmq_queued_bytes", "gauge", "Payload bytes queued for sessions.", [[null, queuedBytes]]);
  e.family("bunmq_inflight_messages", "gauge", "QoS 1/2 messages sent to clients and not yet acknowledged.", [[null, inflight]]);

  e.family("bunmq_messages_received_total", "counter", "PUBLISH messages received, by QoS (wills and bridged messages included).", QOS.map((q) => [{ qos: q }, m.msgsIn[q]!]));
  e.family("bunmq_messages_sent_total", "counter", "PUBLISH messages sent to subscribers, by QoS (first sends).", QOS.map((q) => [{ qos: q }, m.msgsOut[q]!]));
  e.family("bunmq_payload_bytes_received_total", "counter", "Payload bytes of PUBLISH messages received, by QoS.", QOS.map((q) => [{ qos: q }, m.bytesIn[q]!]));
  e.family("bunmq_payload_bytes_sent_total", "counter", "Payload bytes of PUBLISH messages sent, by QoS.", QOS.map((q) => [{ qos: q }, m.bytesOut[q]!]));
  e.family("bunmq_network_bytes_received_total", "counter", "Bytes read from client connections.", [[null, m.netIn]]);
  e.family("bunmq_network_bytes_sent_total", "counter", "Bytes written to client connections.", [[null, m.netOut]]);

  const d = broker.drops;
  e.family("bunmq_dropped_messages_total", "counter", "Messages not delivered (or not retained), by cause.", [
    [{ cause: "queue_full" }, d.queueFull],
    [{ cause: "qos0_pending" }, d.qos0Pending],
    [{ cause: "too_large" }, d.tooLarge],
    [{ cause: "expired" }, d.expired],
    [{ cause: "retained_limit" }, d.retainedLimit],
    [{ cause: "acl" }, d.acl],
  ]);
  e.family("bunmq_takeovers_total", "counter", "Live connections closed by a CONNECT with the same Client ID.", [[null, m.takeovers]]);
  e.family("bunmq_auth_failures_total", "counter", "CONNECTs refused for bad credentials or not authorized.", [[null, m.authFailures]]);
  e.family("bunmq_connects_total", "counter", "CONNECTs accepted.", [[null, m.connects]]);
  const a = broker.admission;
  e.family("bunmq_connections_refused_total", "counter", "Sockets closed at accept, by cause.", [
    [{ cause: "full" }, a.refusedBy[Refusal.Full]!],
    [{ cause: "unauthenticated" }, a.refusedBy[Refusal.Unauthenticated]!],
    [{ cause: "connect_rate" }, a.refusedBy[Refusal.ConnectRate]!],
  ]);
  const br = broker.bridgeStatus();
  if (br.length > 0) {
    const per = (f: (s: (typeof br)[number]) => number) => br.map((s): [Record<string, string>, number] => [{ bridge: s.name }, f(s)]);
    const dir = (o: (s: (typeof br)[number]) => number, i: (s: (typeof br)[number]) => number) =>
      br.flatMap((s): [Record<string, string>, number][] => [[{ bridge: s.name, direction: "out" }, o(s)], [{ bridge: s.name, direction: "in" }, i(s)]]);
    e.family("bunmq_bridge_connected", "gauge", "1 while the bridge's upstream connection is accepted, else 0.", per((s) => (s.connected ? 1 : 0)));
    e.family("bunmq_bridge_queued_messages", "gauge", "QoS 1/2 messages waiting for the upstream or unacknowledged by it.", per((s) => s.queued + s.inflight));
    e.family("bunmq_bridge_queued_bytes", "gauge", "Payload bytes waiting in the bridge's queue.", per((s) => s.queuedBytes));
    e.family("bunmq_bridge_messages_total", "counter", "Messages forwarded (out: sent upstream, re-sends included; in: received from upstream).", dir((s) => s.messagesOut, (s) => s.messagesIn));
    e.family("bunmq_bridge_bytes_total", "counter", "Payload bytes forwarded, by direction.", dir((s) => s.bytesOut, (s) => s.bytesIn));
    e.family("bunmq_bridge_dropped_total", "counter", "Messages dropped because the bridge's queue was full.", per((s) => s.dropped));
    e.family("bunmq_bridge_echoes_dropped_total", "counter", "Incoming messages recognised as the bridge's own coming back (3.1.1 upstream without the bridge bit).", per((s) => s.echoesDropped));
    e.family("bunmq_bridge_connects_total", "counter", "Upstream connections accepted.", per((s) => s.connects));
    e.family("bunmq_bridge_failures_total", "counter", "Upstream connection attempts that failed, and connections lost.", per((s) => s.failures));
  }
  e.family("bunmq_throttled_total", "counter", "Times a client over its publish rate stopped being read.", [[null, broker.throttled]]);
  e.family("bunmq_stuck_subscribers_total", "counter", "Subscribers found holding publishers back past limits.maxPublisherStallMs.", [[null, broker.stalls]]);

  // Store commit latency, seconds, cumulative buckets.
  const h = m.commit;
  e.raw("# HELP bunmq_store_commit_duration_seconds Time to commit the store (one group commit).");
  e.raw("# TYPE bunmq_store_commit_duration_seconds histogram");
  let cum = 0;
  h.bounds.forEach((b, i) => {
    cum += h.counts[i]!;
    e.raw(`bunmq_store_commit_duration_seconds_bucket{le="${b / 1e6}"} ${cum}`);
  });
  cum += h.counts[h.bounds.length]!;
  e.raw(`bunmq_store_commit_duration_seconds_bucket{le="+Inf"} ${cum}`);
  e.raw(`bunmq_store_commit_duration_seconds_sum ${h.sum / 1e6}`);
  e.raw(`bunmq_store_commit_duration_seconds_count ${h.count}`);

  e.family("bunmq_event_loop_lag_seconds", "gauge", "Delay of the last 500 ms timer beyond its due time.", [[null, m.loopLagMs / 1000]]);
  e.family("bunmq_event_loop_lag_max_seconds", "gauge", "Largest event-loop lag measured since the previous scrape.", [[null, m.loopLagMaxMs / 1000]]);
  m.loopLagMaxMs = m.loopLagMs;
  e.family("process_resident_memory_bytes", "gauge", "Resident set size.", [[null, process.memoryUsage.rss()]]);
  e.family("process_start_time_seconds", "gauge", "Start time of the broker (Unix seconds).", [[null, Math.floor(m.startedAt / 1000)]]);
  return e.text();
}
