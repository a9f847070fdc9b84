/**
 * @module loadgen/client
 * One MQTT client of the run (`Conn`: role, connection state, publisher
 * window, subscriber trackers) and its socket output. Output is coalesced:
 * each socket has one buffer that is written with a single `socket.write` per
 * batch (a window refill, or the acks for one chunk), so that a batch costs
 * one syscall rather than one per packet. A partial write keeps the rest for
 * `drain` and is counted in partial_writes.
 */
import type { Socket } from "bun";
import { encVarint } from "./packets.ts";
import { O } from "./options.ts";
import { R } from "./state.ts";
import { S, type Tracker } from "./stats.ts";

/** Roles: subscriber, publisher, idle (conn), and persist's session-removing reconnect. */
export const R_SUB = 0, R_PUB = 1, R_IDLE = 2, R_CLEAN = 3;
/** Connection states, in order; CS_READY = subscribed (subscribers) or connected (others). */
export const CS_NONE = 0, CS_TCP = 1, CS_CONNACK = 2, CS_SUBACK = 3, CS_READY = 4, CS_CLOSED = 5;

const EMPTY = new Uint8Array(0);

export class Conn {
  sock: Socket<Conn> | null = null;
  state = CS_NONE;
  /** Queued in the publisher ready list. */
  inReady = false;
  pubDone = false;
  /** Unsent output waiting for `drain`. */
  armed = false;
  gotDisc = false;
  discReason = 0;
  e2eBlocked = false;
  nextId = 1;
  window = 0;
  ka: number;
  tStart = 0;
  tConnectSent = 0;
  tLastTx = 0;
  /** Partial frame carried over between chunks. */
  rb: Uint8Array = EMPTY;
  rw = 0;
  /** Output buffer: bytes [wr, ww) are unsent. */
  wb: Uint8Array;
  wr = 0;
  ww = 0;
  // publisher
  tmpl: Uint8Array = EMPTY;
  offPid = 0;
  offPay = 0;
  sent = 0;
  acked = 0;
  inflight = 0;
  rateT0 = 0;
  delivered = 0;
  writtenOff = 0;
  lastDeliv = 0;
  blockedAt = 0;
  /** Per packet id: 0 free, 1 waiting PUBACK/PUBREC, 2 waiting PUBCOMP. */
  pidState: Uint8Array = EMPTY;
  // subscriber
  tr: Tracker[] = [];
  /** Publisher id of tr[0]. */
  trBase = 0;
  granted = 0;

  constructor(
    readonly role: number,
    readonly idx: number,
    readonly cid: string,
    readonly topic: string,
  ) {
    this.ka = O.keepalive;
    this.wb = new Uint8Array(role === R_PUB ? 65536 : role === R_SUB ? 8192 : 256);
  }
}

/** Make room for `need` more bytes after ww (compacting or growing the output buffer). */
export function wbReserve(c: Conn, need: number): void {
  if (c.wb.length - c.ww >= need) return;
  if (c.wr > 0) {
    c.wb.copyWithin(0, c.wr, c.ww);
    c.ww -= c.wr;
    c.wr = 0;
    if (c.wb.length - c.ww >= need) return;
  }
  let nc = c.wb.length || 256;
  while (nc - c.ww < need) nc *= 2;
  const nb = new Uint8Array(nc);
  nb.set(c.wb.subarray(0, c.ww));
  c.wb = nb;
}

/** Append a packet: first byte h, then the remaining length and body. */
export function wbPacket(c: Conn, h: number, body: number[]): void {
  wbReserve(c, body.length + 5);
  c.wb[c.ww] = h;
  const p = encVarint(c.wb, c.ww + 1, body.length);
  c.wb.set(body, p);
  c.ww = p + body.length;
}

/** Append a 4-byte ack (PUBACK, PUBREC, PUBREL, PUBCOMP) for packet id `id`. */
export function wbAck(c: Conn, h: number, id: number): void {
  if (c.wb.length - c.ww < 4) wbReserve(c, 4);
  const d = c.wb;
  const w = c.ww;
  d[w] = h;
  d[w + 1] = 2;
  d[w + 2] = id >> 8;
  d[w + 3] = id & 255;
  c.ww = w + 4;
}

/** One write of everything pending; the rest waits for `drain`. False if the socket is gone. */
export function flush(c: Conn): boolean {
  const s = c.sock;
  if (!s) return false;
  const len = c.ww - c.wr;
  if (len <= 0) return true;
  const k = s.write(c.wb, c.wr, len);
  if (k < 0) return false;
  c.tLastTx = R.now;
  if (k < len) {
    c.wr += k;
    c.armed = true;
    S.partialWrites++;
    return true;
  }
  c.wr = c.ww = 0;
  c.armed = false;
  return true;
}

/** Drop the socket at once (no DISCONNECT). */
export function closeSock(c: Conn): void {
  const s = c.sock;
  c.state = CS_CLOSED;
  if (s) {
    c.sock = null;
    try {
      s.terminate();
    } catch {}
  }
}
