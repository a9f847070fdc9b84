/**
 * @module loadgen/publisher
 * The sending side of a message run: the ready list of publishers that may
 * be able to send, `pump` (how many messages one publisher may send now:
 * count, deadline, rate, end-to-end window, in-flight window or QoS 0 write
 * backpressure), `sendBatch` (copies the pre-encoded PUBLISH and patches id,
 * sequence and timestamp), and the PUBACK / PUBREC / PUBCOMP handlers that
 * free window slots.
 */
import { type Conn, CS_READY, flush, R_PUB, wbAck, wbReserve } from "./client.ts";
import { connLost } from "./connections.ts";
import { kick } from "./loop.ts";
import { O } from "./options.ts";
import { TWO32, wr32 } from "./packets.ts";
import { PH_PUBLISH, R } from "./state.ts";
import { S } from "./stats.ts";

// Two lists swapped per turn: a publisher re-queued while the list is being
// run lands in the other one, for the next turn.
let rdyA: Conn[] = [];
let rdyB: Conn[] = [];

export function readyPush(c: Conn): void {
  if (c.inReady || c.role !== R_PUB || c.state !== CS_READY) return;
  c.inReady = true;
  rdyA.push(c);
  kick();
}

/** Pump every queued publisher once. */
export function runReady(): void {
  if (!rdyA.length) return;
  const cur = rdyA;
  rdyA = rdyB;
  rdyB = cur;
  for (let i = 0; i < cur.length; i++) {
    const c = cur[i]!;
    c.inReady = false;
    pump(c);
  }
  cur.length = 0;
}

export function readyPending(): boolean {
  return rdyA.length > 0;
}

export function pubFinish(c: Conn): void {
  if (c.role === R_PUB && !c.pubDone) {
    c.pubDone = true;
    R.npubDone++;
  }
}

/** Free end-to-end window of publisher c, in messages. */
export function e2eRoom(c: Conn): number {
  const outst = c.sent * R.spp - c.delivered - c.writtenOff;
  const lim = O.e2eWindow * R.spp;
  return outst >= lim ? 0 : Math.floor((lim - outst) / R.spp);
}

/** Room needed before a blocked publisher sends again (a quarter window: batches, not single messages). */
export function e2eNeed(c: Conn): number {
  let need = O.e2eWindow >= 4 ? Math.floor(O.e2eWindow / 4) : 1;
  if (O.count && O.count - c.sent < need) need = O.count - c.sent;
  return need > 0 ? need : 1;
}

export function totalInflight(): number {
  let n = 0;
  for (const p of R.pubs) if (p.state === CS_READY) n += p.inflight;
  return n;
}

function pump(c: Conn): void {
  if (c.role !== R_PUB || c.state !== CS_READY) return;
  const now = R.now;
  let again = false;
  pub: if (R.phase === PH_PUBLISH && !c.pubDone) {
    let n = R.batchMax;
    if (O.count) {
      if (c.sent >= O.count) {
        pubFinish(c);
        break pub;
      }
      if (O.count - c.sent < n) n = O.count - c.sent;
    }
    if (R.tPubDeadline && now >= R.tPubDeadline) {
      pubFinish(c);
      break pub;
    }
    let dueLeft = 0;
    if (O.rate > 0) {
      if (now < c.rateT0) break pub;
      const due = Math.floor(((now - c.rateT0) * O.rate) / 1e9) + 1;
      if (due <= c.sent) break pub;
      dueLeft = due - c.sent;
      if (dueLeft < n) n = dueLeft;
    }
    if (O.e2eWindow) {
      // end-to-end window: messages sent but not yet received by the subscriber(s)
      const room = e2eRoom(c);
      if (room < e2eNeed(c)) {
        if (!c.e2eBlocked) {
          c.e2eBlocked = true;
          c.blockedAt = now;
        }
        break pub;
      }
      if (room < n) n = room;
    }
    if (O.qos) {
      const room = c.window - c.inflight;
      let need = c.window < O.refill ? c.window : O.refill;
      if (O.count && O.count - c.sent < need) need = O.count - c.sent;
      if (!room || room < need) break pub;
      if (room < n) n = room;
    } else if (c.ww > c.wr) {
      break pub; // QoS 0 write backpressure: wait for drain
    }
    sendBatch(c, n);
    S.sent += n;
    R.tLastSend = now;
    if (O.count && c.sent >= O.count) pubFinish(c);
    else if (O.rate > 0) again = dueLeft > n;
    else again = true;
  }
  if (c.ww > c.wr && !c.armed) {
    if (!flush(c)) {
      connLost(c, "write error");
      return;
    }
  }
  if (again && c.state === CS_READY && !c.pubDone && (O.qos ? c.inflight < c.window : c.ww === c.wr)) readyPush(c);
}

/** Append n PUBLISH packets from the template, patching packet id, sequence and timestamp. */
function sendBatch(c: Conn, n: number): void {
  const tmpl = c.tmpl;
  const tl = tmpl.length;
  wbReserve(c, n * tl);
  const d = c.wb;
  let w = c.ww;
  const now = R.now;
  const tsLo = now >>> 0;
  const tsHi = Math.floor(now / TWO32);
  const qos = O.qos;
  const ps = c.pidState;
  const offPid = c.offPid;
  const offPay = c.offPay;
  for (let i = 0; i < n; i++) {
    d.set(tmpl, w);
    if (qos) {
      let id: number;
      for (;;) {
        id = c.nextId++;
        if (c.nextId > 65535) c.nextId = 1;
        if (ps[id] === 0) break;
      }
      ps[id] = 1;
      d[w + offPid] = id >> 8;
      d[w + offPid + 1] = id & 255;
      c.inflight++;
    }
    const pl = w + offPay;
    const seq = c.sent;
    wr32(d, pl + 8, seq >>> 0);
    wr32(d, pl + 12, Math.floor(seq / TWO32));
    wr32(d, pl + 16, tsLo);
    wr32(d, pl + 20, tsHi);
    w += tl;
    c.sent = seq + 1;
  }
  c.ww = w;
}

// ------------------------------------------------------------------- acks
function pubComplete(c: Conn, id: number): void {
  c.pidState[id] = 0;
  c.inflight--;
  c.acked++;
  S.acked++;
  readyPush(c);
}

export function onPuback(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_PUB || rl < 2 || c.pidState.length === 0) return -1;
  const id = (b[o]! << 8) | b[o + 1]!;
  if (c.pidState[id] !== 1) {
    S.protoErr++;
    return 0;
  }
  if (O.ver === 5 && rl >= 3 && b[o + 2]! >= 0x80) S.pubRejected++;
  pubComplete(c, id);
  return 0;
}

export function onPubrec(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_PUB || rl < 2 || c.pidState.length === 0) return -1;
  const id = (b[o]! << 8) | b[o + 1]!;
  if (c.pidState[id] === 0) {
    S.protoErr++;
    return 0;
  }
  if (O.ver === 5 && rl >= 3 && b[o + 2]! >= 0x80) {
    // a v5 PUBREC with a failure code ends the flow: no PUBREL
    S.pubRejected++;
    pubComplete(c, id);
    return 0;
  }
  c.pidState[id] = 2;
  wbAck(c, 0x62, id);
  return 0;
}

export function onPubcomp(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_PUB || rl < 2 || c.pidState.length === 0) return -1;
  const id = (b[o]! << 8) | b[o + 1]!;
  if (c.pidState[id] !== 2) {
    S.protoErr++;
    return 0;
  }
  pubComplete(c, id);
  return 0;
}
