/**
 * @module loadgen/histogram
 * The latency histogram, with the same buckets as loadgen.c so the two tools'
 * percentiles compare. Log-linear buckets keep every percentile within 0.4 %
 * with a fixed table and O(1) insertion on the receive path.
 */
import { TWO32 } from "./packets.ts";

/** Log-linear buckets (as loadgen.c): values < 2^HSUB exact, then 2^(HSUB-1) per power of two. */
const HSUB = 8;
const HBUCKETS = ((64 - HSUB) << (HSUB - 1)) + (1 << HSUB);
export class Hist {
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
