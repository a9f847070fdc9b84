#!/usr/bin/env bun
/**
 * bench/loadgen.ts: an MQTT 3.1.1 / 5.0 load generator on Bun.
 *
 * A port of the reference C tool (/work/shared/bench/loadgen.c, `mqtt-loadgen`)
 * with the same scenarios, flags, measurement and JSON output, plus the
 * `persist` scenario (QoS 1 to persistent sessions that stay online).
 *
 * - Raw TCP with Bun.connect and one shared handler object. No MQTT library:
 *   CONNECT/SUBSCRIBE/PUBLISH/acks are encoded by hand; PUBLISH packets are
 *   pre-encoded per publisher and only the packet id, sequence number and
 *   timestamp are patched per message.
 * - A stream framer per socket: frames are parsed in place from the chunk;
 *   only a frame split across chunks is copied (into a per-socket buffer).
 * - One output buffer per socket, written with one `socket.write` per batch;
 *   a partial write keeps the rest, which goes out on `drain`.
 * - Payload: nonce u32, publisher id u32, sequence u64, send time u64 (ns from
 *   Bun.nanoseconds(), all little endian), then filler. Subscribers keep a
 *   bitmap per publisher: unique / dup / out-of-order / lost.
 * - Latency goes into a log-linear histogram (< 0.4 % error).
 *
 * Output: readable lines, then one JSON line (same keys as mqtt-loadgen).
 * Exit: 0 ok; 1 a check failed (QoS >= 1 loss, dup without DUP flag,
 * out-of-order, protocol error, rejected PUBLISH, unexpected close, timeout);
 * 2 usage error or cannot connect.
 */
import type { Socket, SocketHandler } from "bun";
import { readFileSync } from "node:fs";

// ------------------------------------------------------------------ options
const SCENARIOS = ["fanin", "fanout", "pairs", "conn", "persist"] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE = `usage: bun bench/loadgen.ts SCENARIO [options]
scenarios:
  fanin     P publishers -> 1 subscriber on PREFIX/fanin/+      (--pubs P)
  fanout    1 publisher -> S subscribers on one topic            (--subs S)
  pairs     N publisher/subscriber pairs, one topic per pair     (--pairs N)
  conn      open C connections (CONNECT/CONNACK) as fast as possible, report conn/s,
            hold them idle --hold s (broker RSS sampled with --broker-pid), disconnect
  persist   N pairs, QoS 1 (default) publishers -> persistent subscribers that stay
            online and ack (3.1.1 Clean Session 0 / v5 Session Expiry); sessions
            are removed at the end
options:
  --host H (127.0.0.1)  --port N (1883)  --mqtt 4|5 (4 = 3.1.1)
  --qos 0|1|2  --size BYTES payload (64, min 24)  --duration S (5)  --count N per publisher
  --rate MSG/S per publisher (0 = max)  --inflight N QoS>0 window per publisher (64)
  --refill N  send only when N window slots are free (inflight/4)
  --warmup S  excluded from latency/throughput (0)  --drain S max wait after sending (10)
  --drain-idle S  end the drain after S without arrivals (0.5 for QoS0, 5 for QoS>0)
  --e2e-window N  max messages per publisher sent but not yet received (0 = off)
  --pubs P (10) --subs S (10) --pairs N (10) --conns C (1000)  --parallel N concurrent
            connection handshakes (64)  --hold S (3)  --session-expiry S (v5 persist, 300)
  --keepalive S (60)  --topic-prefix P (bench/tsNONCE)  --timeout S hard limit
  --broker-pid PID  sample broker CPU (/proc/PID/stat) and RSS (/proc/PID/status)
  --progress  per-second progress on stderr   -q, --quiet  JSON line only
exit status: 0 ok, 1 check failed (QoS>=1 loss, dup without DUP, out-of-order, protocol,
timeout), 2 cannot connect/usage`;

function usageError(msg: string): never {
  console.error(`loadgen: ${msg}\n${USAGE}`);
  process.exit(2);
}

const O = {
  host: "127.0.0.1",
  port: 1883,
  ver: 4,
  scenario: "" as Scenario | "",
  qos: 0,
  qosSet: false,
  size: 64,
  duration: 5,
  durationSet: false,
  count: 0,
  rate: 0,
  inflight: 64,
  refill: 0,
  warmup: 0,
  drain: 10,
  drainIdle: 0,
  timeout: 0,
  pubs: 10,
  subs: 10,
  pairs: 10,
  conns: 1000,
  parallel: 64,
  hold: 3,
  keepalive: 60,
  e2eWindow: 0,
  brokerPid: 0,
  prefix: "",
  quiet: false,
  progress: false,
  sessionExpiry: 300,
};

