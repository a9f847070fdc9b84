/**
 * @module loadgen/subscriber
 * The receiving side of a message run: PUBLISH and PUBREL from the broker,
 * the acks that go back (appended to the subscriber's output, which is
 * written once per chunk), and what an arrival updates: the delivery bitmap,
 * latency for messages sent after the warmup, and the sending publisher's
 * end-to-end window.
 */
import { type Conn, CS_READY, R_SUB, wbAck } from "./client.ts";
import { O } from "./options.ts";
import { PAYLOAD_HDR, rd32, skipProps, TWO32 } from "./packets.ts";
import { e2eNeed, e2eRoom, readyPush } from "./publisher.ts";
import { R } from "./state.ts";
import { lat, S, track } from "./stats.ts";

export function onPublish(c: Conn, h: number, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_SUB || c.state !== CS_READY || rl < 2) return -1;
  const qos = (h >> 1) & 3;
  if (qos === 3) return -1;
  const end = o + rl;
  let off = o + 2 + ((b[o]! << 8) | b[o + 1]!);
  let id = 0;
  if (qos) {
    if (off + 2 > end) return -1;
    id = (b[off]! << 8) | b[off + 1]!;
    off += 2;
  }
  if (O.ver === 5) {
    if (off >= end) return -1;
    off = skipProps(b, off, end, null);
    if (off < 0) return -1;
  }
  if (off > end) return -1;
  recordMsg(c, b, off, end - off, (h & 8) !== 0);
  if (qos === 1) wbAck(c, 0x40, id);
  else if (qos === 2) wbAck(c, 0x50, id);
  return 0;
}

export function onPubrel(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.role !== R_SUB || rl < 2) return -1;
  wbAck(c, 0x70, (b[o]! << 8) | b[o + 1]!);
  return 0;
}

/** Account for one message with payload b[p, p + n) that arrived at subscriber c. */
function recordMsg(c: Conn, b: Uint8Array, p: number, n: number, dupFlag: boolean): void {
  S.recv++;
  // the nonce tells this run's messages from anything else on the topics
  if (n < PAYLOAD_HDR || rd32(b, p) !== R.nonce) {
    S.foreign++;
    return;
  }
  const pid = rd32(b, p + 4);
  const seq = rd32(b, p + 8) + rd32(b, p + 12) * TWO32;
  const ts = rd32(b, p + 16) + rd32(b, p + 20) * TWO32;
  const k = pid - c.trBase;
  if (k < 0 || k >= c.tr.length || pid >= R.npubs || seq >= R.pubs[pid]!.sent) {
    S.unexpectedPub++;
    return;
  }
  if (!track(c.tr[k]!, seq, dupFlag)) return;
  const now = R.now;
  if (ts >= R.tMeas) {
    lat.add(now > ts ? now - ts : 0);
    S.measured++;
  }
  if (!R.tFirstRecv) R.tFirstRecv = now;
  R.tLastRecv = now;
  const pb = R.pubs[pid]!;
  pb.delivered++;
  pb.lastDeliv = now;
  if (pb.e2eBlocked && e2eRoom(pb) >= e2eNeed(pb)) {
    pb.e2eBlocked = false;
    readyPush(pb);
  }
}
