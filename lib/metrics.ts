/**
 * @module metrics
 * Counters the broker keeps for $SYS, /metrics and the dashboard, beyond
 * those that already live with their owners (drops.ts, admission.ts):
 * messages and payload bytes in and out by QoS, network bytes, takeovers,
 * authentication failures, the peak of connected clients, store commit
 * latency and event-loop lag. Hot-path updates are one typed-array
 * increment; everything derived (sums over sessions, quantiles) is computed
 * when read.
 */

/** Upper bounds (µs) of the commit-latency histogram buckets; +Inf is implicit. */
export const COMMIT_BUCKETS_US = [50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000] as const;

/** A latency histogram with Prometheus buckets and an exact p99 over the last samples. */
export class LatencyHistogram {
  /** Per-bucket counts (not cumulative); the last is +Inf. */
  readonly counts: Float64Array;
  count = 0;
  /** Sum of samples (µs). */
  sum = 0;
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(
    readonly bounds: readonly number[] = COMMIT_BUCKETS_US,
    window = 1024,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
    this.ring = new Float64Array(window);
  }

  observe(us: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && us > b[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += us;
    this.ring[this.next] = us;
    this.next = (this.next + 1) % this.ring.length;
    if (this.filled < this.ring.length) this.filled++;
  }

  /** The q-quantile (0..1) of the last `window` samples, or 0 without samples. */
  quantile(q: number): number {
    if (this.filled === 0) return 0;
    const s = Array.from(this.ring.subarray(0, this.filled)).sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  }
}

export class Metrics {
  readonly startedAt = Date.now();
  /** PUBLISH messages received (clients, wills, bridges; not $SYS), by QoS. */
  readonly msgsIn = new Float64Array(3);
  /** Payload bytes of those messages, by QoS. */
  readonly bytesIn = new Float64Array(3);
  /** PUBLISH messages sent to subscribers (first sends, not retries), by the QoS they were sent with. */
  readonly msgsOut = new Float64Array(3);
  readonly bytesOut = new Float64Array(3);
  /** Bytes read from and written to client sockets (every transport). */
  netIn = 0;
  netOut = 0;
  /** Live connections closed by a CONNECT with the same Client ID. */
  takeovers = 0;
  /** CONNECTs refused for a bad user name or password, or not authorized. */
  authFailures = 0;
  /** CONNECTs accepted since start. */
  connects = 0;
  /** Most clients connected at once since start. */
  maxClients = 0;
  /** Store commit latency (µs). */
  readonly commit = new LatencyHistogram();
  /** Event-loop lag: the last measured delay of a timer, and the largest since the last read (ms). */
  loopLagMs = 0;
  loopLagMaxMs = 0;
  private lagTimer: ReturnType<typeof setInterval> | null = null;

  /** Start measuring event-loop lag (a 500 ms timer; unref'd so it never keeps a process alive). */
  startLagProbe(periodMs = 500): void {
    if (this.lagTimer !== null) return;
    let expected = performance.now() + periodMs;
    this.lagTimer = setInterval(() => {
      const now = performance.now();
      const lag = Math.max(0, now - expected);
      expected = now + periodMs;
      this.loopLagMs = lag;
      if (lag > this.loopLagMaxMs) this.loopLagMaxMs = lag;
    }, periodMs);
    (this.lagTimer as { unref?: () => void }).unref?.();
  }

  stopLagProbe(): void {
    if (this.lagTimer !== null) clearInterval(this.lagTimer);
    this.lagTimer = null;
  }

  get totalMsgsIn(): number {
    return this.msgsIn[0]! + this.msgsIn[1]! + this.msgsIn[2]!;
  }

  get totalMsgsOut(): number {
    return this.msgsOut[0]! + this.msgsOut[1]! + this.msgsOut[2]!;
  }

  get totalBytesIn(): number {
    return this.bytesIn[0]! + this.bytesIn[1]! + this.bytesIn[2]!;
  }

  get totalBytesOut(): number {
    return this.bytesOut[0]! + this.bytesOut[1]! + this.bytesOut[2]!;
  }
}
