/**
 * A seeded fuzzer for v5 property sections (v5 §2.2.2, Table 2-4). For every
 * packet type a client sends with properties (CONNECT and its Will
 * Properties, PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, SUBSCRIBE, UNSUBSCRIBE,
 * DISCONNECT, AUTH) it builds valid sections and corrupted ones (truncated,
 * overlong or short Property Length, unknown or misplaced ids, repeated ids,
 * bad UTF-8, 5-byte varints, User Properties overrunning their section,
 * out-of-range values, flipped bytes), wraps each in a whole frame, and feeds
 * it through the decode path the broker uses (lib/handlers/index.ts).
 *
 * Asserted for every case: the only thing ever thrown is an MqttError with
 * 0x81 Malformed or 0x82 Protocol Error (PUBLISH: also 0x94 for Topic Alias
 * 0, [MQTT-3.3.2-8]) — never a TypeError/RangeError, which the broker would
 * answer with 0x83 and an ERROR log ([MQTT-4.13.1-1]). For valid sections:
 * the frame is accepted and decodes to what mqtt-packet's parser gives.
 *
 * Deterministic: a fixed seed per packet type; a failure prints the frame.
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { decodeChecked } from "../../lib/protocol/codec.ts";
import { decodeConnect } from "../../lib/protocol/connect-codec.ts";
import { decodeAck, decodePublish } from "../../lib/protocol/fast-codec.ts";
import { MqttError } from "../../lib/protocol/reason-codes.ts";
import { field, u16, u32, varint } from "../helpers/bytes.ts";

const CASES = 3000;

// ---- deterministic PRNG (mulberry32) -----------------------------------------

function prng(seed: number) {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const chance = (p: number): boolean => next() < p;
  return { next, int, pick, chance };
}
type Rng = ReturnType<typeof prng>;

// ---- the spec's property table (v5 Table 2-4), written out independently of lib/ ----

type Where = "connect" | "will" | "publish" | "ack" | "subscribe" | "unsubscribe" | "disconnect" | "auth";
type Kind = "byte" | "u16" | "u32" | "vbi" | "str" | "bin" | "pair";
const ALL: Where[] = ["connect", "will", "publish", "ack", "subscribe", "unsubscribe", "disconnect", "auth"];
/** id → wire type and the client-sent places it may appear (CONNACK/SUBACK/UNSUBACK-only ones have none). */
const SPEC: Record<number, [Kind, Where[]]> = {
  0x01: ["byte", ["publish", "will"]],
  0x02: ["u32", ["publish", "will"]],
  0x03: ["str", ["publish", "will"]],
  0x08: ["str", ["publish", "will"]],
  0x09: ["bin", ["publish", "will"]],
  0x0b: ["vbi", ["subscribe"]], // PUBLISH too, but only server → client [MQTT-3.3.4-6]
  0x11: ["u32", ["connect", "disconnect"]],
  0x12: ["str", []],
  0x13: ["u16", []],
  0x15: ["str", ["connect", "auth"]],
  0x16: ["bin", ["connect", "auth"]],
  0x17: ["byte", ["connect"]],
  0x18: ["u32", ["will"]],
  0x19: ["byte", ["connect"]],
  0x1a: ["str", []],
  0x1c: ["str", ["disconnect"]],
  0x1f: ["str", ["ack", "disconnect", "auth"]],
  0x21: ["u16", ["connect"]],
  0x22: ["u16", ["connect"]],
  0x23: ["u16", ["publish"]],
  0x24: ["byte", []],
  0x25: ["byte", []],
  0x26: ["pair", ALL],
  0x27: ["u32", ["connect"]],
  0x28: ["byte", []],
  0x29: ["byte", []],
  0x2a: ["byte", []],
};
const IDS = Object.keys(SPEC).map(Number);
const UNKNOWN_IDS = Array.from({ length: 256 }, (_, i) => i).filter((i) => SPEC[i] === undefined);
/** Values that must be at least 1: Subscription Identifier, Topic Alias, Receive Maximum, Maximum Packet Size. */
const NON_ZERO = new Set([0x0b, 0x23, 0x21, 0x27]);

// ---- valid values and sections -----------------------------------------------

const CHARS = ["a", "b", "z", "/", " ", "-", "é", "ß", "€", "漢", "😀", "\u00a0", "0", "9"];
function text(r: Rng, min = 0, max = 10): string {
  let s = "";
  for (let n = r.int(min, max); n > 0; n--) s += r.pick(CHARS);
  return s;
}

