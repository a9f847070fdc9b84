/**
 * Lingering close: the reason code must reach a client that is still
 * writing. When the broker ends a connection (v5 DISCONNECT with a reason,
 * or a refusing CONNACK) it flushes that last packet, shuts its write side,
 * and reads and discards input until the peer closes or about 2 s pass; only
 * then does it close the socket. A plain close() with unread input in the
 * kernel buffer sends a TCP reset, and a reset can overtake (and make the
 * client's stack discard) the packet that says why.
 *
 * Rules: v5 §3.3.4 (more unacknowledged QoS 2 PUBLISHes than the Receive
 * Maximum → DISCONNECT 0x93), [MQTT-4.13.1-1] (send the reason, then close),
 * [MQTT-3.14.4-1]/[MQTT-3.14.4-2] (nothing after DISCONNECT, then the close),
 * 5 [MQTT-3.2.2-7] (refusing CONNACK, then the close), 5 [MQTT-3.1.4-6]
 * (pipelined packets after a refused CONNECT are not processed).
 *
 * Sockets are raw node:net sockets so the test sees exactly what TCP does
 * (an 'error' ECONNRESET versus an orderly 'end'); the bytes are decoded with
 * mqtt-packet.
 *
 * BUNMQ_ROOT (default: this repository) selects the broker under test, so
 * the same file can be run against an older checkout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as net from "node:net";
import { join } from "node:path";
import mqtt from "mqtt-packet";
import type * as BrokerHelpers from "../helpers/broker.ts";
import type { RunningBroker } from "../../lib/server.ts";

const ROOT = process.env.BUNMQ_ROOT ?? join(import.meta.dir, "..", "..");
const { startTestBroker } = (await import(join(ROOT, "tests/helpers/broker.ts"))) as typeof BrokerHelpers;

type Packet = mqtt.Packet & Record<string, any>;

const encode = (p: Record<string, unknown>) => mqtt.generate(p as unknown as mqtt.Packet, { protocolVersion: 5 });

let seq = 0;
const uid = (tag: string) => `${tag}-${++seq}-${process.pid}`;

const connectPacket = (clientId: string, extra: Record<string, unknown> = {}) =>
  encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId, ...extra });

/** `n` QoS 2 PUBLISHes with packet ids first..first+n-1 (wrapping below 65536), back to back in one buffer. */
function qos2Publishes(n: number, first = 1): Buffer {
  const payload = Buffer.alloc(100, 0x61);
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const messageId = ((first + i - 1) % 65535) + 1;
    parts.push(encode({ cmd: "publish", topic: "linger/t", payload, qos: 2, messageId, retain: false, dup: false }));
  }
  return Buffer.concat(parts);
}

interface StreamResult {
  packets: Packet[];
  /** The socket error, if any, and whether it came before the awaited packet was read. */
  error: string | null;
  errorBeforeTarget: boolean;
  /** The broker's FIN arrived (an orderly end, not a reset). */
  sawEnd: boolean;
  bytesWritten: number;
  parseError: string | null;
}

/**
 * Open a raw socket, write `first`, then keep writing `stream` as fast as the
 * socket takes it (honouring 'drain'), until a packet of type `target` has
 * been read or the socket is gone. On reading it, stop writing and end our
 * side, as a client that saw the reason would. Resolves at 'close'; rejects
 * after `ms` (a hang).
 */
function streamUntil(port: number, first: Buffer, stream: Buffer, target: string, ms = 10_000): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const packets: Packet[] = [];
    let error: string | null = null;
    let errorBeforeTarget = false;
    let sawTarget = false;
    let sawEnd = false;
    let parseError: string | null = null;
    let offset = 0;
    let stop = false;
    const parser = mqtt.parser({ protocolVersion: 5 });
    parser.on("packet", (p: Packet) => {
      packets.push(p);
      if (p.cmd === target && !sawTarget) {
        sawTarget = true;
        stop = true;
        socket.end();
      }
    });
    parser.on("error", (e: Error) => {
      parseError ??= e.message;
    });
    const socket = net.connect({ host: "127.0.0.1", port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`hang: no close within ${ms} ms (packets: ${packets.map((p) => p.cmd).join(",")}; target read: ${sawTarget})`));
    }, ms);
    const pump = () => {
      while (!stop && offset < stream.length) {
        const chunk = stream.subarray(offset, offset + 16 * 1024);
        offset += chunk.length;
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          return;
        }
      }
    };
    socket.on("connect", () => {
      socket.write(first);
      pump();
    });
    socket.on("data", (d: Buffer) => parser.parse(d));
    socket.on("end", () => {
      sawEnd = true;
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      if (error === null) {
        error = e.code ?? e.message;
        errorBeforeTarget = !sawTarget;
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ packets, error, errorBeforeTarget, sawEnd, bytesWritten: offset, parseError });
    });
  });
}