function parseArgs(argv: string[]): void {
  const num = (name: string, v: string | undefined): number => {
    if (v === undefined) usageError(`${name} needs a value`);
    const n = Number(v);
    if (!Number.isFinite(n)) usageError(`${name}: not a number: ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let val: string | undefined;
    const eq = a.indexOf("=");
    if (a.startsWith("--") && eq > 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = (): string | undefined => (val !== undefined ? val : argv[++i]);
    switch (a) {
      case "--host": O.host = next() ?? usageError("--host needs a value"); break;
      case "--port": O.port = num(a, next()); break;
      case "--mqtt": {
        const v = next();
        O.ver = v === "3.1.1" || v === "311" ? 4 : num(a, v);
        break;
      }
      case "--scenario": O.scenario = scenarioOf(next()); break;
      case "--qos": O.qos = num(a, next()); O.qosSet = true; break;
      case "--size": O.size = num(a, next()); break;
      case "--duration": O.duration = num(a, next()); O.durationSet = true; break;
      case "--count": O.count = num(a, next()); break;
      case "--rate": O.rate = num(a, next()); break;
      case "--inflight": O.inflight = num(a, next()); break;
      case "--refill": O.refill = num(a, next()); break;
      case "--warmup": O.warmup = num(a, next()); break;
      case "--drain": O.drain = num(a, next()); break;
      case "--drain-idle": O.drainIdle = num(a, next()); break;
      case "--timeout": O.timeout = num(a, next()); break;
      case "--pubs": O.pubs = num(a, next()); break;
      case "--subs": O.subs = num(a, next()); break;
      case "--pairs": O.pairs = num(a, next()); break;
      case "--conns": O.conns = num(a, next()); break;
      case "--parallel": O.parallel = num(a, next()); break;
      case "--hold": O.hold = num(a, next()); break;
      case "--keepalive": O.keepalive = num(a, next()); break;
      case "--e2e-window":
      case "--qos0-window": O.e2eWindow = num(a, next()); break;
      case "--broker-pid": O.brokerPid = num(a, next()); break;
      case "--topic-prefix": O.prefix = next() ?? usageError("--topic-prefix needs a value"); break;
      case "--session-expiry": O.sessionExpiry = num(a, next()); break;
      case "--sndbuf": next(); break; // accepted for compatibility; Bun cannot set SO_SNDBUF
      case "--quickack": break; // accepted for compatibility; Bun cannot set TCP_QUICKACK
      case "--progress": O.progress = true; break;
      case "-q":
      case "--quiet": O.quiet = true; break;
      case "-h":
      case "--help": console.log(USAGE); process.exit(0);
      default:
        if (a.startsWith("-")) usageError(`unknown option ${a}`);
        if (O.scenario) usageError(`unexpected argument ${a}`);
        O.scenario = scenarioOf(a);
    }
  }
  if (!O.scenario) usageError("no scenario");
  if (O.ver !== 4 && O.ver !== 5) usageError("--mqtt must be 4 (3.1.1) or 5");
  if (O.scenario === "persist" && !O.qosSet) O.qos = 1;
  if (O.qos !== 0 && O.qos !== 1 && O.qos !== 2) usageError("--qos must be 0, 1 or 2");
  if (O.size < PAYLOAD_HDR) {
    console.error(`loadgen: --size ${O.size} raised to ${PAYLOAD_HDR} (header)`);
    O.size = PAYLOAD_HDR;
  }
  O.inflight = Math.max(1, Math.min(65535, Math.floor(O.inflight)));
  O.parallel = Math.max(1, Math.floor(O.parallel));
  if (O.refill <= 0) O.refill = O.inflight >= 4 ? Math.floor(O.inflight / 4) : 1;
  if (O.pubs < 1 || O.subs < 1 || O.pairs < 1 || O.conns < 1) usageError("client counts must be >= 1");
  if (O.keepalive < 0 || O.keepalive > 65535) usageError("bad --keepalive");
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(O.host)) usageError("--host must be an IPv4 address");
}

function scenarioOf(s: string | undefined): Scenario {
  const sc = SCENARIOS.find((x) => x === s);
  if (!sc) usageError(`unknown scenario ${s}`);
  return sc;
}

// ---------------------------------------------------------------- constants
const PAYLOAD_HDR = 24;
const MAX_PACKET = 64 << 20;
const TWO32 = 4294967296;
const NS = 1e9;
const MS = 1e6;

const R_SUB = 0, R_PUB = 1, R_IDLE = 2, R_CLEAN = 3;
const CS_NONE = 0, CS_TCP = 1, CS_CONNACK = 2, CS_SUBACK = 3, CS_READY = 4, CS_CLOSED = 5;
const PH_CONNECT = 0, PH_PUBLISH = 1, PH_DRAIN = 2, PH_HOLD = 3, PH_CLEANUP = 4, PH_DONE = 5;

// ---------------------------------------------------------------- histogram
/** Log-linear buckets (as loadgen.c): values < 2^HSUB exact, then 2^(HSUB-1) per power of two. */
const HSUB = 8;
const HBUCKETS = ((64 - HSUB) << (HSUB - 1)) + (1 << HSUB);
class Hist {
  b = new Float64Array(HBUCKETS);
  n = 0;
  max = 0;
  min = 0;
  sum = 0;
  add(v: number): void {
    v = v > 0 ? Math.floor(v) : 0;
    let i: number;
    if (v < 1 << HSUB) i = v;
    else {
      const msb = v < TWO32 ? 31 - Math.clz32(v) : 63 - Math.clz32(Math.floor(v / TWO32));
      const shift = msb - HSUB + 1;
      i = (shift << (HSUB - 1)) + Math.floor(v / 2 ** shift);
    }
    this.b[i]!++;
    this.n++;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (this.n === 1 || v < this.min) this.min = v;
  }
  pct(q: number): number {
    if (!this.n) return 0;
    let target = Math.floor(q * this.n + 0.999999);
    if (target < 1) target = 1;
    let acc = 0;
    for (let i = 0; i < HBUCKETS; i++) {
      acc += this.b[i]!;
      if (acc >= target) {
        let lo: number, hi: number;
        if (i < 1 << HSUB) lo = hi = i;
        else {
          const shift = (i >> (HSUB - 1)) - 1;
          const m = i - (shift << (HSUB - 1));
          lo = m * 2 ** shift;
          hi = (m + 1) * 2 ** shift - 1;
        }
        let v = (lo + hi) / 2;
        if (v > this.max) v = this.max;
        if (v < this.min) v = this.min;
        return v;
      }
    }
    return this.max;
  }
  mean(): number {
    return this.n ? this.sum / this.n : 0;
  }
}

// -------------------------------------------------------------- connections
const EMPTY = new Uint8Array(0);

class Tracker {
  bits = new Uint32Array(1024);
  maxp1 = 0;
  uniq = 0;
  dup = 0;
  ooo = 0;
}

class Conn {
  sock: Socket<Conn> | null = null;
  state = CS_NONE;
  inReady = false;
  pubDone = false;
  /** Unsent output waiting for `drain`. */
  armed = false;
  gotDisc = false;
  discReason = 0;
  e2eBlocked = false;
  nextId = 1;
  window = 0;
  ka: number;
  tStart = 0;
  tConnectSent = 0;
  tLastTx = 0;
  /** Partial frame carried over between chunks. */
  rb: Uint8Array = EMPTY;
  rw = 0;
  /** Output buffer: bytes [wr, ww) are unsent. */
  wb: Uint8Array;
  wr = 0;
  ww = 0;
  // publisher
  tmpl: Uint8Array = EMPTY;
  offPid = 0;
  offPay = 0;
  sent = 0;
  acked = 0;
  inflight = 0;
  rateT0 = 0;
  delivered = 0;
  writtenOff = 0;
  lastDeliv = 0;
  blockedAt = 0;
  /** Per packet id: 0 free, 1 waiting PUBACK/PUBREC, 2 waiting PUBCOMP. */
  pidState: Uint8Array = EMPTY;
  // subscriber
  tr: Tracker[] = [];
  trBase = 0;
  granted = 0;

  constructor(
    readonly role: number,
    readonly idx: number,
    readonly cid: string,
    readonly topic: string,
  ) {
    this.ka = O.keepalive;
    this.wb = new Uint8Array(role === R_PUB ? 65536 : role === R_SUB ? 8192 : 256);
  }
}

// ------------------------------------------------------------------ globals
let all: Conn[] = [];
let subs: Conn[] = [];
let pubs: Conn[] = [];
let nsubs = 0;
let npubs = 0;
/** Deliveries per published message (subscribers per publisher). */
let spp = 1;
let cq: Conn[] = [];
let cqNext = 0;
let nConnecting = 0;
let nReady = 0;
let nFailed = 0;
let rdyA: Conn[] = [];
let rdyB: Conn[] = [];
let npubDone = 0;
let phase = PH_CONNECT;
let now = 0;
let nonce = 0;
let prefix = "";
const lat = new Hist();
const clat = new Hist();
let stopSig = false;
let exitCode = 0;
let failMsgs = 0;
let t0 = 0, tMeas = 0, tPubDeadline = 0, tDrainStart = 0, tLastRecv = 0, tFirstRecv = 0;
let tLastSend = 0, tEnd = 0, tConnFirst = 0, tConnLast = 0, tHoldEnd = 0, tCleanupEnd = 0;
let hardDeadline = 0;
const tBegin = Bun.nanoseconds();
let timedOut = false, aborted = false, drainTimeout = false;
let cpuSelf0 = 0, cpuSelf1 = 0, cpuBroker0 = -1, cpuBroker1 = -1, cpuT0 = 0, cpuT1 = 0;
let rssBaseKb = -1, rssMaxKb = -1, rssEndKb = -1;
const rssSamples: number[] = [];
let batchMax = 1;
let cleanConns: Conn[] = [];
let cleanDone = 0;
let isMsg = false;
let persistent = false;

const S = {
  sent: 0, acked: 0, recv: 0, uniq: 0, dup: 0, dupNoFlag: 0, ooo: 0, measured: 0, foreign: 0,
  unexpectedPub: 0, writtenOff: 0, protoErr: 0, pubRejected: 0, unexpectedClose: 0,
  subDowngrade: 0, pings: 0, sessionPresent: 0, partialWrites: 0,
};

function say(s: string): void {
  if (!O.quiet) process.stdout.write(s + "\n");
}
function warn(s: string): void {
  process.stderr.write(`loadgen: ${s}\n`);
}

// --------------------------------------------------------- cpu / memory
function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
function brokerCpu(): number {
  if (!O.brokerPid) return -1;
  try {
    const s = readFileSync(`/proc/${O.brokerPid}/stat`, "latin1");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // fields from 3 on: utime is field 14, stime 15
    return (Number(f[11]) + Number(f[12])) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return -1;
  }
}
function brokerRss(): number {
  if (!O.brokerPid) return -1;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${O.brokerPid}/status`, "latin1"));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}
