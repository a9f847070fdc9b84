/**
 * @module loadgen/report
 * The result: readable lines (unless -q), then one JSON line with the same
 * keys as mqtt-loadgen's (plus tool, dup_noflag, written_off, partial_writes,
 * session_present, persistent), which run.ts parses. Failed checks set exit
 * status 1 here.
 */
import { O, say, warn } from "./options.ts";
import { U } from "./probes.ts";
import { R } from "./state.ts";
import { clat, expectedDeliveries, lat, S } from "./stats.ts";

function f1(v: number): string {
  return (Math.round(v * 10) / 10).toFixed(1);
}

/** Print the readable result lines and the JSON line, and set the exit code from the checks. */
export function report(): void {
  const js: Record<string, string | number> = { scenario: O.scenario, mqtt: O.ver, tool: "ts" };
  const cwall = U.t0 && U.t1 > U.t0 ? (U.t1 - U.t0) / 1e9 : 0;
  const lgCpu = U.self1 - U.self0;
  const brCpu = O.brokerPid && U.broker0 >= 0 && U.broker1 >= 0 ? U.broker1 - U.broker0 : -1;
  let fail = false;
  if (R.isMsg) {
    const exp = expectedDeliveries();
    const lost = exp > S.uniq ? exp - S.uniq : 0;
    const sendS = R.tLastSend > R.t0 ? (R.tLastSend - R.t0) / 1e9 : 0;
    const win = R.tLastRecv > R.tMeas ? (R.tLastRecv - R.tMeas) / 1e9 : 0;
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
    if (R.aborted) say(`result: ${R.nFailed} of ${R.all.length} connections failed; nothing published`);
    else {
      say(
        `result: sent=${S.sent} acked=${S.acked} recv=${S.recv} unique=${S.uniq} expected=${exp} lost=${lost} ` +
          `dup=${S.dup} (no DUP flag: ${S.dupNoFlag}) ooo=${S.ooo} foreign=${S.foreign + S.unexpectedPub}`,
      );
      say(
        `throughput: ${rate.toFixed(0)} msg/s received over ${win.toFixed(3)} s window (send ${srate.toFixed(0)} msg/s)` +
          (R.drainTimeout ? "  [drain timeout]" : ""),
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
      qos: O.qos, size: O.size, pubs: R.npubs, subs: R.nsubs, target_rate: O.rate, inflight: O.inflight,
      persistent: R.persistent ? 1 : 0, sent: S.sent, acked: S.acked, recv: S.recv, unique: S.uniq,
      expected: exp, lost, dup: S.dup, dup_noflag: S.dupNoFlag, ooo: S.ooo,
      foreign: S.foreign + S.unexpectedPub, written_off: S.writtenOff, rate: Math.round(rate),
      send_rate: Math.round(srate), window_s: +win.toFixed(3),
      p50_us: +f1(lat.pct(0.5) / 1e3), p90_us: +f1(lat.pct(0.9) / 1e3), p99_us: +f1(lat.pct(0.99) / 1e3),
      p999_us: +f1(lat.pct(0.999) / 1e3), max_us: +f1(lat.max / 1e3), mean_us: +f1(lat.mean() / 1e3),
      drain_timeout: R.drainTimeout ? 1 : 0, pub_rejected: S.pubRejected, conn_fail: R.nFailed,
      session_present: S.sessionPresent,
    });
  } else {
    const secs = R.tConnLast > R.tConnFirst ? (R.tConnLast - R.tConnFirst) / 1e9 : 0;
    const crate = secs > 0 ? R.nReady / secs : 0;
    let held = -1;
    if (U.rssSamples.length) {
      U.rssSamples.sort((a, b) => a - b);
      held = U.rssSamples[U.rssSamples.length >> 1]!;
    }
    const per = held > 0 && U.rssBaseKb > 0 && R.nReady ? ((held - U.rssBaseKb) * 1024) / R.nReady : -1;
    if (R.nFailed || S.unexpectedClose) fail = true;
    say(
      `result: ${R.nReady}/${O.conns} connected, ${R.nFailed} failed, ${crate.toFixed(0)} conn/s; connect latency us ` +
        `p50=${f1(clat.pct(0.5) / 1e3)} p99=${f1(clat.pct(0.99) / 1e3)} max=${f1(clat.max / 1e3)}; ` +
        `${S.unexpectedClose} dropped by broker while idle`,
    );
    if (O.brokerPid)
      say(`broker rss: base ${U.rssBaseKb} kB, held ${held} kB -> ${per.toFixed(0)} bytes per idle connection`);
    Object.assign(js, {
      conns: O.conns, connected: R.nReady, conn_fail: R.nFailed, conn_time_s: +secs.toFixed(3),
      conn_rate: Math.round(crate), cp50_us: +f1(clat.pct(0.5) / 1e3), cp99_us: +f1(clat.pct(0.99) / 1e3),
      cmax_us: +f1(clat.max / 1e3), dropped_idle: S.unexpectedClose, rss_base_kb: U.rssBaseKb,
      rss_held_kb: held, rss_per_conn_b: Math.round(per),
    });
  }
  if (R.timedOut) fail = true;
  if (!R.exitCode && fail) R.exitCode = 1;
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
    broker_rss_kb: U.rssEndKb,
    broker_rss_max_kb: U.rssMaxKb,
    loadgen_rss_kb: Math.round(process.memoryUsage().rss / 1024),
    partial_writes: S.partialWrites,
    pings: S.pings,
    proto_err: S.protoErr,
    unexpected_close: S.unexpectedClose,
    timed_out: R.timedOut ? 1 : 0,
    aborted: R.aborted ? 1 : 0,
    ok: R.exitCode === 0 ? 1 : 0,
    elapsed_s: +((Bun.nanoseconds() - R.tBegin) / 1e9).toFixed(3),
  });
  if (R.exitCode === 2) say("FAILED: could not connect");
  else if (R.exitCode) say("FAILED: checks did not pass (see above)");
  process.stdout.write(JSON.stringify(js) + "\n");
}
