/**
 * @module loadgen/connections
 * Connection lifecycle: opening sockets from the connect queue (at most
 * --parallel handshakes at a time), CONNECT / CONNACK and SUBSCRIBE / SUBACK,
 * the one Bun socket handler object shared by every client, dispatch of each
 * framed packet to its handler, failures (before ready: conn_fail) versus
 * losses (after ready: unexpected_close), and closing everything at the end.
 */
import type { SocketHandler } from "bun";
import {
  closeSock, type Conn, CS_CLOSED, CS_CONNACK, CS_READY, CS_SUBACK, CS_TCP, flush, R_CLEAN, R_PUB, R_SUB, wbPacket,
} from "./client.ts";
import { kick } from "./loop.ts";
import { O, warn } from "./options.ts";
import { connectBody, FRAME_ERR, FRAME_OK, FRAME_STOP, type Props, readFrames, skipProps, subscribeBody } from "./packets.ts";
import { onPubcomp, onPuback, onPubrec, pubFinish, readyPush } from "./publisher.ts";
import { cleanupConnected } from "./scenarios.ts";
import { PH_DONE, R } from "./state.ts";
import { clat, S } from "./stats.ts";
import { onPublish, onPubrel } from "./subscriber.ts";

/** Start handshakes from the queue up to --parallel at a time. */
export function startConnects(): void {
  while (R.nConnecting < O.parallel && R.cqNext < R.cq.length) connStart(R.cq[R.cqNext++]!);
}

function connStart(c: Conn): void {
  R.nConnecting++;
  c.tStart = Bun.nanoseconds();
  if (!R.tConnFirst) R.tConnFirst = c.tStart;
  c.state = CS_TCP;
  // subscribers (and the persist clean-up of their sessions) may be on another broker: --sub-host / --sub-port
  const sub = c.role === R_SUB || c.role === R_CLEAN;
  const hostname = sub && O.subHost ? O.subHost : O.host;
  const port = sub && O.subPort ? O.subPort : O.port;
  Bun.connect<Conn>({ hostname, port, data: c, socket: handlers }).catch((err: Error) => {
    connFail(c, `connect: ${err.message}`);
  });
}

function markReady(c: Conn): void {
  c.state = CS_READY;
  R.nConnecting--;
  R.nReady++;
  R.tConnLast = R.now;
  clat.add(R.now - c.tStart);
  kick();
}

/** The connection could not be established. */
export function connFail(c: Conn, why: string): void {
  if (c.state === CS_CLOSED) return;
  if (R.failMsgs++ < 5) warn(`connection ${c.cid} failed: ${why}`);
  closeSock(c);
  R.nConnecting--;
  R.nFailed++;
  pubFinish(c);
  kick();
}

/** An established connection went away. */
export function connLost(c: Conn, why: string): void {
  if (c.state === CS_CLOSED) return;
  if (c.state !== CS_READY) {
    connFail(c, why);
    return;
  }
  closeSock(c);
  if (R.phase !== PH_DONE && c.role !== R_CLEAN) {
    S.unexpectedClose++;
    if (S.unexpectedClose <= 5)
      warn(`${c.cid}: connection closed: ${why}${c.gotDisc ? " (after DISCONNECT from broker)" : ""}`);
  }
  pubFinish(c);
  kick();
}

/** Send DISCONNECT (with body `disc`, if any) on every ready connection and drop the others. */
export function shutdownAll(disc: number[] | null): void {
  for (const c of R.all) {
    if (!c.sock) continue;
    if (c.state === CS_READY) {
      const s = c.sock;
      c.sock = null; // before end(): its close callback may run synchronously
      c.state = CS_CLOSED;
      c.wr = c.ww = 0;
      wbPacket(c, 0xe0, disc ?? []);
      try {
        s.write(c.wb, 0, c.ww);
        s.end();
      } catch {}
    } else closeSock(c);
  }
}

// --------------------------------------------------------- packet handlers
function onConnack(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.state !== CS_CONNACK || rl < 2) return -1;
  const rc = b[o + 1]!;
  const pr: Props = { recvMax: 0, serverKa: 0 };
  if (O.ver === 5 && rl > 2 && skipProps(b, o + 2, o + rl, pr) < 0) return -1;
  if (rc !== 0) {
    connFail(c, `CONNACK return code 0x${rc.toString(16).padStart(2, "0")}`);
    return 0;
  }
  if (b[o]! & 1) S.sessionPresent++;
  c.window = O.inflight;
  if (pr.recvMax && pr.recvMax < c.window) c.window = pr.recvMax;
  if (pr.serverKa) c.ka = pr.serverKa;
  if (c.role === R_SUB) {
    c.state = CS_SUBACK;
    wbPacket(c, 0x82, subscribeBody(O.ver, c.topic, O.qos));
    return 0;
  }
  if (c.role === R_CLEAN) {
    cleanupConnected(c);
    return 0;
  }
  markReady(c);
  return 0;
}

