/**
 * The v5 property table (lib/protocol/property-table.ts, v5 Table 2-4)
 * against mqtt-packet's own table, and the strict raw property walker
 * (lib/protocol/properties.ts `checkRawProps`) on hand-made sections: every
 * bound (v5 §2.2.2.1, §1.5.5), placement (v5 §2.2.2.2), repeats, 0/1 bytes,
 * Subscription Identifier 0 (v5 §3.8.2.1.2), UTF-8 ([MQTT-1.5.4-1],
 * [MQTT-1.5.4-2], [MQTT-1.5.7-1]). The walker must never read past `end`.
 */
import { describe, expect, test } from "bun:test";
import { checkRawProps } from "../../lib/protocol/properties.ts";
import { IN, PROPERTIES, type PropType, propertySpec, PT } from "../../lib/protocol/property-table.ts";
import { MqttError } from "../../lib/protocol/reason-codes.ts";
import { field, prop, u16, u32, varint } from "../helpers/bytes.ts";

// mqtt-packet's own property table (not part of its typed API).
const ref = require("mqtt-packet/constants.js") as { properties: Record<string, number>; propertiesTypes: Record<string, string> };

describe("the property table agrees with mqtt-packet's (ids, names, types)", () => {
  const typeOf: Record<string, PropType> = { byte: PT.Byte, int8: PT.Byte, int16: PT.U16, int32: PT.U32, var: PT.Varint, string: PT.Utf8, binary: PT.Binary, pair: PT.Pair };
  test("same identifiers and names", () => {
    expect(Object.fromEntries(PROPERTIES.map((p) => [p.name, p.id]))).toEqual(ref.properties);
  });
  for (const p of PROPERTIES) {
    test(`0x${p.id.toString(16)} ${p.name}: wire type`, () => {
      expect(p.type).toBe(typeOf[ref.propertiesTypes[p.name]!]!);
      expect(propertySpec(p.id)).toBe(p);
    });
  }
  test("undefined identifiers have no row", () => {
    for (const id of [0x00, 0x04, 0x0a, 0x10, 0x14, 0x1b, 0x1d, 0x20, 0x2b, 0x7f, 0x80, 0xff]) expect(propertySpec(id)).toBeUndefined();
  });
  test("placement of a few properties (v5 Table 2-4)", () => {
    const places = (id: number) => propertySpec(id)!.in;
    expect(places(0x23) & IN.CONNECT).toBe(0); // Topic Alias: PUBLISH only
    expect(places(0x18)).toBe(IN.WILL); // Will Delay Interval
    expect(places(0x1c) & (IN.CONNACK | IN.DISCONNECT)).toBe(IN.CONNACK | IN.DISCONNECT);
    for (const where of Object.values(IN)) expect(places(0x26) & where).toBe(where); // User Property: everywhere
  });
});

/** The code `checkRawProps` throws for `section` (Property Length included) in `where`, 0 when accepted, "other" for a non-MqttError. */
function code(section: Buffer | number[], where: number, extra: number[] = []): number | string {
  // Bytes after `end` that would make an unbounded read look valid.
  const bytes = Buffer.from([...section, ...extra]);
  const end = Buffer.from(section).length;
  const guard = Buffer.concat([bytes, Buffer.alloc(64, 0x01)]);
  try {
    expect(checkRawProps(guard, 0, end, where)).toBeLessThanOrEqual(end);
    return 0;
  } catch (e) {
    return e instanceof MqttError ? e.code : `other: ${e}`;
  }
}
const sec = (...props: Buffer[]) => {
  const body = Buffer.concat(props);
  return Buffer.concat([varint(body.length), body]);
};

describe("checkRawProps: bounds (never reads past the packet) → 0x81 (v5 §2.2.2.1, §1.5.5)", () => {
  const cases: [string, number[], number][] = [
    ["Property Length varint runs past the packet (AUTH f0 02 18 e5)", [0xe5], IN.AUTH],
    ["Property Length varint runs past the packet (SUBSCRIBE 82 03 00 01 e5)", [0xe5], IN.SUBSCRIBE],
    ["Property Length of five bytes", [0x80, 0x80, 0x80, 0x80, 0x00], IN.DISCONNECT],
    ["Property Length longer than the packet", [0x05, 0x1f, 0x00, 0x01], IN.DISCONNECT],
    ["User Property value overruns its section (DISCONNECT e0 07 04 05 26 00 00 00 05)", [0x05, 0x26, 0x00, 0x00, 0x00, 0x05], IN.DISCONNECT],
    ["User Property name length cut off", [0x02, 0x26, 0x00], IN.UNSUBSCRIBE],
    ["identifier with no value", [0x01, 0x1f], IN.AUTH],
    ["Session Expiry Interval cut short", [0x03, 0x11, 0x00, 0x00], IN.DISCONNECT],
    ["Subscription Identifier varint cut short", [0x02, 0x0b, 0x80], IN.SUBSCRIBE],
    ["Subscription Identifier of five bytes", [0x06, 0x0b, 0x81, 0x80, 0x80, 0x80, 0x01], IN.SUBSCRIBE],
    ["empty input", [], IN.DISCONNECT],
  ];
  for (const [name, bytes, where] of cases) {
    test(name, () => expect(code(bytes, where)).toBe(0x81));
  }
});