function cpuBegin(): void {
  cpuT0 = Bun.nanoseconds();
  cpuSelf0 = selfCpu();
  cpuBroker0 = brokerCpu();
}
function cpuEnd(): void {
  cpuT1 = Bun.nanoseconds();
  cpuSelf1 = selfCpu();
  cpuBroker1 = brokerCpu();
}

// ---------------------------------------------------------------- encoding
const enc = new TextEncoder();

function encVarint(d: Uint8Array, p: number, v: number): number {
  do {
    let b = v & 127;
    v = Math.floor(v / 128);
    if (v) b |= 128;
    d[p++] = b;
  } while (v);
  return p;
}
function wr32(d: Uint8Array, p: number, v: number): void {
  d[p] = v & 255;
  d[p + 1] = (v >>> 8) & 255;
  d[p + 2] = (v >>> 16) & 255;
  d[p + 3] = v >>> 24;
}
function rd32(d: Uint8Array, p: number): number {
  return (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16) | (d[p + 3]! << 24)) >>> 0;
}

/** Make room for `need` more bytes after ww (compacting or growing the output buffer). */
function wbReserve(c: Conn, need: number): void {
  if (c.wb.length - c.ww >= need) return;
  if (c.wr > 0) {
    c.wb.copyWithin(0, c.wr, c.ww);
    c.ww -= c.wr;
    c.wr = 0;
    if (c.wb.length - c.ww >= need) return;
  }
  let nc = c.wb.length || 256;
  while (nc - c.ww < need) nc *= 2;
  const nb = new Uint8Array(nc);
  nb.set(c.wb.subarray(0, c.ww));
  c.wb = nb;
}
function wbPacket(c: Conn, h: number, body: number[]): void {
  wbReserve(c, body.length + 5);
  c.wb[c.ww] = h;
  const p = encVarint(c.wb, c.ww + 1, body.length);
  c.wb.set(body, p);
  c.ww = p + body.length;
}
function wbAck(c: Conn, h: number, id: number): void {
  if (c.wb.length - c.ww < 4) wbReserve(c, 4);
  const d = c.wb;
  const w = c.ww;
  d[w] = h;
  d[w + 1] = 2;
  d[w + 2] = id >> 8;
  d[w + 3] = id & 255;
  c.ww = w + 4;
}
function u16(v: number): number[] {
  return [(v >> 8) & 255, v & 255];
}
function str(s: string): number[] {
  const b = enc.encode(s);
  return [...u16(b.length), ...b];
}

function encConnect(c: Conn): void {
  const persist = persistent && (c.role === R_SUB || c.role === R_CLEAN);
  const keepSession = persist && c.role === R_SUB;
  // 3.1.1: Clean Session 0 keeps the session; v5: Clean Start 1 + Session Expiry
  const flags = O.ver === 5 || !keepSession ? 0x02 : 0x00;
  const body = [...str("MQTT"), O.ver, flags, ...u16(O.keepalive)];
  if (O.ver === 5) {
    if (keepSession && O.sessionExpiry > 0) {
      const e = O.sessionExpiry >>> 0;
      body.push(5, 0x11, (e >>> 24) & 255, (e >>> 16) & 255, (e >>> 8) & 255, e & 255);
    } else body.push(0);
  }
  body.push(...str(c.cid));
  wbPacket(c, 0x10, body);
}
function encSubscribe(c: Conn): void {
  const body = [...u16(1)];
  if (O.ver === 5) body.push(0);
  body.push(...str(c.topic), O.qos);
  wbPacket(c, 0x82, body);
}
function buildPubTemplate(c: Conn): void {
  const topic = enc.encode(c.topic);
  const rl = 2 + topic.length + (O.qos ? 2 : 0) + (O.ver === 5 ? 1 : 0) + O.size;
  const hdr = new Uint8Array(5);
  hdr[0] = 0x30 | (O.qos << 1);
  const hl = encVarint(hdr, 1, rl);
  const t = new Uint8Array(hl + rl);
  t.set(hdr.subarray(0, hl));
  let p = hl;
  t[p++] = topic.length >> 8;
  t[p++] = topic.length & 255;
  t.set(topic, p);
  p += topic.length;
  if (O.qos) {
    c.offPid = p;
    p += 2;
  }
  if (O.ver === 5) t[p++] = 0;
  c.offPay = p;
  for (let i = 0; i < O.size; i++) t[p + i] = 97 + (i % 26);
  wr32(t, p, nonce);
  wr32(t, p + 4, c.idx);
  t.fill(0, p + 8, p + 24);
  c.tmpl = t;
}

// ------------------------------------------------------------------- I/O
function readyPush(c: Conn): void {
  if (c.inReady || c.role !== R_PUB || c.state !== CS_READY) return;
  c.inReady = true;
  rdyA.push(c);
  kick();
}

function closeSock(c: Conn): void {
  const s = c.sock;
  c.state = CS_CLOSED;
  if (s) {
    c.sock = null;
    try {
      s.terminate();
    } catch {}
  }
}

function pubFinish(c: Conn): void {
  if (c.role === R_PUB && !c.pubDone) {
    c.pubDone = true;
    npubDone++;
  }
}

/** The connection could not be established. */
function connFail(c: Conn, why: string): void {
  if (c.state === CS_CLOSED) return;
  if (failMsgs++ < 5) warn(`connection ${c.cid} failed: ${why}`);
  closeSock(c);
  nConnecting--;
  nFailed++;
  pubFinish(c);
  kick();
}

/** An established connection went away. */
function connLost(c: Conn, why: string): void {
  if (c.state === CS_CLOSED) return;
  if (c.state !== CS_READY) {
    connFail(c, why);
    return;
  }
  closeSock(c);
  if (phase !== PH_DONE && c.role !== R_CLEAN) {
    S.unexpectedClose++;
    if (S.unexpectedClose <= 5)
      warn(`${c.cid}: connection closed: ${why}${c.gotDisc ? " (after DISCONNECT from broker)" : ""}`);
  }
  pubFinish(c);
  kick();
}

/** One write of everything pending; the rest waits for `drain`. */
function flush(c: Conn): boolean {
  const s = c.sock;
  if (!s) return false;
  const len = c.ww - c.wr;
  if (len <= 0) return true;
  const k = s.write(c.wb, c.wr, len);
  if (k < 0) return false;
  c.tLastTx = now;
  if (k < len) {
    c.wr += k;
    c.armed = true;
    S.partialWrites++;
    return true;
  }
  c.wr = c.ww = 0;
  c.armed = false;
  return true;
}

function connStart(c: Conn): void {
  nConnecting++;
  c.tStart = Bun.nanoseconds();
  if (!tConnFirst) tConnFirst = c.tStart;
  c.state = CS_TCP;
  Bun.connect<Conn>({ hostname: O.host, port: O.port, data: c, socket: handlers }).catch((err: Error) => {
    connFail(c, `connect: ${err.message}`);
  });
}

function markReady(c: Conn): void {
  c.state = CS_READY;
  nConnecting--;
  nReady++;
  tConnLast = now;
  clat.add(now - c.tStart);
  kick();
}

