/**
 * lib/protocol/codec.ts: the shared mqtt-packet decoders. Whatever a frame
 * holds, `decodeFrame` / `decodeChecked` return a packet or throw MqttError
 * (0x81 Malformed, 0x82 Protocol Error from the property walker) — never
 * anything else ([MQTT-4.13.1-1]) — and a refused frame never disturbs the
 * next one (the shared parser is replaced, DESIGN.md 7).
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { decodeChecked, decodeFrame, rawConnectLevel } from "../../lib/protocol/codec.ts";
import { MqttError } from "../../lib/protocol/reason-codes.ts";

type Ver = 3 | 4 | 5;

function outcome(f: () => unknown): number | string {
  try {
    f();
    return 0;
  } catch (e) {
    return e instanceof MqttError ? e.code : `${(e as Error)?.name}: ${(e as Error)?.message}`;
  }
}

const bodyOf = (frame: Buffer) => {
  let p = 1;
  while (frame[p++]! & 0x80);
  return p;
};
const checked = (frame: Buffer, version: Ver) => () => decodeChecked(frame[0]! >> 4, frame, 0, bodyOf(frame), frame.length, version);

describe("decodeChecked: v5 property sections that run past their bounds are Malformed (v5 §2.2.2.1, §1.5.5, [MQTT-1.5.7-1])", () => {
  const cases: [string, string][] = [
    ["AUTH", "f00218e5"],
    ["DISCONNECT", "e00200e5"],
    ["SUBSCRIBE", "82030001e5"],
    ["DISCONNECT, User Property value overrunning", "e00704052600000005"],
  ];
  for (const [name, hex] of cases) {
    test(`${name} ${hex} → 0x81`, () => {
      expect(outcome(checked(Buffer.from(hex, "hex"), 5))).toBe(0x81);
    });
  }
  test("the same bytes inside a larger buffer are not read past the frame's end", () => {
    // The next frame's bytes would complete the Property Length if the walker ignored `end`.
    const buf = Buffer.from("82030001e5c000e00200", "hex");
    expect(outcome(() => decodeChecked(8, buf, 0, 2, 5, 5))).toBe(0x81);
  });
  test("fixed-header flags are checked before the properties [MQTT-2.1.3-1], [MQTT-3.8.1-1]: 0x81 even when the properties repeat", () => {
    const sub = Buffer.from("800b0001040b050b0600017400", "hex"); // flags 0000, two Subscription Identifiers
    expect(outcome(checked(sub, 5))).toBe(0x81);
    sub[0] = 0x82;
    expect(outcome(checked(sub, 5))).toBe(0x82);
  });
  test("3.1.1 frames have no property section: decoded by mqtt-packet alone", () => {
    const sub = mqtt.generate({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "a/b", qos: 1 }] } as mqtt.ISubscribePacket);
    const p = decodeChecked(8, sub, 0, 2, sub.length, 4) as mqtt.ISubscribePacket;
    expect(p.subscriptions).toEqual([{ topic: "a/b", qos: 1 }]);
  });
});

describe("decodeFrame: random frames of every type and version → a packet or MqttError 0x81, and the next frame still decodes", () => {
  // Deterministic LCG: the same frames every run.
  let seed = 0x5eed;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  const goodSub = (v: Ver) => mqtt.generate({ cmd: "subscribe", messageId: 9, subscriptions: [{ topic: "ok/#", qos: 2 }], properties: v === 5 ? { subscriptionIdentifier: 4 } : undefined } as mqtt.ISubscribePacket, { protocolVersion: v });

  for (const v of [3, 4, 5] as const) {
    test(`protocol version ${v}: 3000 random frames`, () => {
      const odd: string[] = [];
      for (let i = 0; i < 3000 && odd.length < 5; i++) {
        const type = Math.floor(rnd() * 16);
        const flags = rnd() < 0.8 ? (type === 6 || type === 8 || type === 10 ? 2 : 0) : Math.floor(rnd() * 16);
        const body = Array.from({ length: Math.floor(rnd() * 24) }, () => (rnd() < 0.4 ? Math.floor(rnd() * 4) : Math.floor(rnd() * 256)));
        const frame = Buffer.from([(type << 4) | flags, body.length, ...body]);
        const got = outcome(() => decodeFrame(frame, v));
        if (got !== 0 && got !== 0x81) odd.push(`${frame.toString("hex")}: ${got}`);
        const next = decodeFrame(goodSub(v), v) as mqtt.ISubscribePacket;
        if (next.messageId !== 9 || next.subscriptions[0]?.topic !== "ok/#") odd.push(`${frame.toString("hex")}: next frame decoded wrong`);
      }
      expect(odd).toEqual([]);
    });
  }

  test("an incomplete frame is 0x81 and the shared parser is not left mid-packet", () => {
    const sub = goodSub(5);
    expect(outcome(() => decodeFrame(sub.subarray(0, sub.length - 1), 5))).toBe(0x81);
    expect((decodeFrame(sub, 5) as mqtt.ISubscribePacket).messageId).toBe(9);
  });
});

describe("rawConnectLevel", () => {
  test("reads the protocol level after the name; -1 when the frame is too short [MQTT-3.1.2-2]", () => {
    const c = mqtt.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, keepalive: 0, clientId: "x" } as mqtt.IConnectPacket, { protocolVersion: 5 });
    expect(rawConnectLevel(c)).toBe(5);
    const bad = Buffer.from(c);
    bad[8] = 9;
    expect(rawConnectLevel(bad)).toBe(9);
    expect(rawConnectLevel(Buffer.from([0x10, 0x03, 0x00, 0x04, 0x4d]))).toBe(-1);
    expect(rawConnectLevel(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]))).toBe(-1);
  });
});
