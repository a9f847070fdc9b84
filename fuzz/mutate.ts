/**
 * @module fuzz/mutate
 * Mutations of a valid packet: bit flips, insertions and deletions,
 * Remaining Length corruption, string-length corruption, truncation,
 * unknown v5 property ids, invalid UTF-8 in strings. Each returns new
 * bytes; concatenation and split writes are the campaign's (campaign.ts).
 * Structure-aware mutations (property, utf8) re-frame the packet so its
 * Remaining Length is right and the broker reads the bad field instead of
 * stopping at the length.
 */
import type { Rng } from "./prng.ts";

export const KINDS = ["bitflip", "insert", "delete", "length", "strlen", "truncate", "property", "utf8"] as const;
export type Kind = (typeof KINDS)[number];

/** The body of a well-framed packet (after the fixed header), or null when the header does not parse. */
export function split(p: Buffer): { b0: number; body: Buffer } | null {
  let len = 0;
  let mul = 1;
  let i = 1;
  for (; i < 5 && i < p.length; i++) {
    len += (p[i]! & 0x7f) * mul;
    mul *= 128;
    if ((p[i]! & 0x80) === 0) break;
  }
  if (i >= 5 || i >= p.length) return null;
  const start = i + 1;
  return { b0: p[0]!, body: p.subarray(start, start + len) };
}

export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

export function frame(b0: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([b0]), varint(body.length), body]);
}

const BAD_UTF8 = [
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0], // start of a surrogate (U+D800 is ED A0 80)
  [0x00, 0x00], // U+0000
  [0xff, 0xfe], // never valid
  [0x80, 0x80], // stray continuation bytes
];
/** Property ids no MQTT 5 packet may carry. */
const UNKNOWN_PROPS = [0x00, 0x04, 0x05, 0x10, 0x20, 0x30, 0x7f, 0x80, 0xff];

export function mutate(rng: Rng, p: Buffer, kind: Kind, v5: boolean): Buffer {
  const n = p.length;
  switch (kind) {
    case "bitflip": {
      const out = Buffer.from(p);
      for (let k = 1 + rng.int(4); k > 0; k--) {
        const i = rng.int(n);
        out[i] = out[i]! ^ (1 << rng.int(8));
      }
      return out;
    }
    case "insert": {
      const at = rng.int(n + 1);
      return Buffer.concat([p.subarray(0, at), rng.bytes(1 + rng.int(8)), p.subarray(at)]);
    }
    case "delete": {
      if (n <= 1) return Buffer.alloc(0);
      const at = rng.int(n);
      return Buffer.concat([p.subarray(0, at), p.subarray(Math.min(n, at + 1 + rng.int(8)))]);
    }
    case "length": {
      const s = split(p);
      if (s === null) return mutate(rng, p, "bitflip", v5);
      const choices = [
        () => varint(Math.max(0, s.body.length + rng.int(17) - 8)), // a little off
        () => varint(rng.int(268_435_456)), // anything in range
        () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), // five bytes: malformed
        () => Buffer.from([0x80, 0x80, 0x80, 0x80]), // never terminated
        () => Buffer.from([0x80, 0x00]), // non-minimal zero
      ];
      return Buffer.concat([Buffer.from([s.b0]), rng.pick(choices)(), s.body]);
    }
    case "strlen": {
      const s = split(p);
      if (s === null || s.body.length < 2) return mutate(rng, p, "bitflip", v5);
      const body = Buffer.from(s.body);
      const at = rng.int(body.length - 1);
      body.writeUInt16BE(rng.pick([0, 1, 0xffff, rng.int(0x10000), body.length - at]) & 0xffff, at);
      return frame(s.b0, body);
    }
    case "truncate":
      return p.subarray(0, rng.int(n));
    case "property": {
      const s = split(p);
      if (s === null || !v5) return mutate(rng, p, "insert", v5);
      // Somewhere in the variable header: a property id that does not exist, with some bytes after it.
      const at = rng.int(Math.min(s.body.length, 16) + 1);
      const junk = Buffer.concat([Buffer.from([rng.pick(UNKNOWN_PROPS)]), rng.bytes(rng.int(6))]);
      return frame(s.b0, Buffer.concat([s.body.subarray(0, at), junk, s.body.subarray(at)]));
    }
    case "utf8": {
      const s = split(p);
      if (s === null) return mutate(rng, p, "bitflip", v5);
      const body = Buffer.from(s.body);
      // Strings of the seeds: topics under fz/, client ids fz-…, user names and methods.
      const hits: number[] = [];
      for (let i = 0; i + 1 < body.length; i++) if ((body[i] === 0x66 && body[i + 1] === 0x7a) || (body[i] === 0x53 && body[i + 1] === 0x43)) hits.push(i);
      const at = hits.length > 0 ? rng.pick(hits) : rng.int(Math.max(1, body.length - 1));
      const bad = rng.pick(BAD_UTF8);
      for (let k = 0; k < bad.length && at + k < body.length; k++) body[at + k] = bad[k]!;
      return frame(s.b0, body);
    }
  }
}
