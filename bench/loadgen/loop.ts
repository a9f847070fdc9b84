/**
 * @module loadgen/loop
 * What drives a run: one "turn" after each batch of socket events (like the C
 * tool's step after each epoll batch), a tick (1 ms with --rate or an e2e
 * window, else 10 ms) for rate limits and stalled QoS 0 windows, housekeeping
 * every 250 ms (keepalive, broker RSS, --progress), the phase machine
 * (connect, then publish and drain, or hold for conn), the hard timeout, and
 * finish().
 */
import { closeSock, CS_READY, flush, wbReserve } from "./client.ts";
import { connLost, shutdownAll, startConnects } from "./connections.ts";
import { O, say, warn } from "./options.ts";
import { brokerRss, cpuBegin, cpuEnd, U } from "./probes.ts";
import { pubFinish, readyPending, readyPush, runReady, totalInflight } from "./publisher.ts";
import { report } from "./report.ts";
import { endMessagePhase } from "./scenarios.ts";
import { MS, NS, PH_CLEANUP, PH_CONNECT, PH_DONE, PH_DRAIN, PH_HOLD, PH_PUBLISH, R } from "./state.ts";
import { expectedDeliveries, S } from "./stats.ts";

let turnScheduled = false;
let finished = false;
let nextHk = 0;
let tickTimer: ReturnType<typeof setInterval> | null = null;
let hkTimer: ReturnType<typeof setInterval> | null = null;

/** Schedule one loop turn; many events in one batch share it. */
export function kick(): void {
  if (!turnScheduled) {
    turnScheduled = true;
    setImmediate(turn);
  }
}

function turn(): void {
  turnScheduled = false;
  if (R.phase === PH_DONE) return;
  R.now = Bun.nanoseconds();
  runReady();
  stepPhase();
  checkStop();
  if (readyPending()) kick();
}

/** Start the timers and the first handshakes. */
export function start(): void {
  const tickMs = O.rate > 0 || O.e2eWindow ? 1 : 10;
  tickTimer = setInterval(tick, tickMs);
  hkTimer = setInterval(housekeeping, 250);
  R.now = Bun.nanoseconds();
  startConnects();
}

function tick(): void {
  const now = (R.now = Bun.nanoseconds());
  if (R.phase === PH_PUBLISH) {
    if (R.tPubDeadline && now >= R.tPubDeadline) {
      for (const p of R.pubs) pubFinish(p);
    } else {
      for (const c of R.pubs) {
        if (O.rate > 0) readyPush(c);
        if (
          O.qos === 0 &&
          c.e2eBlocked &&
          now - (c.lastDeliv > c.blockedAt ? c.lastDeliv : c.blockedAt) > 500 * MS
        ) {
          // QoS 0 e2e window stalled: assume the outstanding messages were dropped
          const outst = c.sent * R.spp - c.delivered - c.writtenOff;
          c.writtenOff += outst;
          S.writtenOff += outst;
          c.e2eBlocked = false;
          readyPush(c);
        }
      }
    }
  }
  if (R.phase === PH_HOLD && O.brokerPid) {
    const r = brokerRss();
    if (r > 0) U.rssSamples.push(r);
  }
  runReady();
  stepPhase();
  checkStop();
}

