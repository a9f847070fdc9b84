/**
 * @module admission
 * Who gets a socket at accept, before a byte of it is read:
 * - the broker's and the listener's connection bounds (limits.maxConnections,
 *   listeners[].maxConnections);
 * - the bound on sockets that have not finished CONNECT and authentication
 *   (limits.maxUnauthenticated, listeners[].maxUnauthenticated): smaller, so
 *   a flood of idle sockets cannot take the places of real clients;
 * - the new-connection rate per source address (limits.connectRate).
 * A refused socket is closed by the transport at once (a reset, or HTTP 503
 * before a WebSocket upgrade), counted by cause, and logged at most every
 * 5 s per cause. A connection counts as unauthenticated from accept until
 * its CONNECT is accepted or it closes, exactly once.
 */
import type { Config } from "./config.ts";
import type { ListenerInfo } from "./listener-info.ts";
import { log } from "./log.ts";
import { TokenBucket } from "./rate-limit.ts";

export const enum Refusal {
  Full = 0,
  Unauthenticated = 1,
  ConnectRate = 2,
}

const CAUSES = ["connection limit reached", "too many unauthenticated sockets", "connect rate exceeded"] as const;

/** Source addresses tracked for connectRate; beyond it (after forgetting idle ones) tracking starts over. */
const MAX_TRACKED_ADDRESSES = 100_000;

/** One admitted socket's standing, kept by its connection. */
export interface Admitted {
  readonly listener: ListenerInfo;
  /** Not yet authenticated: counted in `unauthenticated`. */
  unauthenticated: boolean;
}

export class Admission {
  /** Refusals by cause (Refusal). */
  readonly refusedBy = [0, 0, 0];
  /** Sockets admitted whose CONNECT is not accepted yet. */
  unauthenticated = 0;
  private readonly connectRate: number;
  private readonly maxUnauthenticated: number;
  private readonly rates = new Map<string, TokenBucket>();
  private sweepAt = 1024;
  private readonly lastLog = [0, 0, 0];

  constructor(
    limits: Config["limits"],
    /** Concurrent connections allowed (limits.maxConnections or derived from the open-file limit). */
    readonly maxConnections: number,
    private readonly now: () => number,
  ) {
    this.connectRate = limits.connectRate;
    this.maxUnauthenticated = limits.maxUnauthenticated;
  }

  get refused(): number {
    return this.refusedBy[0]! + this.refusedBy[1]! + this.refusedBy[2]!;
  }

  /** May a socket from `address` be accepted on `listener`, with `open` connections in the broker? */
  admit(listener: ListenerInfo, address: string, open: number): boolean {
    if (open >= this.maxConnections || listener.connections >= listener.maxConnections) return this.refuse(Refusal.Full, listener);
    if (this.unauthenticated >= this.maxUnauthenticated || listener.unauthenticated >= listener.maxUnauthenticated) {
      return this.refuse(Refusal.Unauthenticated, listener);
    }
    if (this.connectRate > 0 && !this.takeConnect(address)) return this.refuse(Refusal.ConnectRate, listener);
    return true;
  }

  /** A connection was made for an admitted socket: unauthenticated until `authenticated`. */
  opened(c: Admitted): void {
    c.unauthenticated = true;
    this.unauthenticated++;
    c.listener.unauthenticated++;
  }

  /** Its CONNECT was accepted (or it closed first): no longer counted as unauthenticated. */
  authenticated(c: Admitted): void {
    if (!c.unauthenticated) return;
    c.unauthenticated = false;
    this.unauthenticated--;
    c.listener.unauthenticated--;
  }

  private takeConnect(address: string): boolean {
    const now = this.now();
    let b = this.rates.get(address);
    if (b === undefined) {
      if (this.rates.size >= this.sweepAt) this.sweep(now);
      b = new TokenBucket(this.connectRate, now);
      this.rates.set(address, b);
    }
    if (!b.has(now)) return false;
    b.take(1, now);
    return true;
  }

  /** Forget addresses idle for a second (their bucket is full again): the map holds about one second of sources. */
  private sweep(now: number): void {
    for (const [a, b] of this.rates) if (b.full(now)) this.rates.delete(a);
    if (this.rates.size >= MAX_TRACKED_ADDRESSES) this.rates.clear(); // memory first: rates restart
    this.sweepAt = Math.max(1024, this.rates.size * 2);
  }

  private refuse(cause: Refusal, listener: ListenerInfo): false {
    this.refusedBy[cause]!++;
    listener.refused++;
    const now = this.now();
    if (now - this.lastLog[cause]! > 5000) {
      this.lastLog[cause] = now;
      const limit =
        cause === Refusal.Full
          ? Math.min(this.maxConnections, listener.maxConnections)
          : cause === Refusal.Unauthenticated
            ? Math.min(this.maxUnauthenticated, listener.maxUnauthenticated)
            : this.connectRate;
      log.warn(`${CAUSES[cause]}; refusing connections`, { listener: listener.url, limit, refusedTotal: this.refusedBy[cause] });
    }
    return false;
  }
}
