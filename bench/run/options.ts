/**
 * @module run/options
 * The runner's command line: usage text and flags parsed into `Options`.
 * Anything after `--` is passed to every loadgen run unchanged.
 */
import { BRIDGE_NAME, BRIDGE_WHAT } from "./bridge.ts";
import { DENO, die, MOSQUITTO } from "./env.ts";
import { SCENARIOS } from "./matrix.ts";
import { parseTransports, type Transport } from "./transports.ts";

const USAGE = `usage: bun run bench [options] [-- extra loadgen args]

  (default)            start bunmq (fresh process per scenario group, --data :memory:)
                       and run the matrix once
  --target HOST:PORT   measure an already running broker instead (no restarts)
  --pid PID            its PID (broker CPU% and RSS per connection)
  --vs HOST:PORT       also run every scenario against this broker, alternating
                       A B A B for --rounds rounds (default 3), and print medians
                       and ratios; "--vs mosquitto" starts ${MOSQUITTO} itself
                       (reference config, fresh process per group, persistence
                       with autosave 1 s for the persist rows)
                       "--vs bun" starts bunmq under Bun as the B side (see --runtime)
  --vs-pid PID         PID of the --vs broker (CPU%, RSS)
  --runtime bun|deno   the runtime the managed bunmq (A) runs under (default bun); deno runs
                       \`deno run -A broker.deno.ts\` ($DENO or deno on PATH) and, without
                       --vs, compares it with bunmq under Bun (--vs bun): ratios are Deno/Bun
  --names A,B          labels (default bunmq,mosquitto|other)
  --rounds N           rounds (default 1, or 3 with --vs or more than one --transport)
  --duration S         measured seconds per message scenario (default 2)
  --warmup S           unmeasured seconds before that (default 0.5)
  --only a,b           scenarios or groups: fanin,fanin_q1,fanout,pairs,latency,conn,persist,...
                       (overload_q1, handshake and idle_rss run only when named here)
  --only bridge        the bridge scenario, on its own: fan-in QoS 1 on an edge broker,
                       its bridge to an upstream, one subscriber there; against the same
                       flow without the bridge, and against two Mosquitto processes with
                       a Mosquitto bridge (starts all brokers itself; 3 rounds, C loadgen)
  --bridge-mqtt 4|5    bridge protocol of both edges (default 5; Mosquitto: mqttv50|mqttv311)
  --bridge-config JSON more options for bunmq's bridge entry, e.g. '{"maxInflight":256}'
  --transport LIST     tcp (default), tls, ws, wss, or a list (tcp,tls,ws,wss): every
                       scenario runs over each, on a broker started with that listener
                       (certificates made with openssl in the output directory);
                       with more than one, a table compares each with bunmq tcp.
                       Anything but tcp needs the C loadgen (the default then)
  --mosquitto-nodelay [on|both|off]
                       with --vs mosquitto: set_tcp_nodelay true (on; the flag alone),
                       or run Mosquitto both ways (both); default off (Mosquitto's default)
  --loadgen ts|c       load generator: bench/loadgen.ts (default) or the C mqtt-loadgen
                       ($LOADGEN, else /tmp/mqtt-loadgen; built from loadgen.c if missing).
                       The C tool has no persist scenario: those rows always use ts.
  --mqtt 4|5           protocol (default 4 = 3.1.1)
  --json               print one JSON document instead of markdown
  --out DIR            keep logs there (default: a new /tmp/bunmq-bench.* directory)
  --list               list the scenarios and exit`;

export interface Options {
  target: string;
  pid: number;
  vs: string;
  vsPid: number;
  names: [string, string];
  rounds: number;
  duration: number;
  warmup: number;
  only: string[];
  loadgen: "ts" | "c";
  /** Every scenario runs over each of these. */
  transports: Transport[];
  /** Managed Mosquitto's set_tcp_nodelay: off (its default), on, or both (two B variants). */
  mosquittoNodelay: "off" | "on" | "both";
  mqtt: number;
  json: boolean;
  out: string;
  extra: string[];
  /** The bridge scenario: the edges' bridge protocol (4 or 5). */
  bridgeMqtt: number;
  /** The bridge scenario: merged into bunmq's bridges[0]. */
  bridgeConfig: Record<string, unknown>;
  /** The runtime the managed bunmq (side A) runs under. */
  runtime: "bun" | "deno";
}