function housekeeping(): void {
  const now = (R.now = Bun.nanoseconds());
  if (now < nextHk) return;
  nextHk = now + NS;
  // keepalive: PINGREQ on connections idle for more than keepalive/2
  for (const c of R.all) {
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
  if (r > U.rssMaxKb) U.rssMaxKb = r;
  if (O.progress && (R.phase === PH_PUBLISH || R.phase === PH_DRAIN))
    process.stderr.write(
      `[${((now - R.t0) / 1e9).toFixed(1).padStart(5)}s] sent=${S.sent} acked=${S.acked} recv=${S.recv} inflight=${totalInflight()}\n`,
    );
}

function checkStop(): void {
  if (R.phase === PH_DONE) return;
  if (R.stopSig || R.now >= R.hardDeadline) {
    if (!R.stopSig) warn(`hard timeout (${O.timeout} s) reached`);
    else warn("interrupted");
    R.timedOut = true;
    if (!U.t1) cpuEnd();
    if (!R.tEnd) R.tEnd = R.now;
    finish();
  }
}

function startPublish(): void {
  const now = (R.now = Bun.nanoseconds());
  R.t0 = now;
  R.tMeas = R.t0 + O.warmup * NS;
  if (!O.count || O.durationSet) R.tPubDeadline = R.t0 + (O.warmup + O.duration) * NS;
  // rate-limited publishers start evenly spread over one period
  const period = O.rate > 0 ? 1e9 / O.rate : 0;
  R.phase = PH_PUBLISH;
  for (let i = 0; i < R.npubs; i++) {
    R.pubs[i]!.rateT0 = R.t0 + (period * i) / R.npubs;
    readyPush(R.pubs[i]!);
  }
  cpuBegin();
  say(
    `publishing: ${R.npubs} publisher(s) -> ${R.nsubs} subscriber(s), qos ${O.qos}, ${O.size} B payload, ` +
      `${O.rate > 0 ? "rate-limited" : "max rate"}${R.persistent ? ", persistent subscriber sessions" : ""}`,
  );
}

function stepPhase(): void {
  const now = R.now;
  switch (R.phase) {
    case PH_CONNECT:
      startConnects();
      if (R.isMsg) {
        if (R.nFailed) {
          R.aborted = true;
          R.exitCode = 2;
          finish();
        } else if (R.nReady === R.all.length) {
          say(`connected ${R.all.length} clients in ${((R.tConnLast - R.tConnFirst) / 1e6).toFixed(1)} ms`);
          startPublish();
        }
      } else if (R.nReady + R.nFailed === R.all.length) {
        cpuEnd();
        const secs = (R.tConnLast - R.tConnFirst) / 1e9;
        say(
          `connected ${R.nReady}/${R.all.length} clients in ${secs.toFixed(3)} s ` +
            `(${secs > 0 ? (R.nReady / secs).toFixed(0) : 0} conn/s), ${R.nFailed} failed`,
        );
        say(`holding ${R.nReady} idle connections for ${O.hold.toFixed(1)} s`);
        R.tHoldEnd = now + O.hold * NS;
        R.phase = PH_HOLD;
      }
      break;
    case PH_PUBLISH:
      if (R.npubDone === R.npubs) {
        R.phase = PH_DRAIN;
        R.tDrainStart = now;
      }
      break;
    case PH_DRAIN: {
      const inf = totalInflight();
      const exp = expectedDeliveries();
      const last = R.tLastRecv > R.tDrainStart ? R.tLastRecv : R.tDrainStart;
      const idle = O.drainIdle > 0 ? O.drainIdle * NS : O.qos === 0 ? 500 * MS : 5000 * MS;
      let done = false;
      if (inf === 0 && S.uniq >= exp) done = true;
      else if ((O.qos === 0 || inf === 0 || S.unexpectedClose) && now - last > idle) done = true;
      else if (now - R.tDrainStart > O.drain * NS) {
        done = true;
        R.drainTimeout = true;
      }
      if (done) {
        cpuEnd();
        R.tEnd = now;
        endMessagePhase();
      }
      break;
    }
    case PH_HOLD:
      if (now >= R.tHoldEnd) finish();
      break;
    case PH_CLEANUP:
      if (R.cleanDone + R.nFailed >= R.cleanConns.length || now >= R.tCleanupEnd) finish();
      break;
  }
}

/** End the run (once): close everything, print the report, exit with R.exitCode. */
export function finish(): void {
  if (finished) return;
  finished = true;
  const wasPersistCleanup = R.phase === PH_CLEANUP;
  R.phase = PH_DONE;
  if (tickTimer) clearInterval(tickTimer);
  if (hkTimer) clearInterval(hkTimer);
  if (O.brokerPid) {
    const r = brokerRss();
    U.rssEndKb = r;
    if (r > U.rssMaxKb) U.rssMaxKb = r;
  }
  if (!U.t1) cpuEnd();
  if (!wasPersistCleanup) shutdownAll(null);
  for (const c of R.cleanConns) closeSock(c);
  report();
  // give the DISCONNECTs a moment to leave before the process exits
  setTimeout(() => process.exit(R.exitCode), 20);
}