/** A valid value of property `id` (its bytes after the id). */
function value(r: Rng, id: number, kind: Kind): Buffer {
  switch (kind) {
    case "byte":
      return Buffer.from([r.int(0, 1)]);
    case "u16":
      return u16(r.int(NON_ZERO.has(id) ? 1 : 0, 65535));
    case "u32":
      return u32(r.chance(0.2) ? 0xffffffff : r.int(NON_ZERO.has(id) ? 1 : 0, 100000));
    case "vbi":
      return varint(r.pick([1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, r.int(1, 268435455)]));
    case "str":
      // A Response Topic is a topic name: non-empty, no wildcards ([MQTT-3.3.2-14]).
      return field(id === 0x08 ? `r/${text(r, 0, 6)}` : text(r));
    case "bin":
      return field(Buffer.from(Array.from({ length: r.int(0, 12) }, () => r.int(0, 255))));
    case "pair":
      // Values are non-empty: mqtt-packet (the reference) drops an empty value when the name repeats.
      return Buffer.concat([field(text(r, 0, 4)), field(text(r, 1, 6))]);
  }
}

interface Entry {
  id: number;
  bytes: Buffer; // id byte + value
}

const entry = (id: number, v: Buffer): Entry => ({ id, bytes: Buffer.concat([Buffer.from([id]), v]) });

function validEntries(r: Rng, where: Where): Entry[] {
  const out: Entry[] = [];
  for (const id of IDS) {
    const [kind, places] = SPEC[id]!;
    if (!places.includes(where) || id === 0x26 || id === 0x16) continue;
    if (r.chance(0.4)) out.push(entry(id, value(r, id, kind)));
    // Authentication Data only with an Authentication Method (v5 §3.1.2.11.10).
    if (id === 0x15 && out.at(-1)?.id === 0x15 && r.chance(0.6)) out.push(entry(0x16, value(r, 0x16, "bin")));
  }
  for (let n = r.pick([0, 0, 1, 2, 3]); n > 0; n--) out.push(entry(0x26, value(r, 0x26, "pair")));
  // Property order has no significance (v5 §2.2.2.2).
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---- corruptions ---------------------------------------------------------------

const BAD_UTF8 = [[0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0x00], [0xff], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]];

/** A property section: Property Length then the entries. */
interface Section {
  len: Buffer; // the Property Length bytes as sent
  body: Buffer;
}

const section = (entries: Entry[]): Section => {
  const body = Buffer.concat(entries.map((e) => e.bytes));
  return { len: varint(body.length), body };
};

/**
 * Codes a corrupted case *must* be refused with, by kind (when not also
 * truncated). A repeat is found before its value is read, so a bad value
 * that is also a repeat earns 0x82.
 */
const MUST: Record<string, number[]> = {
  "unknown id": [0x81], // v5 §2.2.2.2
  "misplaced id": [0x81, 0x82], // v5 §2.2.2.2; a client's Subscription Identifier in PUBLISH: 0x82 [MQTT-3.3.4-6]
  repeat: [0x82, 0x94], // Topic Alias 0 first: 0x94 [MQTT-3.3.2-8]
  "bad utf8": [0x81, 0x82], // [MQTT-1.5.4-1], [MQTT-1.5.4-2], [MQTT-1.5.7-1]
  "5-byte varint": [0x81, 0x82], // v5 §1.5.5
  "user property overrun": [0x81],
  "id only": [0x81, 0x82],
};

