/**
 * @module transport
 * The seam between a byte stream and MQTT. `Connection` (framing, output
 * buffer, backpressure, keep alive, batch end) talks only to this interface;
 * Bun TCP (tcp.ts) is its first implementation, TLS and WebSockets plug in
 * the same way. A transport never knows MQTT.
 *
 * A transport calls the connection's entry points: `onData(chunk)`,
 * `onDrain()` and `onClose()`. Each of them ends the broker's batch itself,
 * so every transport ends batches through the same path.
 */
import type { PeerCertificate } from "node:tls";

export interface Transport {
  /**
   * Write `length` bytes of `buf` from `offset`. Returns how many were taken:
   * fewer than `length` means the rest must wait for `onDrain` (backpressure);
   * -1 means the transport is closed.
   */
  write(buf: Buffer, offset: number, length: number): number;
  /** Stop delivering `onData` until `resumeReading` (the peer's sends then back up in the kernel). */
  pauseReading(): void;
  resumeReading(): void;
  /**
   * Lingering close, first half: send FIN after what was written, keep
   * reading (the connection discards it) until the peer closes or `close()`.
   * A peer still sending then reads our last packet instead of a reset.
   */
  shutdownWrite(): void;
  /** Close now (a graceful close of whatever is left). */
  close(): void;
  /** Abort at once (RST), for peers that do not read. */
  abort(): void;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The client's certificate on a TLS transport, else null. */
  peerCertificate(): PeerCertificate | null;
}