// --------------------------------------------------------- v5 properties
interface Props {
  recvMax: number;
  serverKa: number;
}
/** Parse a v5 property block at b[off] (varint length first); returns the offset after it, or -1. */
function skipProps(b: Uint8Array, off: number, end: number, pr: Props | null): number {
  let pl = 0, mul = 1, i = off;
  for (;;) {
    if (i >= end || i - off >= 4) return -1;
    const x = b[i++]!;
    pl += (x & 127) * mul;
    mul *= 128;
    if (!(x & 128)) break;
  }
  const pend = i + pl;
  if (pend > end) return -1;
  if (!pr) return pend;
  while (i < pend) {
    const id = b[i++]!;
    switch (id) {
      case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
        i += 1;
        break;
      case 0x13: case 0x21: case 0x22: case 0x23:
        if (id === 0x21) pr.recvMax = (b[i]! << 8) | b[i + 1]!;
        if (id === 0x13) pr.serverKa = (b[i]! << 8) | b[i + 1]!;
        i += 2;
        break;
      case 0x02: case 0x11: case 0x18: case 0x27:
        i += 4;
        break;
      case 0x0b: {
        while (i < pend && b[i]! & 128) i++;
        i++;
        break;
      }
      case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1a: case 0x1c: case 0x1f:
        i += 2 + ((b[i]! << 8) | b[i + 1]!);
        break;
      case 0x26:
        i += 2 + ((b[i]! << 8) | b[i + 1]!);
        i += 2 + ((b[i]! << 8) | b[i + 1]!);
        break;
      default:
        return -1;
    }
    if (i > pend) return -1;
  }
  return pend;
}

// --------------------------------------------------------- packet handlers
function onConnack(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.state !== CS_CONNACK || rl < 2) return -1;
  const rc = b[o + 1]!;
  const pr: Props = { recvMax: 0, serverKa: 0 };
  if (O.ver === 5 && rl > 2 && skipProps(b, o + 2, o + rl, pr) < 0) return -1;
  if (rc !== 0) {
    connFail(c, `CONNACK return code 0x${rc.toString(16).padStart(2, "0")}`);
    return 0;
  }
  if (b[o]! & 1) S.sessionPresent++;
  c.window = O.inflight;
  if (pr.recvMax && pr.recvMax < c.window) c.window = pr.recvMax;
  if (pr.serverKa) c.ka = pr.serverKa;
  if (c.role === R_SUB) {
    c.state = CS_SUBACK;
    encSubscribe(c);
    return 0;
  }
  if (c.role === R_CLEAN) {
    // persist cleanup: the clean CONNECT removed the session; leave
    wbPacket(c, 0xe0, []);
    flush(c);
    const s = c.sock;
    c.state = CS_CLOSED;
    c.sock = null;
    s?.end();
    nConnecting--;
    cleanDone++;
    kick();
    return 0;
  }
  markReady(c);
  return 0;
}

function onSuback(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.state !== CS_SUBACK || rl < 3) return -1;
  let off = o + 2;
  if (O.ver === 5) {
    off = skipProps(b, off, o + rl, null);
    if (off < 0 || off >= o + rl) return -1;
  }
  const code = b[off]!;
  if (code >= 0x80) {
    connFail(c, `SUBACK refused (0x${code.toString(16)}) for ${c.topic}`);
    return 0;
  }
  c.granted = code;
  if (code < O.qos) S.subDowngrade++;
  markReady(c);
  return 0;
}

function e2eRoom(c: Conn): number {
  const outst = c.sent * spp - c.delivered - c.writtenOff;
  const lim = O.e2eWindow * spp;
  return outst >= lim ? 0 : Math.floor((lim - outst) / spp);
}
function e2eNeed(c: Conn): number {
  let need = O.e2eWindow >= 4 ? Math.floor(O.e2eWindow / 4) : 1;
  if (O.count && O.count - c.sent < need) need = O.count - c.sent;
  return need > 0 ? need : 1;
}

function recordMsg(c: Conn, b: Uint8Array, p: number, n: number, dupFlag: boolean): void {
  S.recv++;
  if (n < PAYLOAD_HDR || rd32(b, p) !== nonce) {
    S.foreign++;
    return;
  }
  const pid = rd32(b, p + 4);
  const seq = rd32(b, p + 8) + rd32(b, p + 12) * TWO32;
  const ts = rd32(b, p + 16) + rd32(b, p + 20) * TWO32;
  const k = pid - c.trBase;
  if (k < 0 || k >= c.tr.length || pid >= npubs || seq >= pubs[pid]!.sent) {
    S.unexpectedPub++;
    return;
  }
  const t = c.tr[k]!;
  const w = seq >>> 5;
  const bit = 1 << (seq & 31);
  if (w >= t.bits.length) {
    let nw = t.bits.length * 2;
    while (nw <= w) nw *= 2;
    const nb = new Uint32Array(nw);
    nb.set(t.bits);
    t.bits = nb;
  }
  const word = t.bits[w]!;
  if (word & bit) {
    t.dup++;
    S.dup++;
    if (!dupFlag) S.dupNoFlag++;
    return;
  }
  t.bits[w] = word | bit;
  t.uniq++;
  S.uniq++;
  if (seq + 1 > t.maxp1) t.maxp1 = seq + 1;
  else {
    t.ooo++;
    S.ooo++;
  }
  if (ts >= tMeas) {
    lat.add(now > ts ? now - ts : 0);
    S.measured++;
  }
  if (!tFirstRecv) tFirstRecv = now;
  tLastRecv = now;
  const pb = pubs[pid]!;
  pb.delivered++;
  pb.lastDeliv = now;
  if (pb.e2eBlocked && e2eRoom(pb) >= e2eNeed(pb)) {
    pb.e2eBlocked = false;
    readyPush(pb);
  }
}

function onPublish(c: Conn, h: number, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_SUB || c.state !== CS_READY || rl < 2) return -1;
  const qos = (h >> 1) & 3;
  if (qos === 3) return -1;
  const end = o + rl;
  let off = o + 2 + ((b[o]! << 8) | b[o + 1]!);
  let id = 0;
  if (qos) {
    if (off + 2 > end) return -1;
    id = (b[off]! << 8) | b[off + 1]!;
    off += 2;
  }
  if (O.ver === 5) {
    if (off >= end) return -1;
    off = skipProps(b, off, end, null);
    if (off < 0) return -1;
  }
  if (off > end) return -1;
  recordMsg(c, b, off, end - off, (h & 8) !== 0);
  if (qos === 1) wbAck(c, 0x40, id);
  else if (qos === 2) wbAck(c, 0x50, id);
  return 0;
}

function pubComplete(c: Conn, id: number): void {
  c.pidState[id] = 0;
  c.inflight--;
  c.acked++;
  S.acked++;
  readyPush(c);
}

function onPuback(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_PUB || rl < 2 || c.pidState.length === 0) return -1;
  const id = (b[o]! << 8) | b[o + 1]!;
  if (c.pidState[id] !== 1) {
    S.protoErr++;
    return 0;
  }
  if (O.ver === 5 && rl >= 3 && b[o + 2]! >= 0x80) S.pubRejected++;
  pubComplete(c, id);
  return 0;
}
function onPubrec(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_PUB || rl < 2 || c.pidState.length === 0) return -1;
  const id = (b[o]! << 8) | b[o + 1]!;
  if (c.pidState[id] === 0) {
    S.protoErr++;
    return 0;
  }
  if (O.ver === 5 && rl >= 3 && b[o + 2]! >= 0x80) {
    S.pubRejected++;
    pubComplete(c, id);
    return 0;
  }
  c.pidState[id] = 2;
  wbAck(c, 0x62, id);
  return 0;
}
function onPubrel(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_SUB || rl < 2) return -1;
  wbAck(c, 0x70, (b[o]! << 8) | b[o + 1]!);
  return 0;
}
function onPubcomp(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_PUB || rl < 2 || c.pidState.length === 0) return -1;
  const id = (b[o]! << 8) | b[o + 1]!;
  if (c.pidState[id] !== 2) {
    S.protoErr++;
    return 0;
  }
  pubComplete(c, id);
  return 0;
}
function onDisconnect(c: Conn, b: Uint8Array, o: number, rl: number): number {
  c.gotDisc = true;
  c.discReason = rl >= 1 ? b[o]! : 0;
  if (phase !== PH_DONE) warn(`${c.cid}: broker sent DISCONNECT reason 0x${c.discReason.toString(16)}`);
  return 0;
}