/** Corrupt a valid entry list; returns the section and a label. */
function corrupt(r: Rng, where: Where, entries: Entry[]): [Section, string] {
  const kinds = ["overlong", "short", "unknown id", "misplaced id", "repeat", "bad utf8", "5-byte varint", "user property overrun", "flip", "range", "non-minimal length", "id only"];
  const k = r.pick(kinds);
  const es = [...entries];
  switch (k) {
    case "overlong": {
      const s = section(es);
      return [{ len: varint(s.body.length + r.pick([1, 2, 3, 7, 100, 16384, 268435455 - s.body.length])), body: s.body }, k];
    }
    case "short": {
      const s = section(es);
      if (s.body.length === 0) return [{ len: varint(0), body: Buffer.from([0x26]) }, k];
      return [{ len: varint(r.int(0, s.body.length - 1)), body: s.body }, k];
    }
    case "unknown id":
      es.splice(r.int(0, es.length), 0, { id: -1, bytes: Buffer.from([r.pick(UNKNOWN_IDS), ...Array.from({ length: r.int(0, 4) }, () => r.int(0, 255))]) });
      return [section(es), k];
    case "misplaced id": {
      const other = IDS.filter((id) => !SPEC[id]![1].includes(where));
      const id = r.pick(other);
      es.splice(r.int(0, es.length), 0, entry(id, value(r, id, SPEC[id]![0])));
      return [section(es), k];
    }
    case "repeat": {
      const single = IDS.filter((id) => id !== 0x26 && SPEC[id]![1].includes(where));
      if (single.length === 0) return [section(es), "valid"]; // UNSUBSCRIBE: only User Property, which may repeat
      const id = r.pick(single);
      const kind = SPEC[id]![0];
      // The first value is often 0 / empty: mqtt-packet then keeps only the last, hiding the repeat.
      const zero = kind === "str" || kind === "bin" ? field("") : kind === "vbi" ? varint(0) : Buffer.alloc(kind === "u32" ? 4 : kind === "u16" ? 2 : 1);
      es.push(entry(id, r.chance(0.5) ? zero : value(r, id, kind)), entry(id, value(r, id, kind)));
      return [section(es), k];
    }
    case "bad utf8": {
      const strs = IDS.filter((id) => (SPEC[id]![0] === "str" || id === 0x26) && SPEC[id]![1].includes(where));
      const id = r.pick(strs);
      const bad = Buffer.from([...Buffer.from(text(r, 0, 3)), ...r.pick(BAD_UTF8), ...Buffer.from(text(r, 0, 3))]);
      const v = id === 0x26 ? (r.chance(0.5) ? Buffer.concat([field(bad), field("v")]) : Buffer.concat([field("k"), field(bad)])) : field(bad);
      es.splice(r.int(0, es.length), 0, entry(id, v));
      return [section(es), k];
    }
    case "5-byte varint": {
      if (where === "subscribe" && r.chance(0.5)) {
        es.push({ id: -1, bytes: Buffer.from([0x0b, 0x81, 0x80, 0x80, 0x80, 0x01]) });
        return [section(es), k];
      }
      const s = section(es);
      return [{ len: Buffer.from([0x80 | (s.body.length & 0x7f), 0x80, 0x80, 0x80, 0x00]), body: s.body }, k];
    }
    case "user property overrun": {
      // The pair's value length runs past the section end (and usually past the packet).
      const name = field(text(r, 0, 3));
      const present = Buffer.from(text(r, 0, 2));
      const vlen = present.length + r.int(1, 300);
      es.push({ id: -1, bytes: Buffer.concat([Buffer.from([0x26]), name, u16(vlen), present]) });
      return [section(es), k];
    }
    case "flip": {
      const s = section(es);
      const body = Buffer.from(s.body);
      for (let n = r.int(1, 3); n > 0 && body.length > 0; n--) body[r.int(0, body.length - 1)] = r.int(0, 255);
      return [{ len: s.len, body }, k];
    }
    case "range": {
      const ids = IDS.filter((id) => SPEC[id]![1].includes(where) && (SPEC[id]![0] === "byte" || NON_ZERO.has(id)));
      if (ids.length === 0) return [section(es), "valid"];
      const id = r.pick(ids);
      const kind = SPEC[id]![0];
      const v = kind === "byte" ? Buffer.from([r.int(2, 255)]) : kind === "vbi" ? varint(0) : Buffer.alloc(kind === "u32" ? 4 : 2);
      es.splice(r.int(0, es.length), 0, entry(id, v));
      return [section(es), k];
    }
    case "non-minimal length": {
      // [MQTT-1.5.5-1] binds the sender; a receiver may accept it.
      const s = section(es);
      return [{ len: Buffer.from([0x80 | (s.body.length & 0x7f), 0x80 | (s.body.length >> 7), 0x00]), body: s.body }, k];
    }
    default: {
      // A lone identifier at the end of the section, its value missing.
      es.push({ id: -1, bytes: Buffer.from([r.pick(IDS)]) });
      return [section(es), k];
    }
  }
}

// ---- frames ------------------------------------------------------------------

function frameOf(b0: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([b0]), varint(body.length), body]);
}

interface Case {
  frame: Buffer;
  valid: boolean;
  label: string;
  /** The codes it must be refused with, or null when accepting it is fine too. */
  must: number[] | null;
}

/**
 * Build a case from a body prefix, the (maybe corrupted) section and a suffix.
 * One corrupted case in five is instead truncated somewhere after the section starts.
 */
