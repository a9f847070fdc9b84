/**
 * @module output
 * One growable output buffer per connection. Packets are encoded straight into
 * it and the whole batch leaves with one `socket.write` (PERFORMANCE.md: one
 * write per packet makes a Bun broker ~20x slower). Buffers of the standard
 * size are pooled while their connection has nothing pending, so an idle
 * connection holds no output memory.
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