function handlePacket(c: Conn, h: number, b: Uint8Array, o: number, rl: number): number {
  switch (h >> 4) {
    case 3: return onPublish(c, h, b, o, rl);
    case 4: return onPuback(c, b, o, rl);
    case 5: return onPubrec(c, b, o, rl);
    case 6: return onPubrel(c, b, o, rl);
    case 7: return onPubcomp(c, b, o, rl);
    case 2: return onConnack(c, b, o, rl);
    case 9: return onSuback(c, b, o, rl);
    case 13: return 0; // PINGRESP
    case 14: return onDisconnect(c, b, o, rl);
    default: return -1;
  }
}

/**
 * Handle every complete frame in b[pos, end). Returns the offset of the first
 * byte not consumed (start of a partial frame), or -1 on a protocol error.
 */
function parseFrames(c: Conn, b: Uint8Array, pos: number, end: number): number {
  while (end - pos >= 2) {
    let i = pos + 1, rl = 0, mul = 1, done = false;
    while (i < end && i < pos + 5) {
      const x = b[i++]!;
      rl += (x & 127) * mul;
      mul *= 128;
      if (!(x & 128)) {
        done = true;
        break;
      }
    }
    if (!done) {
      if (i >= pos + 5) return -1;
      break;
    }
    if (rl > MAX_PACKET) return -1;
    if (end - i < rl) break;
    if (handlePacket(c, b[pos]!, b, i, rl) < 0) {
      S.protoErr++;
      if (S.protoErr <= 5) warn(`${c.cid}: unexpected/malformed packet type ${b[pos]! >> 4} len ${rl}`);
      return -1;
    }
    if (c.state === CS_CLOSED) return end;
    pos = i + rl;
  }
  return pos;
}

/** Total length of the frame starting at b[0] (n bytes known): -1 header incomplete, -2 malformed. */
function frameLen(b: Uint8Array, n: number): number {
  let rl = 0, mul = 1;
  for (let i = 1; i < 5; i++) {
    if (i >= n) return -1;
    const x = b[i]!;
    rl += (x & 127) * mul;
    mul *= 128;
    if (!(x & 128)) return rl > MAX_PACKET ? -2 : i + 1 + rl;
  }
  return -2;
}

function rbReserve(c: Conn, need: number): void {
  if (c.rb.length >= need) return;
  let nc = c.rb.length || 1024;
  while (nc < need) nc *= 2;
  const nb = new Uint8Array(nc);
  nb.set(c.rb.subarray(0, c.rw));
  c.rb = nb;
}

function onData(c: Conn, chunk: Uint8Array): void {
  const len = chunk.length;
  let pos = 0;
  if (c.rw > 0) {
    // finish the frame split across chunks, copying only its bytes
    for (;;) {
      const need = frameLen(c.rb, c.rw);
      if (need === -2) return protocolError(c);
      if (need === -1) {
        if (pos >= len) return;
        rbReserve(c, c.rw + 1);
        c.rb[c.rw++] = chunk[pos++]!;
        continue;
      }
      rbReserve(c, need);
      const take = Math.min(need - c.rw, len - pos);
      c.rb.set(chunk.subarray(pos, pos + take), c.rw);
      c.rw += take;
      pos += take;
      if (c.rw < need) return;
      const r = parseFrames(c, c.rb, 0, need);
      c.rw = 0;
      if (r < 0) return protocolError(c);
      if (c.state === CS_CLOSED) return;
      break;
    }
  }
  const r = parseFrames(c, chunk, pos, len);
  if (r < 0) return protocolError(c);
  if (c.state === CS_CLOSED) return;
  if (r < len) {
    rbReserve(c, len - r);
    c.rb.set(chunk.subarray(r, len), 0);
    c.rw = len - r;
  }
}

function protocolError(c: Conn): void {
  connLost(c, "protocol error");
}

const handlers: SocketHandler<Conn> = {
  open(sock) {
    const c = sock.data;
    if (c.state === CS_CLOSED) {
      sock.terminate();
      return;
    }
    c.sock = sock;
    now = Bun.nanoseconds();
    // CONNECT-only connections send one packet: Nagle cannot delay it
    if (c.role === R_PUB || c.role === R_SUB) sock.setNoDelay(true);
    c.state = CS_CONNACK;
    encConnect(c);
    c.tConnectSent = now;
    if (!flush(c)) connFail(c, "write failed");
  },
  data(sock, chunk) {
    const c = sock.data;
    if (c.state === CS_CLOSED) return;
    now = Bun.nanoseconds();
    onData(c, chunk);
    // publishers that are about to be pumped flush together with new messages
    if (c.ww > c.wr && !c.armed && !c.inReady && c.state !== CS_CLOSED) {
      if (!flush(c)) connLost(c, "write error");
    }
  },
  drain(sock) {
    const c = sock.data;
    if (c.state === CS_CLOSED || !c.armed) return;
    now = Bun.nanoseconds();
    if (!flush(c)) {
      connLost(c, "write error");
      return;
    }
    if (c.role === R_PUB && c.ww === c.wr) readyPush(c);
  },
  close(sock) {
    const c = sock.data;
    if (c.sock !== sock) return;
    now = Bun.nanoseconds();
    c.sock = null;
    if (c.state !== CS_CLOSED) connLost(c, "closed by broker");
  },
  end(sock) {
    const c = sock.data;
    if (c.sock !== sock) return;
    now = Bun.nanoseconds();
    connLost(c, "closed by broker");
  },
  error(sock, err) {
    const c = sock.data;
    if (c.sock !== sock) return;
    now = Bun.nanoseconds();
    connLost(c, err.message);
  },
  connectError(sock, err) {
    connFail(sock.data, `connect: ${err.message}`);
  },
};

// ------------------------------------------------------------- publishing
function pump(c: Conn): void {
  if (c.role !== R_PUB || c.state !== CS_READY) return;
  let again = false;
  pub: if (phase === PH_PUBLISH && !c.pubDone) {
    let n = batchMax;
    if (O.count) {
      if (c.sent >= O.count) {
        pubFinish(c);
        break pub;
      }
      if (O.count - c.sent < n) n = O.count - c.sent;
    }
    if (tPubDeadline && now >= tPubDeadline) {
      pubFinish(c);
      break pub;
    }
    let dueLeft = 0;
    if (O.rate > 0) {
      if (now < c.rateT0) break pub;
      const due = Math.floor(((now - c.rateT0) * O.rate) / 1e9) + 1;
      if (due <= c.sent) break pub;
      dueLeft = due - c.sent;
      if (dueLeft < n) n = dueLeft;
    }
    if (O.e2eWindow) {
      // end-to-end window: messages sent but not yet received by the subscriber(s)
      const room = e2eRoom(c);
      if (room < e2eNeed(c)) {
        if (!c.e2eBlocked) {
          c.e2eBlocked = true;
          c.blockedAt = now;
        }
        break pub;
      }
      if (room < n) n = room;
    }
    if (O.qos) {
      const room = c.window - c.inflight;
      let need = c.window < O.refill ? c.window : O.refill;
      if (O.count && O.count - c.sent < need) need = O.count - c.sent;
      if (!room || room < need) break pub;
      if (room < n) n = room;
    } else if (c.ww > c.wr) {
      break pub; // QoS 0 write backpressure: wait for drain
    }
    sendBatch(c, n);
    S.sent += n;
    tLastSend = now;
    if (O.count && c.sent >= O.count) pubFinish(c);
    else if (O.rate > 0) again = dueLeft > n;
    else again = true;
  }
  if (c.ww > c.wr && !c.armed) {
    if (!flush(c)) {
      connLost(c, "write error");
      return;
    }
  }
  if (again && c.state === CS_READY && !c.pubDone && (O.qos ? c.inflight < c.window : c.ww === c.wr)) readyPush(c);
}