function onSuback(c: Conn, b: Uint8Array, o: number, rl: number): number {
  if (c.state !== CS_SUBACK || rl < 3) return -1;
  let off = o + 2;
  if (O.ver === 5) {
    off = skipProps(b, off, o + rl, null);
    if (off < 0 || off >= o + rl) return -1;
  }
  const code = b[off]!;
  if (code >= 0x80) {
    connFail(c, `SUBACK refused (0x${code.toString(16)}) for ${c.topic}`);
    return 0;
  }
  c.granted = code;
  if (code < O.qos) S.subDowngrade++;
  markReady(c);
  return 0;
}

function onDisconnect(c: Conn, b: Uint8Array, o: number, rl: number): number {
  c.gotDisc = true;
  c.discReason = rl >= 1 ? b[o]! : 0;
  if (R.phase !== PH_DONE) warn(`${c.cid}: broker sent DISCONNECT reason 0x${c.discReason.toString(16)}`);
  return 0;
}

function handlePacket(c: Conn, h: number, b: Uint8Array, o: number, rl: number): number {
  switch (h >> 4) {
    case 3: return onPublish(c, h, b, o, rl);
    case 4: return onPuback(c, b, o, rl);
    case 5: return onPubrec(c, b, o, rl);
    case 6: return onPubrel(c, b, o, rl);
    case 7: return onPubcomp(c, b, o, rl);
    case 2: return onConnack(c, b, o, rl);
    case 9: return onSuback(c, b, o, rl);
    case 13: return 0; // PINGRESP
    case 14: return onDisconnect(c, b, o, rl);
    default: return -1;
  }
}

/** Framer callback: a handler that rejects its packet is a protocol error, which drops the connection. */
function onFrame(c: Conn, h: number, b: Uint8Array, o: number, rl: number): number {
  if (handlePacket(c, h, b, o, rl) < 0) {
    S.protoErr++;
    if (S.protoErr <= 5) warn(`${c.cid}: unexpected/malformed packet type ${h >> 4} len ${rl}`);
    return FRAME_ERR;
  }
  return c.state === CS_CLOSED ? FRAME_STOP : FRAME_OK;
}

// ------------------------------------------------------------ socket events
const handlers: SocketHandler<Conn> = {
  open(sock) {
    const c = sock.data;
    if (c.state === CS_CLOSED) {
      sock.terminate();
      return;
    }
    c.sock = sock;
    R.now = Bun.nanoseconds();
    // CONNECT-only connections send one packet: Nagle cannot delay it
    if (c.role === R_PUB || c.role === R_SUB) sock.setNoDelay(true);
    c.state = CS_CONNACK;
    // persist: only the subscribers keep a session; the cleanup reconnects ask for a clean one
    wbPacket(c, 0x10, connectBody(O.ver, O.keepalive, R.persistent && c.role === R_SUB, O.sessionExpiry, c.cid));
    c.tConnectSent = R.now;
    if (!flush(c)) connFail(c, "write failed");
  },
  data(sock, chunk) {
    const c = sock.data;
    if (c.state === CS_CLOSED) return;
    R.now = Bun.nanoseconds();
    if (!readFrames(c, chunk, onFrame)) connLost(c, "protocol error");
    // publishers that are about to be pumped flush together with new messages
    if (c.ww > c.wr && !c.armed && !c.inReady && c.state !== CS_CLOSED) {
      if (!flush(c)) connLost(c, "write error");
    }
  },
  drain(sock) {
    const c = sock.data;
    if (c.state === CS_CLOSED || !c.armed) return;
    R.now = Bun.nanoseconds();
    if (!flush(c)) {
      connLost(c, "write error");
      return;
    }
    if (c.role === R_PUB && c.ww === c.wr) readyPush(c);
  },
  close(sock) {
    const c = sock.data;
    if (c.sock !== sock) return;
    R.now = Bun.nanoseconds();
    c.sock = null;
    if (c.state !== CS_CLOSED) connLost(c, "closed by broker");
  },
  end(sock) {
    const c = sock.data;
    if (c.sock !== sock) return;
    R.now = Bun.nanoseconds();
    connLost(c, "closed by broker");
  },
  error(sock, err) {
    const c = sock.data;
    if (c.sock !== sock) return;
    R.now = Bun.nanoseconds();
    connLost(c, err.message);
  },
  connectError(sock, err) {
    connFail(sock.data, `connect: ${err.message}`);
  },
};
