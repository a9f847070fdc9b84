/**
 * @module varint
 * The one Variable Byte Integer codec (v5 §1.5.5, 3.1.1 §2.2.3): Remaining
 * Length, Property Length, Subscription Identifier. At most four bytes, the
 * last without the continuation bit; values up to 268,435,455.
 *
 * The reader allocates nothing, so the framing loop and the hot decoders can
 * call it per packet: it returns the value, or a negative status, and leaves
 * the position after the integer in `varintEnd`.
 */

/** The largest value a Variable Byte Integer holds (four bytes). */
export const VARINT_MAX = 268_435_455;
/** `readVarint` result: the bytes ran out before the last byte (more may arrive). */
export const VARINT_INCOMPLETE = -1;
/** `readVarint` result: four bytes all with the continuation bit — Malformed whatever follows. */
export const VARINT_TOO_LONG = -2;

/**
 * Position just after the integer the last `readVarint` call decoded. Only
 * meaningful right after a call that returned a value >= 0 (a live binding:
 * importers read the current value).
 */
export let varintEnd = 0;

/**
 * Read a Variable Byte Integer from `buf[pos..end)`. Returns its value (>= 0)
 * and sets `varintEnd`; or VARINT_INCOMPLETE (-1) when `end` comes first;
 * or VARINT_TOO_LONG (-2) when a fourth byte still has the continuation bit
 * (v5 §1.5.5: at most four bytes). Over-long but in-range encodings such as
 * `80 00` are accepted ([MQTT-1.5.5-1] binds the sender).
 */
export function readVarint(buf: Uint8Array, pos: number, end: number): number {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 4; i++) {
    if (pos >= end) return VARINT_INCOMPLETE;
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) {
      varintEnd = pos;
      return value;
    }
    mul *= 128;
  }
  return VARINT_TOO_LONG;
}

/** Size in bytes of `n` (0..VARINT_MAX) as a Variable Byte Integer. */
export function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/** Write `n` (0..VARINT_MAX) at `pos` in its shortest form ([MQTT-1.5.5-1]); returns the position after it. */
export function writeVarint(b: Uint8Array, pos: number, n: number): number {
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n > 0) byte |= 0x80;
    b[pos++] = byte;
  } while (n > 0);
  return pos;
}