/** Append n PUBLISH packets from the template, patching packet id, sequence and timestamp. */
function sendBatch(c: Conn, n: number): void {
  const tmpl = c.tmpl;
  const tl = tmpl.length;
  wbReserve(c, n * tl);
  const d = c.wb;
  let w = c.ww;
  const tsLo = now >>> 0;
  const tsHi = Math.floor(now / TWO32);
  const qos = O.qos;
  const ps = c.pidState;
  const offPid = c.offPid;
  const offPay = c.offPay;
  for (let i = 0; i < n; i++) {
    d.set(tmpl, w);
    if (qos) {
      let id: number;
      for (;;) {
        id = c.nextId++;
        if (c.nextId > 65535) c.nextId = 1;
        if (ps[id] === 0) break;
      }
      ps[id] = 1;
      d[w + offPid] = id >> 8;
      d[w + offPid + 1] = id & 255;
      c.inflight++;
    }
    const pl = w + offPay;
    const seq = c.sent;
    wr32(d, pl + 8, seq >>> 0);
    wr32(d, pl + 12, Math.floor(seq / TWO32));
    wr32(d, pl + 16, tsLo);
    wr32(d, pl + 20, tsHi);
    w += tl;
    c.sent = seq + 1;
  }
  c.ww = w;
}

function runReady(): void {
  if (!rdyA.length) return;
  const cur = rdyA;
  rdyA = rdyB;
  rdyB = cur;
  for (let i = 0; i < cur.length; i++) {
    const c = cur[i]!;
    c.inReady = false;
    pump(c);
  }
  cur.length = 0;
}

// ------------------------------------------------------------- event loop
let turnScheduled = false;
/** Schedule one loop turn (like the C tool's step after each epoll batch). */
function kick(): void {
  if (!turnScheduled) {
    turnScheduled = true;
    setImmediate(turn);
  }
}
function turn(): void {
  turnScheduled = false;
  if (phase === PH_DONE) return;
  now = Bun.nanoseconds();
  runReady();
  stepPhase();
  checkStop();
  if (rdyA.length) kick();
}

function checkStop(): void {
  if (phase === PH_DONE) return;
  if (stopSig || now >= hardDeadline) {
    if (!stopSig) warn(`hard timeout (${O.timeout} s) reached`);
    else warn("interrupted");
    timedOut = true;
    if (!cpuT1) cpuEnd();
    if (!tEnd) tEnd = now;
    finish();
  }
}

// --------------------------------------------------------------- phases
function startConnects(): void {
  while (nConnecting < O.parallel && cqNext < cq.length) connStart(cq[cqNext++]!);
}

function startPublish(): void {
  now = Bun.nanoseconds();
  t0 = now;
  tMeas = t0 + O.warmup * NS;
  if (!O.count || O.durationSet) tPubDeadline = t0 + (O.warmup + O.duration) * NS;
  const period = O.rate > 0 ? 1e9 / O.rate : 0;
  phase = PH_PUBLISH;
  for (let i = 0; i < npubs; i++) {
    pubs[i]!.rateT0 = t0 + (period * i) / npubs;
    readyPush(pubs[i]!);
  }
  cpuBegin();
  say(
    `publishing: ${npubs} publisher(s) -> ${nsubs} subscriber(s), qos ${O.qos}, ${O.size} B payload, ` +
      `${O.rate > 0 ? "rate-limited" : "max rate"}${persistent ? ", persistent subscriber sessions" : ""}`,
  );
}

function expectedDeliveries(): number {
  let e = 0;
  for (const p of pubs) e += p.sent;
  return e * spp;
}
function totalInflight(): number {
  let n = 0;
  for (const p of pubs) if (p.state === CS_READY) n += p.inflight;
  return n;
}

function stepPhase(): void {
  switch (phase) {
    case PH_CONNECT:
      startConnects();
      if (isMsg) {
        if (nFailed) {
          aborted = true;
          exitCode = 2;
          finish();
        } else if (nReady === all.length) {
          say(`connected ${all.length} clients in ${((tConnLast - tConnFirst) / 1e6).toFixed(1)} ms`);
          startPublish();
        }
      } else if (nReady + nFailed === all.length) {
        cpuEnd();
        const secs = (tConnLast - tConnFirst) / 1e9;
        say(
          `connected ${nReady}/${all.length} clients in ${secs.toFixed(3)} s ` +
            `(${secs > 0 ? (nReady / secs).toFixed(0) : 0} conn/s), ${nFailed} failed`,
        );
        say(`holding ${nReady} idle connections for ${O.hold.toFixed(1)} s`);
        tHoldEnd = now + O.hold * NS;
        phase = PH_HOLD;
      }
      break;
    case PH_PUBLISH:
      if (npubDone === npubs) {
        phase = PH_DRAIN;
        tDrainStart = now;
      }
      break;
    case PH_DRAIN: {
      const inf = totalInflight();
      const exp = expectedDeliveries();
      const last = tLastRecv > tDrainStart ? tLastRecv : tDrainStart;
      const idle = O.drainIdle > 0 ? O.drainIdle * NS : O.qos === 0 ? 500 * MS : 5000 * MS;
      let done = false;
      if (inf === 0 && S.uniq >= exp) done = true;
      else if ((O.qos === 0 || inf === 0 || S.unexpectedClose) && now - last > idle) done = true;
      else if (now - tDrainStart > O.drain * NS) {
        done = true;
        drainTimeout = true;
      }
      if (done) {
        cpuEnd();
        tEnd = now;
        endMessagePhase();
      }
      break;
    }
    case PH_HOLD:
      if (now >= tHoldEnd) finish();
      break;
    case PH_CLEANUP:
      if (cleanDone + nFailed >= cleanConns.length || now >= tCleanupEnd) finish();
      break;
  }
}

/** Message runs end here; persistent sessions are removed before the report. */
function endMessagePhase(): void {
  if (!persistent) {
    finish();
    return;
  }
  // v5: DISCONNECT with Session Expiry 0 ends the session ([MQTT-3.14.2-2] allows it:
  // the CONNECT had a non-zero expiry). 3.1.1: reconnect each client id with Clean Session 1.
  const v5disc = [0x00, 0x05, 0x11, 0, 0, 0, 0];
  shutdownAll(O.ver === 5 ? v5disc : null);
  if (O.ver === 5) {
    finish();
    return;
  }
  phase = PH_CLEANUP;
  tCleanupEnd = now + 3 * NS;
  nFailed = 0;
  nConnecting = 0;
  failMsgs = 5; // cleanup failures are not reported
  cleanConns = subs.map((s) => new Conn(R_CLEAN, s.idx, s.cid, s.topic));
  cq = cleanConns;
  cqNext = 0;
  startConnects();
}