describe("checkRawProps: placement, repeats, values", () => {
  test("empty section and valid sections are accepted; returns the offset after the section", () => {
    expect(code([0x00], IN.SUBSCRIBE)).toBe(0);
    const s = sec(prop(0x0b, varint(268_435_455)), prop(0x26, field("k"), field("v")), prop(0x26, field("k"), field("v2")));
    expect(code(s, IN.SUBSCRIBE)).toBe(0);
    expect(checkRawProps(Buffer.concat([Buffer.from([9, 9]), s, Buffer.from([7])]), 2, 2 + s.length + 1, IN.SUBSCRIBE)).toBe(2 + s.length);
    expect(code(sec(prop(0x11, u32(0)), prop(0x1f, field("bye")), prop(0x1c, field("x"))), IN.DISCONNECT)).toBe(0);
    expect(code(sec(prop(0x15, field("SCRAM")), prop(0x16, field([0, 1, 2])), prop(0x1f, field(""))), IN.AUTH)).toBe(0);
  });
  test("unknown identifier → 0x81 (v5 §2.2.2.2)", () => {
    expect(code(sec(prop(0x7f, 0)), IN.AUTH)).toBe(0x81);
    expect(code(sec(prop(0x00)), IN.AUTH)).toBe(0x81);
  });
  test("identifier not allowed in the packet → 0x81 (v5 §2.2.2.2): Payload Format Indicator in SUBSCRIBE, Subscription Identifier in UNSUBSCRIBE, Reason String in SUBSCRIBE", () => {
    expect(code(sec(prop(0x01, 1)), IN.SUBSCRIBE)).toBe(0x81);
    expect(code(sec(prop(0x0b, 5)), IN.UNSUBSCRIBE)).toBe(0x81);
    expect(code(sec(prop(0x1f, field("r"))), IN.SUBSCRIBE)).toBe(0x81);
    expect(code(sec(prop(0x15, field("m"))), IN.DISCONNECT)).toBe(0x81);
  });
  test("a repeated single-valued property → 0x82, even when the first value is 0 or empty", () => {
    expect(code(sec(prop(0x0b, 5), prop(0x0b, 6)), IN.SUBSCRIBE)).toBe(0x82);
    expect(code(sec(prop(0x11, u32(0)), prop(0x11, u32(5))), IN.DISCONNECT)).toBe(0x82);
    expect(code(sec(prop(0x1f, field("")), prop(0x1f, field("x"))), IN.AUTH)).toBe(0x82);
  });
  test("Subscription Identifier 0 → 0x82 (v5 §3.8.2.1.2)", () => {
    expect(code(sec(prop(0x0b, 0)), IN.SUBSCRIBE)).toBe(0x82);
  });
  test("a 0/1 byte with another value → 0x82 (Request Problem Information 2 in CONNECT, v5 §3.1.2.11.7)", () => {
    expect(code(sec(prop(0x17, 2)), IN.CONNECT)).toBe(0x82);
    expect(code(sec(prop(0x17, 1)), IN.CONNECT)).toBe(0);
  });
  test("Topic Alias 0 → 0x94 [MQTT-3.3.2-8]; Receive Maximum 0 → 0x82 (v5 §3.1.2.11.3)", () => {
    expect(code(sec(prop(0x23, u16(0))), IN.PUBLISH)).toBe(0x94);
    expect(code(sec(prop(0x21, u16(0))), IN.CONNECT)).toBe(0x82);
  });
  const bad: [string, number[]][] = [
    ["C3 28", [0xc3, 0x28]],
    ["ED A0 80 (surrogate)", [0xed, 0xa0, 0x80]],
    ["C0 AF (over-long)", [0xc0, 0xaf]],
    ["U+0000", [0x61, 0x00]],
  ];
  for (const [what, bytes] of bad) {
    test(`Reason String / User Property name / value with ${what} → 0x81 [MQTT-1.5.4-1], [MQTT-1.5.4-2], [MQTT-1.5.7-1]`, () => {
      expect(code(sec(prop(0x1f, field(bytes))), IN.DISCONNECT)).toBe(0x81);
      expect(code(sec(prop(0x26, field(bytes), field("v"))), IN.UNSUBSCRIBE)).toBe(0x81);
      expect(code(sec(prop(0x26, field("k"), field(bytes))), IN.SUBSCRIBE)).toBe(0x81);
    });
  }
  test("Authentication Data is binary: any bytes", () => {
    expect(code(sec(prop(0x15, field("m")), prop(0x16, field([0xc3, 0x28, 0x00]))), IN.AUTH)).toBe(0);
  });
});
