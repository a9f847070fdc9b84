/**
 * @module loadgen/stats
 * Delivery accounting: the run's counters (`S`), the latency histograms, and
 * the receive bitmap each subscriber keeps per publisher, which sorts every
 * arrival into unique, duplicate (with or without the DUP flag) or out of
 * order. Loss is not counted here: it is expected - unique, at report time.
 */
import { Hist } from "./histogram.ts";
import { R } from "./state.ts";

export const S = {
  sent: 0, acked: 0, recv: 0, uniq: 0, dup: 0, dupNoFlag: 0, ooo: 0, measured: 0, foreign: 0,
  unexpectedPub: 0, writtenOff: 0, protoErr: 0, pubRejected: 0, unexpectedClose: 0,
  subDowngrade: 0, pings: 0, sessionPresent: 0, partialWrites: 0,
};

/** End-to-end latency of messages sent after the warmup. */
export const lat = new Hist();
/** TCP connect to CONNACK (or SUBACK for subscribers). */
export const clat = new Hist();

/** What one subscriber has received from one publisher: bit `seq` is set once seq arrived. */
export class Tracker {
  bits = new Uint32Array(1024);
  /** Highest sequence seen + 1: a lower unseen one arriving later is out of order. */
  maxp1 = 0;
  uniq = 0;
  dup = 0;
  ooo = 0;
}

/** Record the arrival of `seq` in t. Returns false for a duplicate. */
export function track(t: Tracker, seq: number, dupFlag: boolean): boolean {
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
    return false;
  }
  t.bits[w] = word | bit;
  t.uniq++;
  S.uniq++;
  if (seq + 1 > t.maxp1) t.maxp1 = seq + 1;
  else {
    t.ooo++;
    S.ooo++;
  }
  return true;
}

/** Deliveries the subscribers should have by now: every message sent, times its subscribers. */
export function expectedDeliveries(): number {
  let e = 0;
  for (const p of R.pubs) e += p.sent;
  return e * R.spp;
}
