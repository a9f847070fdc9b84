/**
 * @module rate-limit
 * Token buckets for limits.publishRate / publishBytesRate (per client) and
 * limits.connectRate (per source address). A bucket holds one second of its
 * rate. Taking more than it holds leaves a debt instead of refusing: the
 * message that overdrew it is processed (it has been read, and dropping it
 * would lose a message the client was told nothing about), and the caller
 * stops reading the client until the debt is paid. Over time the client
 * gets exactly its rate, and every message it sent arrives.
 */

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    /** Tokens per second (> 0). */
    readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.last = now;
  }

  /** Take `n` tokens at `now` (ms): 0 when within the rate, else the ms until the debt is paid. */
  take(n: number, now: number): number {
    this.refill(now);
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** True when at least one token is left (taking none). */
  has(now: number): boolean {
    this.refill(now);
    return this.tokens >= 1;
  }

  /** Full again (idle for a second): the entry may be forgotten. */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.rate;
  }

  private refill(now: number): void {
    const dt = now - this.last;
    if (dt <= 0) return;
    this.last = now;
    this.tokens = Math.min(this.rate, this.tokens + (dt * this.rate) / 1000);
  }
}

/**
 * A client's publish budget: messages and bytes per second (either may be
 * off). `took` returns how long to stop reading the client, 0 for not at all.
 */
export class PublishLimiter {
  private readonly messages: TokenBucket | null;
  private readonly bytes: TokenBucket | null;
  /** Times this client was throttled (stopped being read). */
  throttled = 0;

  constructor(msgRate: number, byteRate: number, now: number) {
    this.messages = msgRate > 0 ? new TokenBucket(msgRate, now) : null;
    this.bytes = byteRate > 0 ? new TokenBucket(byteRate, now) : null;
  }

  /** One PUBLISH of `size` bytes (the whole packet) was read. */
  took(size: number, now: number): number {
    const a = this.messages?.take(1, now) ?? 0;
    const b = this.bytes?.take(size, now) ?? 0;
    const wait = a > b ? a : b;
    if (wait > 0) this.throttled++;
    return wait;
  }

  /** null when both limits are off (the hot path then checks one field). */
  static create(msgRate: number, byteRate: number, now: number): PublishLimiter | null {
    return msgRate > 0 || byteRate > 0 ? new PublishLimiter(msgRate, byteRate, now) : null;
  }
}
