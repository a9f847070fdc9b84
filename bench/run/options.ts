/**
 * @module run/options
 * The runner's command line: usage text and flags parsed into `Options`.
 * Anything after `--` is passed to every loadgen run unchanged.
 */
import { die, MOSQUITTO } from "./env.ts";
import { SCENARIOS } from "./matrix.ts";

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
  --vs-pid PID         PID of the --vs broker (CPU%, RSS)
  --names A,B          labels (default bunmq,mosquitto|other)
  --rounds N           rounds (default 1, or 3 with --vs)
  --duration S         measured seconds per message scenario (default 2)
  --warmup S           unmeasured seconds before that (default 0.5)
  --only a,b           scenarios or groups: fanin,fanin_q1,fanout,pairs,latency,conn,persist,...
                       (overload_q1 runs only when named here)
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
  mqtt: number;
  json: boolean;
  out: string;
  extra: string[];
}

export function parseOptions(argv: string[]): Options {
  const o: Options = {
    target: "", pid: 0, vs: "", vsPid: 0, names: ["bunmq", ""], rounds: 0, duration: 2, warmup: 0.5,
    only: [], loadgen: "ts", mqtt: 4, json: false, out: "", extra: [],
  };
  let namesSet = false;
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
        break;
      }
      case "--mqtt": o.mqtt = num(); break;
      case "--json": o.json = true; break;
      case "--out": o.out = val(); break;
      case "--list":
        for (const s of SCENARIOS) console.log(`${s.name.padEnd(17)} ${s.group.padEnd(17)} ${s.what}`);
        process.exit(0);
      case "-h":
      case "--help": console.log(USAGE); process.exit(0);
      case "--": o.extra = argv.slice(i + 1); i = argv.length; break;
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.mqtt !== 4 && o.mqtt !== 5) die("--mqtt 4|5");
  if (o.target && !/^[^:]+:\d+$/.test(o.target)) die("--target HOST:PORT");
  if (o.vs && o.vs !== "mosquitto" && !/^[^:]+:\d+$/.test(o.vs)) die("--vs HOST:PORT or --vs mosquitto");
  if (!o.rounds) o.rounds = o.vs ? 3 : 1;
  if (!namesSet) o.names = [o.target ? "target" : "bunmq", o.vs === "mosquitto" ? "mosquitto" : "other"];
  return o;
}
