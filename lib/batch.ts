/**
 * @module batch
 * The end of a batch. Handlers only write into connections' output buffers
 * and record journal ops; once per event-loop turn (setImmediate), after
 * every socket that was ready in this turn has been read, `flushNow`:
 * 1. sends what paced retained deliveries may send (retained-sender.ts);
 * 2. reaches a commit point ("ack" durability): the journal applies and
 *    commits its ops — all of them when few are waiting, else all but the
 *    last two turns', which stay cancellable that much longer (journal.ts);
 *    when no acknowledgement waits for the commit (a memory store, or
 *    "interval" durability), all but the newest MAX_KEPT_OPS ops instead;
 * 3. writes every connection with output once, sealed up to its first
 *    acknowledgement whose epoch is not committed yet, and releases output
 *    held by earlier turns that this commit covered.
 * Coalescing across callbacks lets fan-in traffic from many publishers reach
 * a subscriber in one write (measured: fanin QoS 0 2.9M msg/s vs 0.83M when
 * flushing per callback).
 */
import type { Broker } from "./broker.ts";
import type { ConnectionOutput } from "./conn-output.ts";
import { log } from "./log.ts";

/** While at least this many journal ops wait to be applied, commits are deferred (the broker is busy). */
const DEFER_MIN_OPS = 8;
/** By this many batches (measured: 1 cancels ~10% of ops under load, 2 about 98%, more no better). */
const DEFER_BATCHES = 2;
/**
 * When acknowledgements are not held, the journal keeps this many ops cancellable instead
 * (cancelled ops pin nothing; about 40 B each). Measured on the bridge fan-in: a bridge
 * session's deliveries wait in its queue for many turns before the upstream's PUBACK, so a
 * window of two batches cancelled 7% of its ops.
 */
const MAX_KEPT_OPS = 1 << 16;

/**
 * The store could not commit: stop, rather than go on acknowledging what
 * cannot be made durable (SqliteStore does the same for any failed write);
 * what was committed is restored at the next start.
 */
function storageFailed(err: unknown): never {
  log.error("committing the store failed; stopping so that nothing is acknowledged without being stored", { err, stack: (err as Error)?.stack });
  process.exit(1);
}

export class BatchEnd {
  /** Connections with output to flush at the end of this batch. */
  readonly dirty: ConnectionOutput[] = [];
  /** Connections with output held for a commit (released at later commit points). */
  readonly holding = new Set<ConnectionOutput>();
  /** The journal epoch this batch's held acknowledgements depend on (set at each commit point). */
  ackEpoch = 0;
  /** Acknowledgements wait for the commit of what they acknowledge ("ack" durability). */
  readonly holdAcks: boolean;
  private scheduled = false;

  constructor(
    private readonly broker: Broker,
    /** A commit point at the end of every batch ("ack" durability; "interval" commits on a timer). */
    private readonly commitPerBatch: boolean,
    /** The store outlives the process: acknowledgements wait for its commit. */
    durable: boolean,
  ) {
    this.holdAcks = commitPerBatch && durable;
  }

  /** End a batch: the flush runs once, on this turn's setImmediate. */
  end(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flushNow);
  }

  private readonly flushNow = (): void => {
    this.scheduled = false;
    const b = this.broker;
    let again = false;
    try {
      again = b.retainedSender.pump();
    } catch (err) {
      log.error("sending retained messages failed", { err, stack: (err as Error)?.stack });
    }
    const j = b.journal;
    if (!this.holdAcks) {
      // Nothing waits for a commit (a store that dies with the process, or "interval", where a
      // timer commits): only ops beyond the newest MAX_KEPT_OPS are applied, so a delivery
      // acknowledged within that many ops, however many turns later, is never written.
      if (this.commitPerBatch) this.commit(() => j.commitKeeping(Infinity, MAX_KEPT_OPS));
      else j.applyKeeping(Infinity, MAX_KEPT_OPS);
    } else {
      // This batch's acknowledgements depend on its own ops, or on the last ones recorded.
      this.ackEpoch = j.openHasOps ? j.openEpoch : j.openEpoch - 1;
      // While busy, the last DEFER_BATCHES batches' ops stay cancellable (a delivery acknowledged
      // meanwhile is never written); a quiet batch commits everything, so at low load no
      // acknowledgement waits.
      if (j.unappliedOps >= DEFER_MIN_OPS) this.commit(() => j.commitKeeping(DEFER_BATCHES));
      else this.commit(() => j.commit());
    }
    const now = b.now();
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) flushOne(d[i]!, now, false);
    d.length = 0;
    if (this.holding.size > 0) for (const c of this.holding) flushOne(c, now, true);
    // More to do on a later turn: paced retained messages, or held acknowledgements' ops left for the next commit point.
    if (again || (this.holdAcks && j.pending)) this.end();
  };

  private commit(run: () => void): void {
    try {
      run();
    } catch (err) {
      storageFailed(err);
    }
  }
}

/** One connection's write; its transport failing must not keep the others' output back. */
function flushOne(c: ConnectionOutput, now: number, heldOnly: boolean): void {
  try {
    if (heldOnly) c.release(now);
    else c.flush(now);
  } catch (err) {
    log.error("writing to a connection failed", { client: c.clientId || undefined, err, stack: (err as Error)?.stack });
    c.abort("write failed");
  }
}
