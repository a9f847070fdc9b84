/**
 * @module loadgen/state
 * The run's shared mutable state in one object, `R`, so that every module
 * reads and updates the same values: the clients by role, the phase, the
 * clock reading of the current callback, the connect queue and counts, the
 * timestamps the report is computed from, and how the run ended.
 */
import type { Conn } from "./client.ts";

export const NS = 1e9;
export const MS = 1e6;

export const PH_CONNECT = 0, PH_PUBLISH = 1, PH_DRAIN = 2, PH_HOLD = 3, PH_CLEANUP = 4, PH_DONE = 5;

export const R = {
  // ------------------------------------------------ clients (set up once)
  all: [] as Conn[],
  subs: [] as Conn[],
  pubs: [] as Conn[],
  nsubs: 0,
  npubs: 0,
  /** Deliveries per published message (subscribers per publisher). */
  spp: 1,
  /** Messages appended per pump: the window, or ~32 KB of QoS 0 packets. */
  batchMax: 1,
  /** fanin/fanout/pairs/persist, as opposed to conn. */
  isMsg: false,
  persistent: false,
  nonce: 0,
  prefix: "",

  // --------------------------------------------------------------- progress
  phase: PH_CONNECT,
  /** Bun.nanoseconds() at the start of the current callback. */
  now: 0,
  /** Connect queue: clients still to be connected start at cqNext. */
  cq: [] as Conn[],
  cqNext: 0,
  nConnecting: 0,
  nReady: 0,
  nFailed: 0,
  /** Connection failures reported so far (only the first 5 are printed). */
  failMsgs: 0,
  npubDone: 0,
  /** persist with 3.1.1: the Clean Session 1 reconnects that remove the sessions. */
  cleanConns: [] as Conn[],
  cleanDone: 0,

  // ------------------------------------------------------------- timestamps
  tBegin: Bun.nanoseconds(),
  t0: 0,
  /** End of the warmup: only messages sent after it count for latency and rate. */
  tMeas: 0,
  tPubDeadline: 0,
  tDrainStart: 0,
  tFirstRecv: 0,
  tLastRecv: 0,
  tLastSend: 0,
  tEnd: 0,
  tConnFirst: 0,
  tConnLast: 0,
  tHoldEnd: 0,
  tCleanupEnd: 0,
  hardDeadline: 0,

  // ---------------------------------------------------------------- outcome
  stopSig: false,
  timedOut: false,
  aborted: false,
  drainTimeout: false,
  exitCode: 0,
};