function tick(): void {
  now = Bun.nanoseconds();
  if (phase === PH_PUBLISH) {
    if (tPubDeadline && now >= tPubDeadline) {
      for (const p of pubs) pubFinish(p);
    } else {
      for (const c of pubs) {
        if (O.rate > 0) readyPush(c);
        if (
          O.qos === 0 &&
          c.e2eBlocked &&
          now - (c.lastDeliv > c.blockedAt ? c.lastDeliv : c.blockedAt) > 500 * MS
        ) {
          // QoS 0 e2e window stalled: assume the outstanding messages were dropped
          const outst = c.sent * spp - c.delivered - c.writtenOff;
          c.writtenOff += outst;
          S.writtenOff += outst;
          c.e2eBlocked = false;
          readyPush(c);
        }
      }
    }
  }
  if (phase === PH_HOLD && O.brokerPid) {
    const r = brokerRss();
    if (r > 0) rssSamples.push(r);
  }
  runReady();
  stepPhase();
  checkStop();
}

let nextHk = 0;
function housekeeping(): void {
  now = Bun.nanoseconds();
  if (now < nextHk) return;
  nextHk = now + NS;
  // keepalive: PINGREQ on connections idle for more than keepalive/2
  for (const c of all) {
    if (c.state !== CS_READY || !c.ka || !c.sock) continue;
    if (now - c.tLastTx > (c.ka * NS) / 2) {
      wbReserve(c, 2);
      c.wb[c.ww++] = 0xc0;
      c.wb[c.ww++] = 0x00;
      S.pings++;
      if (!c.armed && !c.inReady && !flush(c)) connLost(c, "write error");
    }
  }
  const r = brokerRss();
  if (r > rssMaxKb) rssMaxKb = r;
  if (O.progress && (phase === PH_PUBLISH || phase === PH_DRAIN))
    process.stderr.write(
      `[${((now - t0) / 1e9).toFixed(1).padStart(5)}s] sent=${S.sent} acked=${S.acked} recv=${S.recv} inflight=${totalInflight()}\n`,
    );
}

// ------------------------------------------------------------------ setup
function setup(): void {
  const sc = O.scenario;
  const tag = (ch: string, i: number) => `ts${nonce.toString(16).padStart(8, "0")}-${ch}${i}`;
  if (sc === "conn") {
    for (let i = 0; i < O.conns; i++) all.push(new Conn(R_IDLE, i, tag("c", i), ""));
    cq = all.slice();
    return;
  }
  isMsg = true;
  persistent = sc === "persist";
  if (sc === "fanin") {
    npubs = O.pubs;
    nsubs = 1;
    spp = 1;
  } else if (sc === "fanout") {
    npubs = 1;
    nsubs = O.subs;
    spp = O.subs;
  } else {
    npubs = O.pairs;
    nsubs = O.pairs;
    spp = 1;
  }
  for (let i = 0; i < nsubs; i++) {
    const topic =
      sc === "fanin" ? `${prefix}/fanin/+` : sc === "fanout" ? `${prefix}/fanout` : `${prefix}/pair/${i}`;
    const c = new Conn(R_SUB, i, tag("s", i), topic);
    const nTr = sc === "fanin" ? npubs : 1;
    c.trBase = sc === "fanin" || sc === "fanout" ? 0 : i;
    for (let k = 0; k < nTr; k++) c.tr.push(new Tracker());
    subs.push(c);
  }
  for (let i = 0; i < npubs; i++) {
    const topic =
      sc === "fanin" ? `${prefix}/fanin/${i}` : sc === "fanout" ? `${prefix}/fanout` : `${prefix}/pair/${i}`;
    const c = new Conn(R_PUB, i, tag("p", i), topic);
    buildPubTemplate(c);
    if (O.qos) c.pidState = new Uint8Array(65536);
    pubs.push(c);
  }
  batchMax = O.qos ? O.inflight : Math.max(1, Math.floor((32 * 1024) / pubs[0]!.tmpl.length));
  all = [...subs, ...pubs];
  cq = all.slice();
}

function shutdownAll(disc: number[] | null): void {
  for (const c of all) {
    if (!c.sock) continue;
    if (c.state === CS_READY) {
      const s = c.sock;
      c.sock = null; // before end(): its close callback may run synchronously
      c.state = CS_CLOSED;
      c.wr = c.ww = 0;
      wbPacket(c, 0xe0, disc ?? []);
      try {
        s.write(c.wb, 0, c.ww);
        s.end();
      } catch {}
    } else closeSock(c);
  }
}

// ------------------------------------------------------------------ report
let finished = false;
let tickTimer: ReturnType<typeof setInterval> | null = null;
let hkTimer: ReturnType<typeof setInterval> | null = null;

function finish(): void {
  if (finished) return;
  finished = true;
  const wasPersistCleanup = phase === PH_CLEANUP;
  phase = PH_DONE;
  if (tickTimer) clearInterval(tickTimer);
  if (hkTimer) clearInterval(hkTimer);
  if (O.brokerPid) {
    const r = brokerRss();
    rssEndKb = r;
    if (r > rssMaxKb) rssMaxKb = r;
  }
  if (!cpuT1) cpuEnd();
  if (!wasPersistCleanup) shutdownAll(null);
  for (const c of cleanConns) closeSock(c);
  report();
  // give the DISCONNECTs a moment to leave before the process exits
  setTimeout(() => process.exit(exitCode), 20);
}

function f1(v: number): string {
  return (Math.round(v * 10) / 10).toFixed(1);
}

