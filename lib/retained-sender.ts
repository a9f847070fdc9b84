/**
 * @module retained-sender
 * Retained messages for a new subscription ([MQTT-3.3.1-6] 3.1.1,
 * [MQTT-3.3.1-9] 5), sent across event-loop turns instead of all at once.
 * A `#` subscription over a million retained topics would otherwise encode a
 * million PUBLISHes in one turn (stalling every other client), and at QoS 1
 * overflow the session queue (dropping what it could not hold).
 *
 * Each subscription gets a job: a lazy walk of the retained trie
 * (RetainedStore.matching). At the end of every batch, before the commit,
 * the jobs send what their session can take — QoS 1/2 only while the
 * in-flight window has room and nothing is queued ahead, QoS 0 only while
 * the client's output drains — within a shared budget per turn. A job blocked
 * by its window resumes when acknowledgements free it; one that ran out of
 * budget asks for another turn.
 *
 * Order against live messages: a job sends a topic's retained message only
 * if it is older than the subscription (newer ones were routed live). When a
 * live message reaches the session on a topic whose older retained message
 * the job has not sent yet, that retained message is sent first
 * (`beforeLive`), so the subscriber never sees an older value after a newer
 * one. Jobs end with the connection; they are not persisted.
 */
import type { Broker } from "./broker.ts";
import { State } from "./conn-state.ts";
import type { Message } from "./message.ts";
import type { Session } from "./session.ts";
import { type Subscription, topicMatches } from "./topic-tree.ts";

/** Walk steps plus messages sent, per event-loop turn, over all jobs. */
const BUDGET_PER_TURN = 4096;

export class RetainedJob {
  /** Taken from the walk but not sent yet (the session had no room). */
  pending: Message | null = null;

  constructor(
    readonly id: number,
    readonly sub: Subscription<Session>,
    /** Messages with a serial from here on were published after the subscription: they went live. */
    readonly startSerial: number,
    readonly walk: Generator<Message | null, void, void>,
  ) {}
}

export class RetainedSender {
  /** Sessions with jobs (checked each turn; a blocked one costs one look). */
  private readonly active = new Set<Session>();
  private nextId = 1;

  constructor(private readonly broker: Broker) {}

  /** Some session has jobs that may progress. */
  get busy(): boolean {
    return this.active.size > 0;
  }

  /** Jobs in progress, for stats and tests. */
  get jobs(): number {
    let n = 0;
    for (const s of this.active) n += s.retainedJobs?.length ?? 0;
    return n;
  }

  /** Start sending the retained messages matching `sub` (call after its SUBACK was written). */
  start(s: Session, sub: Subscription<Session>): void {
    this.cancel(s, sub); // a repeated SUBSCRIBE starts over
    const job = new RetainedJob(this.nextId++, sub, this.broker.serial + 1, this.broker.retainedMatching(sub.matchFilter));
    (s.retainedJobs ??= []).push(job);
    this.active.add(s);
    this.broker.endBatch();
  }

  /** Stop the jobs of `s` (all, or the one for `sub`). */
  cancel(s: Session, sub?: Subscription<Session>): void {
    const jobs = s.retainedJobs;
    if (jobs === null) return;
    const left = sub === undefined ? [] : jobs.filter((j) => j.sub !== sub);
    if (left.length === 0) {
      s.retainedJobs = null;
      this.active.delete(s);
    } else {
      s.retainedJobs = left;
    }
  }

  /** The session may have room again (acknowledgements freed its window). */
  wake(s: Session): void {
    if (s.retainedJobs !== null) this.active.add(s);
  }

  /**
   * Send what the sessions can take, within this turn's budget. Returns true
   * when a job stopped only for the budget, so another turn is needed.
   */
  pump(): boolean {
    let budget = BUDGET_PER_TURN;
    this.again = false;
    for (const s of this.active) {
      budget = this.pumpSession(s, budget);
      if (budget <= 0) return true;
    }
    return this.again;
  }

  /** Set by a pass that stopped at its output bound with the output still draining: look again next turn. */
  private again = false;

  /** Before a live message reaches `s`: send first any older retained message of its topic a job still owes. */
  beforeLive(s: Session, live: Message): void {
    const jobs = s.retainedJobs!;
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!;
      if (!topicMatches(job.sub.matchFilter, live.topic)) continue;
      const m = this.broker.retainedMessage(live.topic);
      if (m === null || m === live || m.serial >= job.startSerial || m.sentByJob === job.id) continue;
      if (job.pending === m) job.pending = null;
      this.send(s, job, m);
    }
  }

  private pumpSession(s: Session, budget: number): number {
    const conn = s.conn;
    const jobs = s.retainedJobs;
    if (jobs === null || conn === null || conn.state !== State.Active) {
      s.retainedJobs = null;
      this.active.delete(s);
      return budget;
    }
    const outbox = this.broker.outbox;
    const maxOut = this.broker.limits.maxPendingOutput / 2;
    const now = this.broker.now();
    while (jobs.length > 0 && budget > 0) {
      const job = jobs[0]!;
      let m = job.pending;
      if (m === null) {
        const r = job.walk.next();
        budget--;
        if (r.done) {
          jobs.shift();
          continue;
        }
        if (r.value === null) continue;
        m = r.value;
        if (m.serial >= job.startSerial || m.sentByJob === job.id) continue;
        if (m.expired(now)) {
          this.broker.expireRetained(m);
          continue;
        }
        // A topic the ACL does not let this client read is skipped, as live messages are (acl.ts).
        if (s.acl !== null && !s.acl.canRead(m.topic)) continue;
      } else if (this.broker.retainedMessage(m.topic) !== m || m.sentByJob === job.id) {
        // Replaced, deleted or already sent while it waited for room.
        job.pending = null;
        continue;
      }
      const qos = m.qos < job.sub.qos ? m.qos : job.sub.qos;
      const room =
        qos === 0 ? !conn.waitingDrain && conn.out.len < maxOut : s.queue.length === 0 && s.resend === null && outbox.hasRoom(s, conn);
      if (!room) {
        job.pending = m;
        // QoS 1/2 wait for acknowledgements (drainQueue wakes them); QoS 0 for the
        // output to leave: on the next turn, or on the transport's drain.
        if (qos !== 0) this.active.delete(s);
        else if (!conn.waitingDrain) this.again = true;
        return budget;
      }
      job.pending = null;
      this.send(s, job, m);
      budget--;
    }
    if (jobs.length === 0) {
      s.retainedJobs = null;
      this.active.delete(s);
    }
    return budget;
  }

  private send(s: Session, job: RetainedJob, m: Message): void {
    const sub = job.sub;
    m.sentByJob = job.id;
    // RETAIN = 1 on retained messages sent for a subscription (3.1.1 [MQTT-3.3.1-8], 5 [MQTT-3.3.1-9]).
    this.broker.outbox.deliver(s, m, m.qos < sub.qos ? m.qos : sub.qos, true, sub.subId !== 0 ? [sub.subId] : null, null, null);
  }
}
