/**
 * @module output
 * One growable output buffer per connection. Packets are encoded straight into
 * it and the whole batch leaves with one `socket.write` (PERFORMANCE.md: one
 * write per packet makes a Bun broker ~20x slower). Buffers of the standard
 * size are pooled while their connection has nothing pending, so an idle
 * connection holds no output memory.
 *
 * Sealing: only the first `ready` bytes may be written to the transport.
 * At the end of a batch everything is sealed, except from the first byte
 * that must wait for a store commit (an acknowledgement of uncommitted
 * state, `holdHere`): that region is tagged with the journal epoch it needs
 * and released when that epoch is committed. Bytes after a held region wait
 * with it, so the stream keeps its order.
 */

const POOL_BUF_SIZE = 16 * 1024;
const POOL_MAX = 256;
const pool: Buffer[] = [];
const EMPTY = Buffer.alloc(0);

export class Output {
  buf: Buffer = EMPTY;
  len = 0;
  /**
   * Bytes at the front that are sealed: the batch that wrote them has
   * committed, so they may be written to the transport. Bytes after them
   * wait for the end of their batch.
   */
  ready = 0;
  /** From this offset, what this batch wrote waits for a commit (-1: nothing held). */
  private holdFrom = -1;
  /** Earlier batches' held regions: pairs (epoch, start offset), oldest first. */
  private holds: number[] | null = null;

  /** What is appended from here on must wait for the commit of this batch's journal work. */
  holdHere(): void {
    if (this.holdFrom < 0) this.holdFrom = this.len;
  }

  /**
   * End of a batch: this batch's held region (if any) waits for `epoch`;
   * then release every region whose epoch is `committed` or older and seal
   * up to the first region still waiting. Returns true while one waits.
   */
  seal(epoch: number, committed: number): boolean {
    if (this.holdFrom >= 0) {
      (this.holds ??= []).push(epoch, this.holdFrom);
      this.holdFrom = -1;
    }
    return this.releaseHeld(committed);
  }

  /** A commit point: release what `committed` covers; returns true while a region still waits. */
  releaseHeld(committed: number): boolean {
    const h = this.holds;
    if (h === null) {
      this.ready = this.len;
      return false;
    }
    let i = 0;
    while (i < h.length && h[i]! <= committed) i += 2;
    if (i > 0) h.splice(0, i);
    if (h.length === 0) {
      this.holds = null;
      this.ready = this.len;
      return false;
    }
    this.ready = h[1]!; // up to the first region still waiting
    return true;
  }

  /** Forget everything pending (the transport is gone). */
  discard(): void {
    this.len = 0;
    this.ready = 0;
    this.holdFrom = -1;
    this.holds = null;
    this.release();
  }

  /** Make room for `n` more bytes; returns the write position. */
  reserve(n: number): number {
    const need = this.len + n;
    if (need > this.buf.length) this.grow(need);
    return this.len;
  }

  private grow(need: number): void {
    let next: Buffer;
    if (this.buf.length === 0 && need <= POOL_BUF_SIZE) {
      next = pool.pop() ?? Buffer.allocUnsafe(POOL_BUF_SIZE);
    } else {
      let size = Math.max(POOL_BUF_SIZE, this.buf.length * 2);
      while (size < need) size *= 2;
      next = Buffer.allocUnsafe(size);
      if (this.len > 0) this.buf.copy(next, 0, 0, this.len);
      this.recycle();
    }
    this.buf = next;
  }

  /** Append raw bytes. */
  append(src: Uint8Array): void {
    const pos = this.reserve(src.length);
    this.buf.set(src, pos);
    this.len = pos + src.length;
  }

  /** Drop the first `n` bytes (they were written to the socket). */
  consume(n: number): void {
    this.ready = n >= this.ready ? 0 : this.ready - n;
    // Held offsets move with the bytes (only sealed bytes are consumed, all before them).
    if (this.holdFrom >= 0) this.holdFrom -= n;
    const h = this.holds;
    if (h !== null) for (let i = 1; i < h.length; i += 2) h[i] = h[i]! - n;
    if (n >= this.len) {
      this.len = 0;
      this.release();
      return;
    }
    this.buf.copyWithin(0, n, this.len);
    this.len -= n;
  }

  /** Give the buffer back to the pool once nothing is pending. */
  release(): void {
    if (this.len !== 0) return;
    this.recycle();
    this.buf = EMPTY;
  }

  private recycle(): void {
    if (this.buf.length === POOL_BUF_SIZE && pool.length < POOL_MAX) pool.push(this.buf);
  }
}
