/**
 * The one Variable Byte Integer codec (lib/protocol/varint.ts; v5 §1.5.5,
 * 3.1.1 §2.2.3): the reader's contract (value and `varintEnd`, -1 for
 * incomplete, -2 for a fourth byte with the continuation bit), the writer's
 * shortest form ([MQTT-1.5.5-1]) checked against mqtt-packet's Remaining
 * Length encoding, and `varintSize`.
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { readVarint, VARINT_INCOMPLETE, VARINT_MAX, VARINT_TOO_LONG, varintEnd, varintSize, writeVarint } from "../../lib/protocol/varint.ts";

const BOUNDARIES = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455];

describe("writeVarint / varintSize: the shortest form [MQTT-1.5.5-1], as mqtt-packet frames a Remaining Length", () => {
  for (const n of BOUNDARIES) {
    test(`${n}`, () => {
      const b = Buffer.alloc(8, 0xee);
      const end = writeVarint(b, 2, n);
      expect(end - 2).toBe(varintSize(n));
      // mqtt-packet writes the Remaining Length of a PUBLISH after its first byte: the same bytes.
      if (n <= 16_384) {
        const ref = mqtt.generate({ cmd: "publish", topic: "t", payload: Buffer.alloc(Math.max(0, n - 3)), qos: 0, retain: false, dup: false } as mqtt.IPublishPacket);
        if (n >= 3) expect(b.subarray(2, end).toString("hex")).toBe(ref.subarray(1, 1 + varintSize(n)).toString("hex"));
      }
      expect(readVarint(b, 2, b.length)).toBe(n);
      expect(varintEnd).toBe(end);
      expect(b[end]).toBe(0xee); // nothing written past it
    });
  }
  test("VARINT_MAX is the largest four-byte value (v5 §1.5.5)", () => {
    expect(VARINT_MAX).toBe(268_435_455);
    expect(varintSize(VARINT_MAX)).toBe(4);
  });
});

describe("readVarint contract", () => {
  test("the value, with varintEnd just after it; reading stops at the first byte without the continuation bit", () => {
    const b = Buffer.from([0x99, 0xc1, 0x02, 0x7f]); // 0x99: not part of it
    expect(readVarint(b, 1, b.length)).toBe(0x41 + 2 * 128);
    expect(varintEnd).toBe(3);
  });
  test("VARINT_INCOMPLETE (-1) when `end` comes before the last byte, even if the buffer has more", () => {
    expect(VARINT_INCOMPLETE).toBe(-1);
    expect(readVarint(Buffer.from([0x80, 0x80, 0x01]), 0, 2)).toBe(-1);
    expect(readVarint(Buffer.from([]), 0, 0)).toBe(-1);
    expect(readVarint(Buffer.from([0xff, 0xff, 0xff]), 0, 3)).toBe(-1);
  });
  test("VARINT_TOO_LONG (-2) for four bytes all with the continuation bit, whether or not a fifth has arrived (v5 §1.5.5)", () => {
    expect(VARINT_TOO_LONG).toBe(-2);
    expect(readVarint(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4)).toBe(-2);
    expect(readVarint(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), 0, 5)).toBe(-2);
    expect(readVarint(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x00]), 0, 5)).toBe(-2);
  });
  test("over-long but in-range forms are accepted (the shortest-form rule binds the sender) [MQTT-1.5.5-1]", () => {
    expect(readVarint(Buffer.from([0x80, 0x00]), 0, 2)).toBe(0);
    expect(varintEnd).toBe(2);
    expect(readVarint(Buffer.from([0x85, 0x80, 0x80, 0x00]), 0, 4)).toBe(5);
    expect(varintEnd).toBe(4);
  });
  test("a failed read leaves varintEnd alone", () => {
    readVarint(Buffer.from([0x05]), 0, 1);
    expect(varintEnd).toBe(1);
    expect(readVarint(Buffer.from([0x80]), 0, 1)).toBe(-1);
    expect(varintEnd).toBe(1);
  });
});
