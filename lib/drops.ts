/**
 * @module drops
 * Every message the broker does not deliver to a subscriber, counted by
 * cause. Counters are plain integer fields (the hot path only increments);
 * stats, `$SYS` and metrics read them. Each cause is logged at most once per
 * LOG_INTERVAL_MS, with its running total, so a flood of drops is visible
 * without flooding the log.
 */
import { log } from "./log.ts";

export const enum Drop {
  /** A session's queue was full: the session is offline, or stuck beyond limits.maxPublisherStallMs, or at twice its bound. */
  QueueFull = 0,
  /** A QoS 0 message to a client whose output is not draining, beyond limits.maxPendingOutput. */
  Qos0Pending = 1,
  /** Larger than the client's Maximum Packet Size ([MQTT-3.1.2-25]). */
  TooLarge = 2,
  /** Its Message Expiry Interval passed while it waited ([MQTT-3.3.2-5]). */
  Expired = 3,
  /** A new retained topic beyond limits.maxRetainedMessages (the message itself is still routed). */
  RetainedLimit = 4,
  /** A PUBLISH (or will) to a topic the ACL does not let its client publish to: acknowledged (3.1.1) or refused (v5 0x87), not routed. */
  Acl = 5,
}

const LOG_INTERVAL_MS = 5000;

const WHY: Record<Drop, string> = {
  [Drop.QueueFull]: "session queue full; message dropped",
  [Drop.Qos0Pending]: "client is not reading; QoS 0 message dropped",
  [Drop.TooLarge]: "message larger than the client's Maximum Packet Size; dropped",
  [Drop.Expired]: "message expired before delivery; dropped",
  [Drop.RetainedLimit]: "retained message limit reached; not retained",
  [Drop.Acl]: "not authorized by the ACL; dropped",
};

export class DropCounters {
  /** Per cause, indexed by `Drop`. */
  private readonly n = [0, 0, 0, 0, 0, 0];
  private readonly lastLog = [0, 0, 0, 0, 0, 0];

  constructor(private readonly now: () => number) {}

  get queueFull(): number {
    return this.n[Drop.QueueFull]!;
  }
  get qos0Pending(): number {
    return this.n[Drop.Qos0Pending]!;
  }
  get tooLarge(): number {
    return this.n[Drop.TooLarge]!;
  }
  get expired(): number {
    return this.n[Drop.Expired]!;
  }
  get retainedLimit(): number {
    return this.n[Drop.RetainedLimit]!;
  }
  get acl(): number {
    return this.n[Drop.Acl]!;
  }
  get total(): number {
    return this.n.reduce((a, b) => a + b, 0);
  }

  count(cause: Drop, client: string): void {
    const n = ++this.n[cause]!;
    if (cause === Drop.Acl) return; // a denial is the rules working: the caller logs it at debug
    const now = this.now();
    if (now - this.lastLog[cause]! > LOG_INTERVAL_MS) {
      this.lastLog[cause] = now;
      log.warn(WHY[cause], { client, total: n });
    }
  }
}