function build(r: Rng, b0: number, where: Where, prefix: Buffer[], suffix: Buffer[], valid: boolean): Case {
  const es = validEntries(r, where);
  let s: Section;
  let label = "valid";
  if (valid) s = section(es);
  else [s, label] = corrupt(r, where, es);
  let body = Buffer.concat([...prefix, s.len, s.body, ...suffix]);
  let must: number[] | null = MUST[label] ?? null;
  if (!valid && r.chance(0.2)) {
    const from = Buffer.concat(prefix).length;
    body = body.subarray(0, r.int(from, Math.max(from, body.length - 1)));
    label += " + truncated";
    must = null;
  }
  return { frame: frameOf(b0, body), valid: label === "valid", label, must };
}

// ---- the broker's decode path and the reference ---------------------------------

/**
 * SUBSCRIBE / UNSUBSCRIBE / DISCONNECT / AUTH as lib/handlers/index.ts
 * decodes them: the raw property walk, then the shared parser.
 */
function decodeRare(frame: Buffer, type: number, body: number): Record<string, any> {
  return decodeChecked(type, frame, 0, body, frame.length, 5) as unknown as Record<string, any>;
}

function reference(frame: Buffer): Record<string, any> {
  const p = mqtt.parser({ protocolVersion: 5 });
  const got: Record<string, any>[] = [];
  p.on("packet", (x) => got.push(x as unknown as Record<string, any>));
  p.on("error", (e) => {
    throw e;
  });
  expect(p.parse(frame)).toBe(0);
  expect(got.length).toBe(1);
  return got[0]!;
}

const plain = (x: unknown) => JSON.parse(JSON.stringify(x ?? null));

function bodyStart(frame: Buffer): number {
  let p = 1;
  while (frame[p++]! & 0x80);
  return p;
}

let refused = 0;

/** Decode `c` the broker's way; returns an error description, or null when the outcome is allowed. */
function check(c: Case, type: number, decode: (c: Case) => void, codes: number[]): string | null {
  try {
    decode(c);
  } catch (e) {
    refused++;
    if (e instanceof MqttError && codes.includes(e.code)) {
      if (c.valid) return `valid section refused: 0x${e.code.toString(16)} ${e.message}`;
      if (c.must !== null && !c.must.includes(e.code)) return `refused with 0x${e.code.toString(16)}, expected one of ${c.must.map((x) => x.toString(16))}: ${e.message}`;
      return null;
    }
    const what = e instanceof MqttError ? `MqttError 0x${e.code.toString(16)} ${e.message}` : `${(e as Error)?.name}: ${(e as Error)?.message}`;
    return `${what} (type ${type})`;
  }
  return c.must !== null ? "corrupted section accepted" : null;
}

function run(seed: number, gen: (r: Rng, valid: boolean) => Case, type: number, decode: (c: Case) => void, codes = [0x81, 0x82]): void {
  const r = prng(seed);
  const failures: string[] = [];
  let valid = 0;
  refused = 0;
  for (let i = 0; i < CASES && failures.length < 10; i++) {
    const c = gen(r, i % 4 === 0);
    if (c.valid) valid++;
    const f = check(c, type, decode, codes);
    if (f !== null) failures.push(`#${i} [${c.label}] ${c.frame.toString("hex")}: ${f}`);
  }
  expect(failures).toEqual([]);
  // The mix stays meaningful: a quarter valid, and most corrupted cases refused.
  expect(valid).toBeGreaterThan(CASES / 5);
  expect(refused).toBeGreaterThan(CASES / 2);
}

// ---- the cases -----------------------------------------------------------------