function report(): void {
  const js: Record<string, string | number> = { scenario: O.scenario, mqtt: O.ver, tool: "ts" };
  const cwall = cpuT0 && cpuT1 > cpuT0 ? (cpuT1 - cpuT0) / 1e9 : 0;
  const lgCpu = cpuSelf1 - cpuSelf0;
  const brCpu = O.brokerPid && cpuBroker0 >= 0 && cpuBroker1 >= 0 ? cpuBroker1 - cpuBroker0 : -1;
  let fail = false;
  if (isMsg) {
    const exp = expectedDeliveries();
    const lost = exp > S.uniq ? exp - S.uniq : 0;
    const sendS = tLastSend > t0 ? (tLastSend - t0) / 1e9 : 0;
    const win = tLastRecv > tMeas ? (tLastRecv - tMeas) / 1e9 : 0;
    const rate = win > 0 ? S.measured / win : 0;
    const srate = sendS > 0 ? S.sent / sendS : 0;
    const problems: string[] = [];
    if (O.qos > 0 && lost) problems.push(`${lost} QoS ${O.qos} message(s) lost`);
    if (S.dupNoFlag) problems.push(`${S.dupNoFlag} duplicate(s) without the DUP flag`);
    if (S.ooo) problems.push(`${S.ooo} out-of-order arrival(s)`);
    if (S.protoErr) problems.push(`${S.protoErr} protocol error(s)`);
    if (S.unexpectedClose) problems.push(`${S.unexpectedClose} unexpected close(s)`);
    if (S.pubRejected) problems.push(`${S.pubRejected} PUBLISH(es) rejected`);
    if (S.unexpectedPub) problems.push(`${S.unexpectedPub} message(s) never sent`);
    if (problems.length) fail = true;
    if (aborted) say(`result: ${nFailed} of ${all.length} connections failed; nothing published`);
    else {
      say(
        `result: sent=${S.sent} acked=${S.acked} recv=${S.recv} unique=${S.uniq} expected=${exp} lost=${lost} ` +
          `dup=${S.dup} (no DUP flag: ${S.dupNoFlag}) ooo=${S.ooo} foreign=${S.foreign + S.unexpectedPub}`,
      );
      say(
        `throughput: ${rate.toFixed(0)} msg/s received over ${win.toFixed(3)} s window (send ${srate.toFixed(0)} msg/s)` +
          (drainTimeout ? "  [drain timeout]" : ""),
      );
      say(
        `latency us: p50=${f1(lat.pct(0.5) / 1e3)} p90=${f1(lat.pct(0.9) / 1e3)} p99=${f1(lat.pct(0.99) / 1e3)} ` +
          `p99.9=${f1(lat.pct(0.999) / 1e3)} max=${f1(lat.max / 1e3)} mean=${f1(lat.mean() / 1e3)} (n=${lat.n})`,
      );
      if (S.subDowngrade) say(`warning: ${S.subDowngrade} subscription(s) granted a lower QoS`);
      if (S.writtenOff) say(`e2e window: ${S.writtenOff} messages written off as dropped`);
      for (const p of problems) (O.quiet ? warn : say)(`check failed: ${p}`);
    }
    Object.assign(js, {
      qos: O.qos, size: O.size, pubs: npubs, subs: nsubs, target_rate: O.rate, inflight: O.inflight,
      persistent: persistent ? 1 : 0, sent: S.sent, acked: S.acked, recv: S.recv, unique: S.uniq,
      expected: exp, lost, dup: S.dup, dup_noflag: S.dupNoFlag, ooo: S.ooo,
      foreign: S.foreign + S.unexpectedPub, written_off: S.writtenOff, rate: Math.round(rate),
      send_rate: Math.round(srate), window_s: +win.toFixed(3),
      p50_us: +f1(lat.pct(0.5) / 1e3), p90_us: +f1(lat.pct(0.9) / 1e3), p99_us: +f1(lat.pct(0.99) / 1e3),
      p999_us: +f1(lat.pct(0.999) / 1e3), max_us: +f1(lat.max / 1e3), mean_us: +f1(lat.mean() / 1e3),
      drain_timeout: drainTimeout ? 1 : 0, pub_rejected: S.pubRejected, conn_fail: nFailed,
      session_present: S.sessionPresent,
    });
  } else {
    const secs = tConnLast > tConnFirst ? (tConnLast - tConnFirst) / 1e9 : 0;
    const crate = secs > 0 ? nReady / secs : 0;
    let held = -1;
    if (rssSamples.length) {
      rssSamples.sort((a, b) => a - b);
      held = rssSamples[rssSamples.length >> 1]!;
    }
    const per = held > 0 && rssBaseKb > 0 && nReady ? ((held - rssBaseKb) * 1024) / nReady : -1;
    if (nFailed || S.unexpectedClose) fail = true;
    say(
      `result: ${nReady}/${O.conns} connected, ${nFailed} failed, ${crate.toFixed(0)} conn/s; connect latency us ` +
        `p50=${f1(clat.pct(0.5) / 1e3)} p99=${f1(clat.pct(0.99) / 1e3)} max=${f1(clat.max / 1e3)}; ` +
        `${S.unexpectedClose} dropped by broker while idle`,
    );
    if (O.brokerPid)
      say(`broker rss: base ${rssBaseKb} kB, held ${held} kB -> ${per.toFixed(0)} bytes per idle connection`);
    Object.assign(js, {
      conns: O.conns, connected: nReady, conn_fail: nFailed, conn_time_s: +secs.toFixed(3),
      conn_rate: Math.round(crate), cp50_us: +f1(clat.pct(0.5) / 1e3), cp99_us: +f1(clat.pct(0.99) / 1e3),
      cmax_us: +f1(clat.max / 1e3), dropped_idle: S.unexpectedClose, rss_base_kb: rssBaseKb,
      rss_held_kb: held, rss_per_conn_b: Math.round(per),
    });
  }
  if (timedOut) fail = true;
  if (!exitCode && fail) exitCode = 1;
  if (cwall > 0) {
    let s = `cpu: loadgen ${lgCpu.toFixed(2)} s (${((100 * lgCpu) / cwall).toFixed(0)}%)`;
    if (brCpu >= 0) s += `, broker ${brCpu.toFixed(2)} s (${((100 * brCpu) / cwall).toFixed(0)}%)`;
    say(`${s} over ${cwall.toFixed(2)} s`);
  }
  Object.assign(js, {
    cpu_window_s: +cwall.toFixed(3),
    loadgen_cpu_s: +lgCpu.toFixed(3),
    loadgen_cpu_pct: cwall > 0 ? +((100 * lgCpu) / cwall).toFixed(1) : 0,
    broker_cpu_s: +brCpu.toFixed(3),
    broker_cpu_pct: cwall > 0 && brCpu >= 0 ? +((100 * brCpu) / cwall).toFixed(1) : -1,
    broker_rss_kb: rssEndKb,
    broker_rss_max_kb: rssMaxKb,
    loadgen_rss_kb: Math.round(process.memoryUsage().rss / 1024),
    partial_writes: S.partialWrites,
    pings: S.pings,
    proto_err: S.protoErr,
    unexpected_close: S.unexpectedClose,
    timed_out: timedOut ? 1 : 0,
    aborted: aborted ? 1 : 0,
    ok: exitCode === 0 ? 1 : 0,
    elapsed_s: +((Bun.nanoseconds() - tBegin) / 1e9).toFixed(3),
  });
  if (exitCode === 2) say("FAILED: could not connect");
  else if (exitCode) say("FAILED: checks did not pass (see above)");
  process.stdout.write(JSON.stringify(js) + "\n");
}

// -------------------------------------------------------------------- main
function main(): void {
  parseArgs(process.argv.slice(2));
  nonce = crypto.getRandomValues(new Uint32Array(1))[0]! >>> 0;
  if (process.env.LOADGEN_NONCE) nonce = Number.parseInt(process.env.LOADGEN_NONCE, 16) >>> 0;
  prefix = O.prefix || `bench/ts${nonce.toString(16).padStart(8, "0")}`;
  if (O.timeout <= 0) {
    let base = 30;
    if (O.scenario !== "conn") {
      if (O.count && !O.durationSet) base += O.rate > 0 ? (O.count / O.rate) * 1.5 + 30 : 300;
      else base += O.duration + O.warmup;
      base += O.drain;
    } else base += O.hold + 60;
    O.timeout = base;
  }
  hardDeadline = tBegin + O.timeout * NS;
  setup();
  say(
    `loadgen.ts: ${O.scenario} mqtt=${O.ver === 5 ? "5" : "3.1.1"} host=${O.host}:${O.port}` +
      (isMsg
        ? ` qos=${O.qos} size=${O.size} pubs=${npubs} subs=${nsubs} rate=${O.rate > 0 ? "limited" : "max"} ` +
          `inflight=${O.inflight} ${O.count ? "count-mode" : "duration-mode"}`
        : ` conns=${O.conns} parallel=${O.parallel}`),
  );
  if (O.brokerPid) {
    rssBaseKb = brokerRss();
    if (rssBaseKb < 0) warn(`cannot read /proc/${O.brokerPid} (broker pid)`);
  }
  if (!isMsg) cpuBegin();
  process.on("SIGINT", () => {
    stopSig = true;
    kick();
  });
  process.on("SIGTERM", () => {
    stopSig = true;
    kick();
  });
  const tickMs = O.rate > 0 || O.e2eWindow ? 1 : 10;
  tickTimer = setInterval(tick, tickMs);
  hkTimer = setInterval(housekeeping, 250);
  now = Bun.nanoseconds();
  startConnects();
}

main();
