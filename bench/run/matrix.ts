/**
 * @module run/matrix
 * The scenario matrix: every row's loadgen arguments, its group (a managed
 * broker is restarted per group, so each group starts from a fresh process),
 * and how bunmq is run for it; plus the --only / --target selection. Every
 * row runs over each transport of `--transport` (run/variants.ts says which
 * rows a transport cannot carry).
 */
import { die } from "./env.ts";
import type { Options } from "./options.ts";

/** How a managed bunmq is started for a group. */
export type BunmqMode = "memory" | "ack" | "interval";

export interface ScenarioDef {
  name: string;
  /** A fresh broker process per group (managed brokers only). */
  group: string;
  what: string;
  args: string[];
  /** conn-like kinds run the loadgen's conn scenario: conn (rate, RSS), handshake (broker CPU per connection), idle (RSS per idle connection). */
  kind: "msg" | "latency" | "conn" | "handshake" | "idle";
  /** Managed bunmq variant (persist rows). */
  mode: BunmqMode;
  /** Only with --only. */
  optIn?: boolean;
  /** The C tool cannot run it. */
  tsOnly?: boolean;
  /** Rows sharing a key share the B run (persist: one mosquitto run per round). */
  bKey?: string;
  /** Loadgen arguments of an unrecorded run on the same broker just before each recorded one (warms the path up). */
  prime?: string[];
}

/** The loadgen's conn scenario (no --duration / --warmup). */
export const isConnKind = (s: ScenarioDef): boolean => s.kind === "conn" || s.kind === "handshake" || s.kind === "idle";

const W0 = ["--e2e-window", "1000"];
const W1 = ["--e2e-window", "256"];
export const SCENARIOS: ScenarioDef[] = [
  { name: "fanin_q0", group: "fanin", kind: "msg", mode: "memory", what: "10 publishers -> 1 subscriber (wildcard), QoS 0", args: ["fanin", "--pubs", "10", "--qos", "0", ...W0] },
  { name: "fanin_q1", group: "fanin", kind: "msg", mode: "memory", what: "10 publishers -> 1 subscriber (wildcard), QoS 1, in-flight 64", args: ["fanin", "--pubs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "fanin_q2", group: "fanin", kind: "msg", mode: "memory", what: "10 publishers -> 1 subscriber (wildcard), QoS 2, in-flight 20", args: ["fanin", "--pubs", "10", "--qos", "2", "--inflight", "20", ...W1] },
  { name: "fanout_q0", group: "fanout", kind: "msg", mode: "memory", what: "1 publisher -> 10 subscribers, QoS 0 (deliveries/s)", args: ["fanout", "--subs", "10", "--qos", "0", ...W0] },
  { name: "fanout_q1", group: "fanout", kind: "msg", mode: "memory", what: "1 publisher -> 10 subscribers, QoS 1 (deliveries/s)", args: ["fanout", "--subs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "pairs_q1", group: "pairs", kind: "msg", mode: "memory", what: "20 publisher/subscriber pairs, QoS 1, max rate", args: ["pairs", "--pairs", "20", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "latency_q1", group: "pairs", kind: "latency", mode: "memory", what: "10 pairs x 500 msg/s, QoS 1 (read p50/p99 here)", args: ["pairs", "--pairs", "10", "--qos", "1", "--rate", "500"] },
  { name: "conn_1000", group: "conn", kind: "conn", mode: "memory", what: "1000 CONNECT/CONNACK, 64 in parallel; 1 s idle hold", args: ["conn", "--conns", "1000", "--hold", "1"] },
  // opt-in: broker CPU per connection (TLS: the handshake), not conn/s (with --tls the loadgen is the
  // bottleneck); 500 unrecorded connections first, so that the JIT is warm
  { name: "handshake", group: "handshake", kind: "handshake", mode: "memory", optIn: true, what: "3000 CONNECT/CONNACK (with --transport tls: full TLS handshakes), 64 in parallel, after 500 unrecorded: broker CPU per connection (opt-in)", args: ["conn", "--conns", "3000", "--hold", "0"], prime: ["conn", "--conns", "500", "--hold", "0"] },
  // opt-in: RSS per idle connection on a freshly started broker (its own group: a fresh process each time)
  { name: "idle_rss", group: "idle_rss", kind: "idle", mode: "memory", optIn: true, what: "5000 idle connections held 3 s on a fresh broker: RSS per connection (opt-in)", args: ["conn", "--conns", "5000", "--hold", "3"] },
  // not in the default matrix (--only overload): publishers outrun the subscriber with no end-to-end
  // window; every PUBACKed message must still arrive (the check is QoS 1 loss)
  { name: "overload_q1", group: "overload", kind: "msg", mode: "memory", optIn: true, what: "10 publishers -> 1 subscriber, QoS 1, in-flight 256, no e2e window (opt-in)", args: ["fanin", "--pubs", "10", "--qos", "1", "--inflight", "256"] },
  { name: "persist_ack", group: "persist_ack", kind: "msg", mode: "ack", tsOnly: true, bKey: "persist", what: "10 pairs, QoS 1 to online persistent sessions; SQLite, durability ack", args: ["persist", "--pairs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "persist_interval", group: "persist_interval", kind: "msg", mode: "interval", tsOnly: true, bKey: "persist", what: "10 pairs, QoS 1 to online persistent sessions; SQLite, durability interval", args: ["persist", "--pairs", "10", "--qos", "1", "--inflight", "64", ...W1] },
  { name: "persist_mem", group: "persist_mem", kind: "msg", mode: "memory", tsOnly: true, bKey: "persist", what: "10 pairs, QoS 1 to online persistent sessions; --data :memory:", args: ["persist", "--pairs", "10", "--qos", "1", "--inflight", "64", ...W1] },
];

export function selectScenarios(o: Options): ScenarioDef[] {
  let list = SCENARIOS.filter((s) => !s.optIn);
  if (o.only.length) {
    list = SCENARIOS;
    const alias: Record<string, string> = { latency: "latency_q1", conn: "conn_1000" };
    list = list.filter((s) =>
      o.only.some((t) => {
        const tok = alias[t] ?? t;
        return s.name === tok || s.group === tok || s.name.startsWith(`${tok}_`);
      }),
    );
    if (!list.length) die(`--only ${o.only.join(",")}: no such scenario (see --list)`);
  }
  // against an already running bunmq the durability is whatever it runs with: one persist row
  if (o.target) {
    let seen = false;
    list = list
      .filter((s) => {
        if (s.bKey !== "persist") return true;
        if (seen) return false;
        seen = true;
        return true;
      })
      .map((s) => (s.bKey === "persist" ? { ...s, name: "persist", group: "persist", what: "10 pairs, QoS 1 to online persistent sessions" } : s));
  }
  return list;
}
