/**
 * @module loadgen/options
 * The command line: scenario names, usage text, the flags (the same as the C
 * mqtt-loadgen's, plus `persist` and --session-expiry) parsed into `O`, and
 * the two output helpers whose behaviour -q changes. Usage errors exit 2.
 */
import { PAYLOAD_HDR } from "./packets.ts";

const SCENARIOS = ["fanin", "fanout", "pairs", "conn", "persist"] as const;
export type Scenario = (typeof SCENARIOS)[number];

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
  --sub-host H  --sub-port N  subscribers connect there instead (default: --host, --port);
            publishers stay on --host/--port (e.g. an edge broker bridged to an upstream)
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

export const O = {
  host: "127.0.0.1",
  port: 1883,
  /** Subscribers' broker ("" / 0: --host / --port). */
  subHost: "",
  subPort: 0,
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

export function parseArgs(argv: string[]): void {
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
      case "--sub-host": O.subHost = next() ?? usageError("--sub-host needs a value"); break;
      case "--sub-port": O.subPort = num(a, next()); break;
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
  if (O.subHost && !/^\d+\.\d+\.\d+\.\d+$/.test(O.subHost)) usageError("--sub-host must be an IPv4 address");
  if (O.subPort < 0 || O.subPort > 65535) usageError("bad --sub-port");
}

function scenarioOf(s: string | undefined): Scenario {
  const sc = SCENARIOS.find((x) => x === s);
  if (!sc) usageError(`unknown scenario ${s}`);
  return sc;
}

/** A readable line on stdout (none with -q: only the JSON line is printed then). */
export function say(s: string): void {
  if (!O.quiet) process.stdout.write(s + "\n");
}
export function warn(s: string): void {
  process.stderr.write(`loadgen: ${s}\n`);
}
