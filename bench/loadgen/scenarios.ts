/**
 * @module loadgen/scenarios
 * What each scenario builds: its clients, their topics, and which publishers
 * each subscriber tracks (fanin: every publisher into one wildcard
 * subscriber; fanout: one publisher to every subscriber; pairs and persist:
 * one topic per pair; conn: idle CONNECT-only clients). Also how a message
 * run ends, which for persist includes removing the subscriber sessions so
 * that runs do not leave state behind in the broker.
 */
import { Conn, CS_CLOSED, flush, R_CLEAN, R_IDLE, R_PUB, R_SUB, wbPacket } from "./client.ts";
import { shutdownAll, startConnects } from "./connections.ts";
import { finish, kick } from "./loop.ts";
import { O } from "./options.ts";
import { DISCONNECT_END_SESSION, publishTemplate } from "./packets.ts";
import { NS, PH_CLEANUP, R } from "./state.ts";
import { Tracker } from "./stats.ts";

export function setup(): void {
  const sc = O.scenario;
  const tag = (ch: string, i: number) => `ts${R.nonce.toString(16).padStart(8, "0")}-${ch}${i}`;
  if (sc === "conn") {
    for (let i = 0; i < O.conns; i++) R.all.push(new Conn(R_IDLE, i, tag("c", i), ""));
    R.cq = R.all.slice();
    return;
  }
  const prefix = R.prefix;
  R.isMsg = true;
  R.persistent = sc === "persist";
  if (sc === "fanin") {
    R.npubs = O.pubs;
    R.nsubs = 1;
    R.spp = 1;
  } else if (sc === "fanout") {
    R.npubs = 1;
    R.nsubs = O.subs;
    R.spp = O.subs;
  } else {
    R.npubs = O.pairs;
    R.nsubs = O.pairs;
    R.spp = 1;
  }
  for (let i = 0; i < R.nsubs; i++) {
    const topic =
      sc === "fanin" ? `${prefix}/fanin/+` : sc === "fanout" ? `${prefix}/fanout` : `${prefix}/pair/${i}`;
    const c = new Conn(R_SUB, i, tag("s", i), topic);
    const nTr = sc === "fanin" ? R.npubs : 1;
    c.trBase = sc === "fanin" || sc === "fanout" ? 0 : i;
    for (let k = 0; k < nTr; k++) c.tr.push(new Tracker());
    R.subs.push(c);
  }
  for (let i = 0; i < R.npubs; i++) {
    const topic =
      sc === "fanin" ? `${prefix}/fanin/${i}` : sc === "fanout" ? `${prefix}/fanout` : `${prefix}/pair/${i}`;
    const c = new Conn(R_PUB, i, tag("p", i), topic);
    const t = publishTemplate(topic, O.qos, O.ver, O.size, R.nonce, i);
    c.tmpl = t.tmpl;
    c.offPid = t.offPid;
    c.offPay = t.offPay;
    if (O.qos) c.pidState = new Uint8Array(65536);
    R.pubs.push(c);
  }
  // QoS 0 has no window: batch about 32 KB per write
  R.batchMax = O.qos ? O.inflight : Math.max(1, Math.floor((32 * 1024) / R.pubs[0]!.tmpl.length));
  R.all = [...R.subs, ...R.pubs];
  R.cq = R.all.slice();
}

/** Message runs end here; persistent sessions are removed before the report. */
export function endMessagePhase(): void {
  if (!R.persistent) {
    finish();
    return;
  }
  // v5: DISCONNECT with Session Expiry 0 ends the session ([MQTT-3.14.2-2] allows it:
  // the CONNECT had a non-zero expiry). 3.1.1: reconnect each client id with Clean Session 1.
  shutdownAll(O.ver === 5 ? DISCONNECT_END_SESSION : null);
  if (O.ver === 5) {
    finish();
    return;
  }
  R.phase = PH_CLEANUP;
  R.tCleanupEnd = R.now + 3 * NS;
  R.nFailed = 0;
  R.nConnecting = 0;
  R.failMsgs = 5; // cleanup failures are not reported
  R.cleanConns = R.subs.map((s) => new Conn(R_CLEAN, s.idx, s.cid, s.topic));
  R.cq = R.cleanConns;
  R.cqNext = 0;
  startConnects();
}

/** A 3.1.1 cleanup reconnect got its CONNACK: the clean CONNECT removed the session, so leave. */
export function cleanupConnected(c: Conn): void {
  wbPacket(c, 0xe0, []);
  flush(c);
  const s = c.sock;
  c.state = CS_CLOSED;
  c.sock = null;
  s?.end();
  R.nConnecting--;
  R.cleanDone++;
  kick();
}