/** What one run saw, reduced to what the assertions look at. */
function outcome(r: StreamResult, cmd: "disconnect" | "connack", run: number) {
  const idx = r.packets.findIndex((p) => p.cmd === cmd);
  return {
    run,
    last: r.packets.slice(-3).map((p) => `${p.cmd}${p.reasonCode !== undefined ? `:0x${p.reasonCode.toString(16)}` : ""}`),
    reason: idx >= 0 ? (r.packets[idx]!.reasonCode as number) : "none",
    packetsAfter: idx >= 0 ? r.packets.length - idx - 1 : "n/a",
    errorBeforeReason: r.errorBeforeTarget ? r.error : null,
    /** Any socket error at all (ECONNRESET, EPIPE): a reset instead of an orderly close. */
    error: r.error,
    sawEnd: r.sawEnd,
    parseError: r.parseError,
  };
}

/**
 * Every run: the reason arrived, nothing came after it, and the connection
 * ended without a reset before it was read. All runs are compared at once,
 * so a failure shows each run.
 */
function expectReasonThenCleanEnd(seen: ReturnType<typeof outcome>[], reason: number): void {
  expect(seen).toEqual(
    seen.map((s) => ({
      ...s,
      reason,
      packetsAfter: 0, // [MQTT-3.14.4-1]: nothing after the DISCONNECT (or the refusing CONNACK)
      errorBeforeReason: null, // no ECONNRESET before the reason was read
      error: null, // nor after it: the broker closed after our end, without a reset
      sawEnd: true, // the broker's FIN (shutdown of its write side), not a reset
      parseError: null,
    })),
  );
}

const RUNS = 10;

