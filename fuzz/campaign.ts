/**
 * @module fuzz/campaign
 * One fuzz campaign against a running broker: many connections send
 * mutated packets (a CONNECT first, usually valid, then a stream of
 * mutated and valid packets, several per write and split at random
 * points); when the broker closes one, another opens. Meanwhile a control
 * publisher/subscriber pair (MQTT.js, v5, QoS 1) runs on its own topic, a
 * probe opens a fresh connection every second and times its CONNACK, and
 * the broker's RSS is sampled. Pass: every acknowledged control message
 * arrived, every probe got CONNACK within 1 s, no ERROR line was logged.
 */
import * as net from "node:net";
import mqtt from "mqtt";
import { generate } from "mqtt-packet";
import { KINDS, mutate } from "./mutate.ts";
import { Rng } from "./prng.ts";
import { connectSeed, streamSeeds, type Version } from "./seeds.ts";

export interface CampaignOptions {
  port: number;
  /** Packets to send (mutated or not; the control pair's are not counted). */
  count: number;
  seed: number;
  /** Concurrent fuzz connections. */
  connections?: number;
  /** The broker's resident set in KiB (sampled), if known. */
  rss?: () => number;
  /** ERROR lines the broker has logged so far. */
  errors?: () => number;
  /** A label for the control pair's Client IDs and topic. */
  tag?: string;
}

export interface CampaignResult {
  packets: number;
  bytes: number;
  connections: number;
  /** Fuzz connections the broker closed (malformed input, protocol errors). */
  closedByBroker: number;
  controlSent: number;
  controlReceived: number;
  controlLost: number;
  probes: number;
  probeMaxMs: number;
  peakRssKb: number;
  errors: number;
  durationMs: number;
  failures: string[];
}

const SEEDS: Record<Version, Buffer[]> = { 4: streamSeeds(4), 5: streamSeeds(5) };
/** Loopback source addresses, so that connection churn does not exhaust one address's ports. */
const SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"];

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const started = performance.now();
  const r: CampaignResult = {
    packets: 0, bytes: 0, connections: 0, closedByBroker: 0, controlSent: 0, controlReceived: 0, controlLost: 0,
    probes: 0, probeMaxMs: 0, peakRssKb: 0, errors: 0, durationMs: 0, failures: [],
  };
  const errorsBefore = o.errors?.() ?? 0;
  const tag = o.tag ?? `c${o.seed}`;
  let done = false;

  const sampler = setInterval(() => {
    const kb = o.rss?.() ?? 0;
    if (kb > r.peakRssKb) r.peakRssKb = kb;
  }, 100);
  const control = await startControl(o.port, tag, r);
  const probing = probeLoop(o.port, tag, r, () => done);

  const rootRng = new Rng(o.seed);
  const workers = Array.from({ length: o.connections ?? 32 }, (_, i) => fuzzWorker(o, new Rng(rootRng.int(2 ** 32)), r, i, () => r.packets >= o.count));
  await Promise.all(workers);
  done = true;
  await control.finish();
  await probing;
  clearInterval(sampler);
  r.peakRssKb = Math.max(r.peakRssKb, o.rss?.() ?? 0);
  r.errors = (o.errors?.() ?? 0) - errorsBefore;
  r.durationMs = Math.round(performance.now() - started);
  if (r.controlLost > 0) r.failures.push(`control pair lost ${r.controlLost} of ${r.controlSent} acknowledged messages`);
  if (r.controlSent === 0) r.failures.push("the control publisher got no message acknowledged");
  if (r.errors > 0) r.failures.push(`${r.errors} ERROR lines logged`);
  return r;
}

/** One fuzz connection slot: open, send a CONNECT and a stream, and again when the broker closes it. */
async function fuzzWorker(o: CampaignOptions, rng: Rng, r: CampaignResult, slot: number, full: () => boolean): Promise<void> {
  let n = 0;
  while (!full()) {
    const v: Version = rng.chance(0.5) ? 5 : 4;
    const sock = await open(o.port, SOURCES[(slot + n++) % SOURCES.length]!).catch(() => null);
    if (sock === null) {
      await Bun.sleep(5);
      continue;
    }
    r.connections++;
    let closed = false;
    let ourClose = false;
    sock.on("data", () => {}); // read and discard: a fuzz client is not a slow reader
    sock.on("error", () => {});
    // The broker's close is a lingering one: it ends its side and reads until we close ours.
    sock.once("end", () => {
      if (!closed && !ourClose) r.closedByBroker++;
      closed = true;
      sock.destroy();
    });
    const gone = new Promise<void>((resolve) =>
      sock.once("close", () => {
        if (!closed && !ourClose) r.closedByBroker++;
        closed = true;
        resolve();
      }),
    );
    let first = connectSeed(v, `fz-${slot}-${n}`, rng.chance(0.5));
    if (rng.chance(0.15)) first = mutate(rng, first, rng.pick(KINDS), v === 5);
    await send(sock, first, r, 1);
    const stream = 10 + rng.int(200);
    for (let k = 0; k < stream && !closed && !full(); ) {
      // A batch of 1-4 packets in one buffer (concatenation), written in 1-3 pieces.
      const parts: Buffer[] = [];
      const m = 1 + rng.int(4);
      for (let j = 0; j < m; j++) {
        const seed = rng.pick(SEEDS[v]);
        parts.push(rng.chance(0.5) ? mutate(rng, seed, rng.pick(KINDS), v === 5) : seed);
      }
      k += m;
      await send(sock, Buffer.concat(parts), r, m, rng);
    }
    if (!closed) {
      ourClose = true;
      sock.destroy();
    }
    await gone;
  }
}