describe(`property fuzzer (${CASES} cases per packet type, fixed seeds): only MqttError 0x81/0x82 ever escapes (v5 §2.2.2, [MQTT-4.13.1-1])`, () => {
  test("CONNECT properties and Will Properties (v5 §3.1.2.11, §3.1.3.2) — decodeConnect", () => {
    const gen = (r: Rng, valid: boolean): Case => {
      const will = r.chance(0.6);
      const head = [field("MQTT"), Buffer.from([5, will ? 0x0e : 0x02]), u16(30)];
      const id = field(text(r, 0, 8));
      if (!will || r.chance(0.5)) {
        const tail = will ? [id, varint(0), field("w/t"), field("bye")] : [id];
        return build(r, 0x10, "connect", head, tail, valid);
      }
      const cp = section(validEntries(r, "connect"));
      return build(r, 0x10, "will", [...head, cp.len, cp.body, id], [field(`w/${text(r, 0, 4)}`), field("payload")], valid);
    };
    run(0xc0ec7, gen, 1, (c) => {
      const got = decodeConnect(c.frame);
      if (!c.valid) return;
      const ref = reference(c.frame);
      expect(plain(got.properties)).toEqual(plain(ref.properties));
      expect(plain(got.will?.properties)).toEqual(plain(ref.will?.properties));
      expect(got.clientId).toBe(ref.clientId);
    });
  });

  test("PUBLISH properties (v5 §3.3.2.3) — decodePublish", () => {
    const gen = (r: Rng, valid: boolean): Case => {
      const qos = r.int(0, 2);
      const prefix = [field(`t/${text(r, 0, 5)}`), ...(qos > 0 ? [u16(r.int(1, 65535))] : [])];
      return build(r, 0x30 | (qos << 1) | r.int(0, 1), "publish", prefix, [Buffer.from(text(r, 0, 8))], valid);
    };
    run(
      0x9b1154,
      gen,
      3,
      (c) => {
        const body = bodyStart(c.frame);
        const got = decodePublish(c.frame, body, c.frame.length, c.frame[0]! & 0x0f, true, { lastTopicBytes: null, lastTopic: "" });
        if (!c.valid) return;
        const ref = reference(c.frame);
        // Rebuild the property object from the fields and the pass-through bytes.
        const props: Record<string, unknown> = {};
        if (got.props !== null) {
          const pt = got.props;
          Object.assign(props, reference(frameOf(0x30, Buffer.concat([field("x"), varint(pt.length), pt]))).properties);
        }
        if (got.expiry >= 0) props.messageExpiryInterval = got.expiry;
        if (got.alias > 0) props.topicAlias = got.alias;
        expect(plain(props)).toEqual(plain(ref.properties ?? {}));
        expect(got.topic).toBe(ref.topic);
        expect(Buffer.from(got.payload).equals(ref.payload)).toBe(true);
      },
      [0x81, 0x82, 0x94], // Topic Alias 0 → 0x94 [MQTT-3.3.2-8]
    );
  });

  test("PUBACK / PUBREC / PUBREL / PUBCOMP properties (v5 §3.4.2.2–§3.7.2.2) — decodeAck", () => {
    const gen = (r: Rng, valid: boolean): Case => {
      const type = r.int(4, 7);
      const codes = type <= 5 ? [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99] : [0x00, 0x92];
      return build(r, (type << 4) | (type === 6 ? 2 : 0), "ack", [u16(r.int(1, 65535)), Buffer.from([r.pick(codes)])], [], valid);
    };
    run(0xacc, gen, 4, (c) => {
      const type = c.frame[0]! >> 4;
      const got = decodeAck(type, c.frame, bodyStart(c.frame), c.frame.length, c.frame[0]! & 0x0f, true);
      if (!c.valid) return;
      const ref = reference(c.frame);
      expect([got.packetId, got.reason]).toEqual([ref.messageId, ref.reasonCode]);
    });
  });

  const rare: [string, number, number, Where, (r: Rng) => [Buffer[], Buffer[]]][] = [
    ["SUBSCRIBE (v5 §3.8.2.1)", 8, 0x82, "subscribe", (r) => [[u16(r.int(1, 65535))], [field(`s/${text(r, 0, 4)}`), Buffer.from([r.int(0, 2)])]]],
    ["UNSUBSCRIBE (v5 §3.10.2.1)", 10, 0xa2, "unsubscribe", (r) => [[u16(r.int(1, 65535))], [field(`s/${text(r, 0, 4)}`)]]],
    ["DISCONNECT (v5 §3.14.2.2)", 14, 0xe0, "disconnect", (r) => [[Buffer.from([r.pick([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x99])])], []]],
    ["AUTH (v5 §3.15.2.2)", 15, 0xf0, "auth", (r) => [[Buffer.from([r.pick([0x00, 0x18, 0x19])])], []]],
  ];
  for (const [name, type, b0, where, parts] of rare) {
    test(`${name} properties — raw property check + the shared mqtt-packet parser`, () => {
      const gen = (r: Rng, valid: boolean): Case => {
        const [prefix, suffix] = parts(r);
        return build(r, b0, where, prefix, suffix, valid);
      };
      run(0x5eed + type, gen, type, (c) => {
        const got = decodeRare(c.frame, type, bodyStart(c.frame));
        if (!c.valid) return;
        const ref = reference(c.frame);
        expect(plain(got)).toEqual(plain(ref));
      });
    });
  }
});