export function parseOptions(argv: string[]): Options {
  const o: Options = {
    target: "", pid: 0, vs: "", vsPid: 0, names: ["bunmq", ""], rounds: 0, duration: 2, warmup: 0.5,
    only: [], loadgen: "ts", transports: ["tcp"], mosquittoNodelay: "off", mqtt: 4, json: false, out: "", extra: [],
    bridgeMqtt: 5, bridgeConfig: {}, runtime: "bun",
  };
  let namesSet = false;
  let loadgenSet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) die(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const num = (): number => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < 0) die(`${a}: bad number`);
      return v;
    };
    switch (a) {
      case "--target": o.target = val(); break;
      case "--pid": o.pid = num(); break;
      case "--vs": o.vs = val(); break;
      case "--vs-pid": o.vsPid = num(); break;
      case "--names": {
        const [x, y] = val().split(",");
        if (!x || !y) die("--names A,B");
        o.names = [x, y];
        namesSet = true;
        break;
      }
      case "--rounds": o.rounds = Math.max(1, Math.floor(num())); break;
      case "--duration": o.duration = num(); break;
      case "--warmup": o.warmup = num(); break;
      case "--only": o.only = val().split(",").map((s) => s.trim()).filter(Boolean); break;
      case "--loadgen": {
        const v = val();
        if (v !== "ts" && v !== "c") die("--loadgen ts|c");
        o.loadgen = v;
        loadgenSet = true;
        break;
      }
      case "--transport": {
        const t = parseTransports(val());
        if (typeof t === "string") die(t);
        o.transports = t;
        break;
      }
      case "--mosquitto-nodelay": {
        const v = argv[i + 1];
        if (v === "on" || v === "both" || v === "off") {
          o.mosquittoNodelay = v;
          i++;
        } else o.mosquittoNodelay = "on";
        break;
      }
      case "--mqtt": o.mqtt = num(); break;
      case "--runtime": {
        const v = val();
        if (v !== "bun" && v !== "deno") die("--runtime bun|deno");
        o.runtime = v;
        break;
      }
      case "--bridge-mqtt": o.bridgeMqtt = num(); break;
      case "--bridge-config": {
        const v = val();
        try {
          const j = JSON.parse(v) as unknown;
          if (typeof j !== "object" || j === null || Array.isArray(j)) throw new Error("not an object");
          o.bridgeConfig = j as Record<string, unknown>;
        } catch (e) {
          die(`--bridge-config: expected a JSON object (${(e as Error).message})`);
        }
        break;
      }
      case "--json": o.json = true; break;
      case "--out": o.out = val(); break;
      case "--list":
        for (const s of SCENARIOS) console.log(`${s.name.padEnd(17)} ${s.group.padEnd(17)} ${s.what}`);
        console.log(`${BRIDGE_NAME.padEnd(17)} ${BRIDGE_NAME.padEnd(17)} ${BRIDGE_WHAT}`);
        process.exit(0);
      case "-h":
      case "--help": console.log(USAGE); process.exit(0);
      case "--": o.extra = argv.slice(i + 1); i = argv.length; break;
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.mqtt !== 4 && o.mqtt !== 5) die("--mqtt 4|5");
  if (o.bridgeMqtt !== 4 && o.bridgeMqtt !== 5) die("--bridge-mqtt 4|5");
  if (o.only.includes(BRIDGE_NAME)) {
    // its own brokers and report: bunmq edge + upstream, Mosquitto edge + upstream, over TCP
    if (o.only.length > 1) die(`--only ${BRIDGE_NAME} runs on its own (not with ${o.only.filter((x) => x !== BRIDGE_NAME).join(",")})`);
    if (o.target || o.vs) die(`--only ${BRIDGE_NAME} starts its brokers itself (bunmq and ${MOSQUITTO}): no --target or --vs`);
    if ((o.transports.length > 1 || o.transports[0] !== "tcp")) die(`--only ${BRIDGE_NAME} runs over tcp only`);
    if (!loadgenSet) o.loadgen = "c";
    if (!o.rounds) o.rounds = 3;
    if (!namesSet) o.names = ["bunmq", "mosquitto"];
    return o;
  }
  if (o.bridgeMqtt !== 5 || Object.keys(o.bridgeConfig).length) die("--bridge-mqtt and --bridge-config are for --only bridge");
  if (o.target && !/^[^:]+:\d+$/.test(o.target)) die("--target HOST:PORT");
  if (o.runtime === "deno") {
    if (o.target) die("--runtime deno starts bunmq itself: no --target");
    if (!DENO) die("--runtime deno: deno not found ($DENO or PATH; npm install -g deno@2)");
    if (!o.vs) o.vs = "bun";
  }
  if (o.vs && o.vs !== "mosquitto" && o.vs !== "bun" && !/^[^:]+:\d+$/.test(o.vs)) die("--vs HOST:PORT, --vs mosquitto or --vs bun");
  if (o.transports.some((t) => t !== "tcp")) {
    if (loadgenSet && o.loadgen === "ts") die(`--transport ${o.transports.join(",")}: loadgen.ts speaks plain TCP only; use --loadgen c (the default with --transport)`);
    o.loadgen = "c";
  }
  if (o.transports.length > 1 && (o.target || (o.vs && o.vs !== "mosquitto" && o.vs !== "bun"))) die("--transport with more than one transport needs brokers the runner starts (a running broker has one port): no --target, no --vs HOST:PORT");
  if (o.mosquittoNodelay !== "off" && o.vs !== "mosquitto") die("--mosquitto-nodelay needs --vs mosquitto");
  if (!o.rounds) o.rounds = o.vs || o.transports.length > 1 ? 3 : 1;
  if (!namesSet) {
    const a = o.target ? "target" : o.runtime === "deno" ? "deno" : "bunmq";
    o.names = [a, o.vs === "mosquitto" ? "mosquitto" : o.vs === "bun" ? (a === "bunmq" ? "bunmq-bun" : "bun") : "other"];
  }
  return o;
}
