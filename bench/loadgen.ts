#!/usr/bin/env bun
/**
 * bench/loadgen.ts: an MQTT 3.1.1 / 5.0 load generator on Bun.
 *
 * A port of the reference C tool (bench/mqtt-loadgen/loadgen.c, `mqtt-loadgen`)
 * with the same scenarios, flags, measurement and JSON output, plus the
 * `persist` scenario (QoS 1 to persistent sessions that stay online). This
 * file is the entry point: it parses the flags, sets up the scenario and
 * starts the loop. The parts live in bench/loadgen/ (see bench/README.md).
 *
 * Output: readable lines, then one JSON line (same keys as mqtt-loadgen).
 * Exit: 0 ok; 1 a check failed (QoS >= 1 loss, dup without DUP flag,
 * out-of-order, protocol error, rejected PUBLISH, unexpected close, timeout);
 * 2 usage error or cannot connect.
 */
import { kick, start } from "./loadgen/loop.ts";
import { O, parseArgs, say, warn } from "./loadgen/options.ts";
import { brokerRss, cpuBegin, U } from "./loadgen/probes.ts";
import { setup } from "./loadgen/scenarios.ts";
import { NS, R } from "./loadgen/state.ts";

function main(): void {
  parseArgs(process.argv.slice(2));
  R.nonce = crypto.getRandomValues(new Uint32Array(1))[0]! >>> 0;
  if (process.env.LOADGEN_NONCE) R.nonce = Number.parseInt(process.env.LOADGEN_NONCE, 16) >>> 0;
  R.prefix = O.prefix || `bench/ts${R.nonce.toString(16).padStart(8, "0")}`;
  if (O.timeout <= 0) {
    // a safety net for a broker that stops answering, well above the expected run time
    let base = 30;
    if (O.scenario !== "conn") {
      if (O.count && !O.durationSet) base += O.rate > 0 ? (O.count / O.rate) * 1.5 + 30 : 300;
      else base += O.duration + O.warmup;
      base += O.drain;
    } else base += O.hold + 60;
    O.timeout = base;
  }
  R.hardDeadline = R.tBegin + O.timeout * NS;
  setup();
  say(
    `loadgen.ts: ${O.scenario} mqtt=${O.ver === 5 ? "5" : "3.1.1"} host=${O.host}:${O.port}` +
      (O.subHost || O.subPort ? ` subscribers=${O.subHost || O.host}:${O.subPort || O.port}` : "") +
      (R.isMsg
        ? ` qos=${O.qos} size=${O.size} pubs=${R.npubs} subs=${R.nsubs} rate=${O.rate > 0 ? "limited" : "max"} ` +
          `inflight=${O.inflight} ${O.count ? "count-mode" : "duration-mode"}`
        : ` conns=${O.conns} parallel=${O.parallel}`),
  );
  if (O.brokerPid) {
    U.rssBaseKb = brokerRss();
    if (U.rssBaseKb < 0) warn(`cannot read /proc/${O.brokerPid} (broker pid)`);
  }
  // conn measures from the first handshake; message runs from the start of publishing
  if (!R.isMsg) cpuBegin();
  process.on("SIGINT", () => {
    R.stopSig = true;
    kick();
  });
  process.on("SIGTERM", () => {
    R.stopSig = true;
    kick();
  });
  start();
}

main();