describe("lingering close: a client still writing reads the reason", () => {
  let rb: RunningBroker;
  beforeAll(async () => {
    rb = await startTestBroker({
      limits: { receiveMaximum: 5 },
      auth: { allowAnonymous: false, users: [{ username: "linger-user", password: "right" }] },
    });
  });
  afterAll(() => rb?.stop());

  test(`(a) v5 §3.3.4 / [MQTT-4.13.1-1]: a client flooding QoS 2 PUBLISHes past Receive Maximum 5 reads DISCONNECT 0x93, then an orderly end (${RUNS} runs)`, async () => {
    const flood = qos2Publishes(5000);
    const seen: ReturnType<typeof outcome>[] = [];
    for (let run = 0; run < RUNS; run++) {
      const r = await streamUntil(rb.port, connectPacket(uid("flood"), { username: "linger-user", password: Buffer.from("right") }), flood, "disconnect");
      expect(r.packets[0]?.cmd).toBe("connack");
      expect(r.packets[0]?.reasonCode).toBe(0);
      // The broker announced the limit the client then broke.
      expect(r.packets[0]?.properties?.receiveMaximum).toBe(5);
      // The client really was still writing: far more than the 6 PUBLISHes that broke the limit.
      expect(r.bytesWritten).toBeGreaterThan(6 * 120);
      seen.push(outcome(r, "disconnect", run));
    }
    expectReasonThenCleanEnd(seen, 0x93);
  }, 60_000);

  test(`(b) 5 [MQTT-3.2.2-7] / [MQTT-3.1.4-6]: CONNECT with a bad password pipelined with a stream of PUBLISHes reads CONNACK 0x86, then an orderly end (${RUNS} runs)`, async () => {
    const qos0 = encode({ cmd: "publish", topic: "linger/b", payload: Buffer.alloc(200, 0x62), qos: 0, retain: false, dup: false });
    const stream = Buffer.concat(Array.from({ length: 5000 }, () => qos0));
    const seen: ReturnType<typeof outcome>[] = [];
    for (let run = 0; run < RUNS; run++) {
      const connect = connectPacket(uid("badpw"), { username: "linger-user", password: Buffer.from("wrong") });
      // CONNECT and the first PUBLISHes leave in one write: truly pipelined.
      const r = await streamUntil(rb.port, Buffer.concat([connect, stream.subarray(0, 64 * 1024)]), stream, "connack");
      // A refusing CONNACK has Session Present 0 (5 [MQTT-3.2.2-6]).
      if (r.packets[0]?.cmd === "connack") expect(r.packets[0].sessionPresent).toBe(false);
      seen.push(outcome(r, "connack", run));
    }
    expectReasonThenCleanEnd(seen, 0x86);
  }, 60_000);

  // The peer never closes its side: the linger must still end. It must also
  // be a linger: the broker keeps reading (and discarding) for about 2 s
  // rather than resetting at once. Both bounds are wide: the close comes
  // 2 s (+ one 250 ms housekeeping tick) after the broker closed, which is
  // after our trigger; below 1 s means no linger at all, beyond 6 s means
  // the connection was left open (a hang).
  for (const kind of ["DISCONNECT 0x93", "CONNACK 0x86"] as const) {
    test(`(c) [MQTT-3.14.4-2] / 5 [MQTT-3.2.2-7]: after ${kind}, a client that never closes its side (and keeps writing) is closed by the broker after the ~2 s linger`, async () => {
      const socket = net.connect({ host: "127.0.0.1", port: rb.port, allowHalfOpen: true });
      const packets: Packet[] = [];
      const parser = mqtt.parser({ protocolVersion: 5 });
      parser.on("packet", (p: Packet) => packets.push(p));
      let endAt = 0;
      let closedAt = 0;
      let error: string | null = null;
      const closed = new Promise<void>((r) =>
        socket.on("close", () => {
          closedAt = Date.now();
          r();
        }),
      );
      socket.on("data", (d: Buffer) => parser.parse(d));
      socket.on("end", () => {
        endAt = Date.now();
      });
      socket.on("error", (e: NodeJS.ErrnoException) => {
        error ??= e.code ?? e.message;
      });
      await new Promise<void>((r, j) => {
        socket.once("connect", () => r());
        socket.once("error", j);
      });
      let t0: number;
      if (kind === "DISCONNECT 0x93") {
        socket.write(connectPacket(uid("never-closes"), { username: "linger-user", password: Buffer.from("right") }));
        const until = Date.now() + 5000;
        while (packets.length === 0 && Date.now() < until) await Bun.sleep(5);
        expect(packets[0]?.cmd).toBe("connack");
        expect(packets[0]?.reasonCode).toBe(0);
        t0 = Date.now();
        socket.write(qos2Publishes(6)); // one past Receive Maximum 5
      } else {
        t0 = Date.now();
        socket.write(connectPacket(uid("never-closes"), { username: "linger-user", password: Buffer.from("wrong") }));
      }
      // Keep writing (a PINGREQ every 50 ms) and never end our side: the
      // broker's final close then shows up as a reset of one of these writes.
      const ping = Buffer.from([0xc0, 0x00]);
      const pinger = setInterval(() => {
        if (!socket.destroyed) socket.write(ping);
      }, 50);
      try {
        const result = await Promise.race([closed.then(() => "closed" as const), Bun.sleep(6000).then(() => "open" as const)]);
        const cmds = packets.map((p) => `${p.cmd}${p.reasonCode !== undefined ? `:0x${p.reasonCode.toString(16)}` : ""}`);
        const elapsed = closedAt > 0 ? closedAt - t0 : -1;
        const want = kind === "DISCONNECT 0x93" ? "disconnect:0x93" : "connack:0x86";
        expect({ result, last: cmds.at(-1), finSeen: endAt > 0, lingered: elapsed >= 1000, error }).toEqual({
          result: "closed", // not left open
          last: want, // the reason arrived, and no PINGRESP (or anything) after it
          finSeen: true, // the write side was shut first (FIN), while reading went on
          lingered: true, // not reset at once: the broker read and discarded our writes meanwhile
          error,
        });
        if (kind === "DISCONNECT 0x93") expect(cmds.filter((c) => c === "pingresp")).toEqual([]);
      } finally {
        clearInterval(pinger);
        socket.destroy();
      }
    }, 15_000);
  }
});
