#!/usr/bin/env bun
/**
 * Retained messages on subscribe at scale: N retained messages (default
 * 1,000,000), then one QoS 1 subscriber to `#` that reads and acknowledges
 * everything, while a control pair (QoS 1, 100 msg/s, on a `$` topic that `#`
 * does not match) measures its round trip. Reports how long the subscriber
 * took to receive all N, the control pair's latency before and during the
 * flood, and the broker's RSS. The broker is a fresh `bun broker.ts` process
 * on `:memory:`.
 *
 *   bun bench/retained-flood.ts [--count 1000000] [--qos 1]
 */
import mqtt from "mqtt-packet";
import * as net from "node:net";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { cLoadgen } from "./run/env.ts";

const { values } = parseArgs({ options: { count: { type: "string", default: "1000000" }, qos: { type: "string", default: "1" } } });
const N = Number(values.count);
const QOS = Number(values.qos) as 0 | 1;
const ROOT = join(dirname(Bun.fileURLToPath(import.meta.url)), "..");

const proc = Bun.spawn([process.execPath, join(ROOT, "broker.ts"), "--port", "0", "--data", ":memory:", "--log-level", "warn"], { stdout: "pipe", stderr: "inherit" });
const port = await (async () => {
  const reader = proc.stdout.getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("broker exited");
    text += new TextDecoder().decode(value);
    const m = /listening on mqtt:\/\/[^:]+:(\d+)/.exec(text);
    if (m) return Number(m[1]);
  }
})();
const rss = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(require("node:fs").readFileSync(`/proc/${proc.pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
};

/** A minimal client: encode with mqtt-packet, parse with its parser, a handler per packet. */
function client(id: string, onPacket: (p: mqtt.Packet, c: net.Socket) => void): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.setNoDelay(true);
      s.write(mqtt.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 0, clientId: id } as mqtt.Packet));
    });
    const parser = mqtt.parser({ protocolVersion: 4 });
    let connected = false;
    parser.on("packet", (p) => {
      if (!connected && p.cmd === "connack") {
        connected = true;
        resolve(s);
        return;
      }
      onPacket(p, s);
    });
    s.on("data", (d: Buffer) => parser.parse(d));
  });
}

const enc = (p: Record<string, unknown>) => mqtt.generate(p as unknown as mqtt.Packet);

// 1. Load N retained messages (QoS 1, pipelined in batches; wait for their PUBACKs).
let acked = 0;
const loader = await client("rf-loader", (p) => {
  if (p.cmd === "puback") acked++;
});
const t0 = performance.now();
const BATCH = 10_000;
for (let i = 0; i < N; i += BATCH) {
  const frames: Buffer[] = [];
  for (let j = i; j < Math.min(N, i + BATCH); j++) {
    frames.push(enc({ cmd: "publish", topic: `rf/${j % 1000}/${j}`, qos: 1, retain: true, messageId: (j % 65535) + 1, payload: Buffer.from(`v${j}`) }));
  }
  loader.write(Buffer.concat(frames));
  while (acked < Math.min(N, i + BATCH)) await Bun.sleep(1);
}
const loadMs = performance.now() - t0;
const rssLoaded = rss();

// 2. The control pair runs in its own process (the C load generator), so that its
// latency is the broker's and not this script's, which is busy parsing the flood:
// one pair, QoS 1, 100 msg/s, on a `$` topic that `#` does not match ([MQTT-4.7.2-1]).
const loadgen = cLoadgen();
const control = (seconds: number) =>
  Bun.spawn([loadgen, "pairs", "--pairs", "1", "--qos", "1", "--rate", "100", "--duration", String(seconds), "--topic-prefix", "$ctl", "--port", String(port), "-q"], {
    stdout: "pipe",
    stderr: "inherit",
  });
const controlResult = async (p: ReturnType<typeof control>) => {
  const text = await new Response(p.stdout).text();
  return JSON.parse(text.trim().split("\n").pop() ?? "{}") as Record<string, number>;
};
const baseline = await controlResult(control(2));

// 3. The flood: subscribe to # at QoS QOS and take everything.
let got = 0;
let maxRss = rssLoaded;
const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, rss())), 100);
const sub = await client("rf-sub", (p, s) => {
  if (p.cmd !== "publish") return;
  got++;
  if (p.qos === 1) s.write(enc({ cmd: "puback", messageId: p.messageId }));
});
const t1 = performance.now();
const ctl = control(600);
sub.write(enc({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "#", qos: QOS }] }));
while (got < N) {
  await Bun.sleep(20);
  if (performance.now() - t1 > 600_000) break;
}
const floodMs = performance.now() - t1;
ctl.kill("SIGINT"); // the load generator reports what it measured so far
const during = await controlResult(ctl);
clearInterval(rssTimer);

const f = (us: number | undefined) => `${((us ?? NaN) / 1000).toFixed(2)} ms`;
console.log(`retained messages: ${N.toLocaleString()} loaded in ${(loadMs / 1000).toFixed(1)} s; broker RSS ${(rssLoaded / 2 ** 20).toFixed(0)} MiB`);
console.log(`# subscriber (QoS ${QOS}): ${got.toLocaleString()} of ${N.toLocaleString()} received in ${(floodMs / 1000).toFixed(1)} s (${Math.round(got / (floodMs / 1000)).toLocaleString()} msg/s); broker RSS max ${(maxRss / 2 ** 20).toFixed(0)} MiB (+${((maxRss - rssLoaded) / 2 ** 20).toFixed(0)} MiB)`);
console.log(`control pair (QoS 1, 100 msg/s) before: p50 ${f(baseline.p50_us)} p99 ${f(baseline.p99_us)} max ${f(baseline.max_us)}`);
console.log(`control pair (QoS 1, 100 msg/s) during: p50 ${f(during.p50_us)} p99 ${f(during.p99_us)} max ${f(during.max_us)} (${during.recv ?? 0} msgs, lost ${during.lost ?? "?"})`);
for (const s of [loader, sub]) s.destroy();
proc.kill("SIGTERM");
await proc.exited;
process.exit(got === N ? 0 : 1);