function open(port: number, from: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress: from }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Write `buf` (counted as `packets`), split at random points; waits for drain, and yields so closes are seen. */
async function send(sock: net.Socket, buf: Buffer, r: CampaignResult, packets: number, rng?: Rng): Promise<void> {
  if (sock.destroyed) return;
  r.packets += packets;
  r.bytes += buf.length;
  const cuts = rng && buf.length > 2 ? rng.int(3) : 0;
  let pos = 0;
  for (let c = 0; c <= cuts; c++) {
    const end = c === cuts ? buf.length : pos + rng!.int(buf.length - pos);
    if (end > pos && !sock.destroyed && !sock.write(buf.subarray(pos, end))) {
      await new Promise<void>((resolve) => {
        sock.once("drain", resolve);
        sock.once("close", resolve);
      });
    }
    pos = end;
  }
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** The control pair: numbered QoS 1 messages, each awaited; the subscriber must receive every acknowledged one. */
async function startControl(port: number, tag: string, r: CampaignResult): Promise<{ finish(): Promise<void> }> {
  const url = `mqtt://127.0.0.1:${port}`;
  const topic = `ctl/${tag}`;
  const sub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `ctl-sub-${tag}-${process.pid}`, reconnectPeriod: 0, clean: true });
  const got = new Set<number>();
  sub.on("message", (_t, payload) => got.add(Number(payload.toString())));
  await sub.subscribeAsync(topic, { qos: 1 });
  const pub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `ctl-pub-${tag}-${process.pid}`, reconnectPeriod: 0, clean: true });
  const acked: number[] = [];
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        await pub.publishAsync(topic, String(i), { qos: 1 });
        acked.push(i);
      } catch (err) {
        r.failures.push(`control publish ${i} failed: ${(err as Error).message}`);
        return;
      }
      await Bun.sleep(2);
    }
  })();
  return {
    async finish() {
      stop = true;
      await loop;
      const end = Date.now() + 5000;
      while (acked.some((i) => !got.has(i)) && Date.now() < end) await Bun.sleep(20);
      r.controlSent = acked.length;
      r.controlReceived = got.size;
      r.controlLost = acked.filter((i) => !got.has(i)).length;
      await pub.endAsync(true);
      await sub.endAsync(true);
    },
  };
}

/** Every second, a fresh CONNECT; its CONNACK must come within 1 s. */
async function probeLoop(port: number, tag: string, r: CampaignResult, done: () => boolean): Promise<void> {
  const connect = generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clientId: `fz-probe-${tag}`, clean: true, keepalive: 30 } as never);
  for (let i = 0; !done(); i++) {
    const t0 = performance.now();
    const ms = await new Promise<number>((resolve) => {
      const timer = setTimeout(() => {
        s.destroy();
        resolve(Infinity);
      }, 3000);
      const s = net.connect({ host: "127.0.0.1", port }, () => s.write(connect));
      s.on("error", () => {});
      s.once("data", (d) => {
        clearTimeout(timer);
        s.destroy();
        resolve(d[0] === 0x20 ? performance.now() - t0 : Infinity);
      });
      s.once("close", () => {
        clearTimeout(timer);
        resolve(Infinity);
      });
    });
    r.probes++;
    r.probeMaxMs = Math.max(r.probeMaxMs, Math.round(ms));
    if (ms > 1000) r.failures.push(`probe ${i}: no CONNACK within 1 s (${Number.isFinite(ms) ? `${Math.round(ms)} ms` : "none"})`);
    const wait = 1000 - (performance.now() - t0);
    if (wait > 0 && !done()) await Bun.sleep(wait);
  }
}
