/**
 * The hand-written hot-path codec (lib/protocol/fast-codec.ts) against
 * mqtt-packet, the reference (DESIGN.md 7): every encoder byte for byte
 * against `mqtt.generate()`, every decoder field by field against
 * `mqtt.parser()` on the same bytes, and the malformed inputs each decoder
 * must refuse with the right reason code.
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { Message, type QoS } from "../../lib/message.ts";
import {
  PUBACK,
  PUBCOMP,
  PUBREC,
  PUBREL,
  decodeAck,
  decodePublish,
  varintSize,
  writeAck,
  writePingResp,
  writePublish,
} from "../../lib/protocol/fast-codec.ts";
import { Output } from "../../lib/protocol/output.ts";
import { MqttError, RC } from "../../lib/protocol/reason-codes.ts";
import { fieldList as str, u16List as u16, varint as encVarint } from "../helpers/bytes.ts";

/** writePublish with its header fields spelled out (the test tables list them positionally). */
function wp(
  out: Output,
  m: Message,
  v5: boolean,
  qos: QoS,
  packetId: number,
  dup: boolean,
  retain: boolean,
  subIds: readonly number[] | null,
  alias: number,
  sendTopic: boolean,
  maxSize: number,
  now: number,
): boolean {
  return writePublish(out, m, { v5, qos, packetId, dup, retain, subIds, alias, sendTopic, maxSize, now, topic: null });
}

type Ver = 4 | 5;
type Packet = Record<string, any>;
const NO_LIMIT = 268_435_460;
const NOW = 1_700_000_000_000;
/** The four acknowledgement packet types and their mqtt-packet `cmd`. */
const ACK_TYPES: [number, string][] = [
  [PUBACK, "puback"],
  [PUBREC, "pubrec"],
  [PUBREL, "pubrel"],
  [PUBCOMP, "pubcomp"],
];

/** mqtt-packet's encoding of `packet` for `version`. */
function gen(packet: Record<string, unknown>, version: Ver): Buffer {
  return mqtt.generate(packet as unknown as mqtt.Packet, { protocolVersion: version });
}

/** mqtt-packet's decoding of exactly one packet from `bytes`. */
function ref(bytes: Buffer, version: Ver): Packet {
  const parser = mqtt.parser({ protocolVersion: version });
  const got: Packet[] = [];
  const errors: Error[] = [];
  parser.on("packet", (p: Packet) => got.push(p));
  parser.on("error", (e: Error) => errors.push(e));
  const left = parser.parse(bytes);
  expect(errors).toEqual([]);
  expect(left).toBe(0);
  expect(got.length).toBe(1);
  return got[0]!;
}

/** Split a whole frame into what the decoders take: flags and the body range. */
function split(frame: Buffer): { type: number; flags: number; start: number; end: number } {
  let p = 1;
  while (frame[p]! & 0x80) p++;
  return { type: frame[0]! >> 4, flags: frame[0]! & 0x0f, start: p + 1, end: frame.length };
}

/** The bytes writePublish produced. */
function written(out: Output): Buffer {
  return Buffer.from(out.buf.subarray(0, out.len));
}

/** Run `fn` and return the MqttError it throws (fails the test otherwise). */
function mqttError(fn: () => unknown): MqttError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MqttError);
    return e as MqttError;
  }
  throw new Error("expected an MqttError, nothing was thrown");
}

/**
 * The property section bytes (without the length prefix) that mqtt-packet
 * encodes for `properties` in a v5 PUBLISH: what a Message keeps as `props`.
 */
function propsBytes(properties: Record<string, unknown>): Buffer {
  const frame = gen({ cmd: "publish", topic: "t", qos: 0, payload: Buffer.alloc(0), properties }, 5);
  const { start } = split(frame);
  let p = start + 2 + 1; // topic "t"
  let len = 0;
  let mul = 1;
  for (;;) {
    const b = frame[p++]!;
    len += (b & 0x7f) * mul;
    mul *= 128;
    if (!(b & 0x80)) break;
  }
  return Buffer.from(frame.subarray(p, p + len));
}

/** Wrap raw v5 property bytes in a PUBLISH and let mqtt-packet parse them. */
function reparseProps(props: Buffer | null): Record<string, unknown> | undefined {
  const body = Buffer.concat([Buffer.from([0, 1, 0x74]), encVarint(props?.length ?? 0), props ?? Buffer.alloc(0)]);
  const frame = Buffer.concat([Buffer.from([0x30]), encVarint(body.length), body]);
  return ref(frame, 5).properties as Record<string, unknown> | undefined;
}

function msg(topic: string, payload: Buffer, opts: { props?: Buffer | null; expiresAt?: number; qos?: QoS; retain?: boolean } = {}): Message {
  return new Message(topic, payload, opts.qos ?? 0, opts.retain ?? false, opts.props ?? null, opts.expiresAt ?? 0, "pub");
}

interface PubCase {
  name: string;
  topic: string;
  payload: Buffer;
  qos: QoS;
  dup: boolean;
  retain: boolean;
  id: number;
}

function pubCases(): PubCase[] {
  const cases: PubCase[] = [];
  for (const qos of [0, 1, 2] as const) {
    for (const dup of [false, true]) {
      for (const retain of [false, true]) {
        cases.push({ name: `qos ${qos} dup ${dup} retain ${retain}`, topic: "sensors/room1/temp", payload: Buffer.from("21.5"), qos, dup, retain, id: qos ? 0x1234 : 0 });
      }
    }
  }
  cases.push({ name: "empty payload", topic: "a", payload: Buffer.alloc(0), qos: 1, dup: false, retain: true, id: 1 });
  cases.push({ name: "packet id 65535", topic: "a/b", payload: Buffer.from("x"), qos: 2, dup: false, retain: false, id: 65535 });
  cases.push({ name: "non-ASCII topic", topic: "température/日本/😀/ü", payload: Buffer.from("héllo"), qos: 1, dup: false, retain: false, id: 7 });
  cases.push({ name: "topic with empty levels and a leading slash", topic: "/a//b/", payload: Buffer.from("y"), qos: 0, dup: false, retain: false, id: 0 });
  cases.push({ name: "binary payload of 47 bytes (byte loop)", topic: "t", payload: Buffer.from(Array.from({ length: 47 }, (_, i) => (i * 37) & 0xff)), qos: 0, dup: false, retain: false, id: 0 });
  cases.push({ name: "binary payload of 48 bytes (set)", topic: "t", payload: Buffer.from(Array.from({ length: 48 }, (_, i) => (i * 91) & 0xff)), qos: 0, dup: false, retain: false, id: 0 });
  cases.push({ name: "topic of 48 bytes", topic: "x".repeat(48), payload: Buffer.from("z"), qos: 0, dup: false, retain: false, id: 0 });
  return cases;
}

describe("writePublish vs mqtt.generate", () => {
  for (const version of [4, 5] as const) {
    for (const c of pubCases()) {
      test(`v${version}: ${c.name}`, () => {
        const out = new Output();
        const ok = wp(out, msg(c.topic, c.payload), version === 5, c.qos, c.id, c.dup, c.retain, null, 0, true, NO_LIMIT, NOW);
        expect(ok).toBe(true);
        const expected = gen({ cmd: "publish", topic: c.topic, payload: c.payload, qos: c.qos, dup: c.dup, retain: c.retain, messageId: c.qos ? c.id : undefined }, version);
        expect(written(out)).toEqual(expected);
      });
    }

    // Remaining Length of 1, 2 and 3 bytes, and the exact boundaries between them.
    const sizes: [string, number, number][] = [
      ["RL 127 (1 byte)", 127 - 2 - 1 - (version === 5 ? 1 : 0), 1],
      ["RL 128 (2 bytes)", 128 - 2 - 1 - (version === 5 ? 1 : 0), 2],
      ["200-byte payload (2 bytes)", 200, 2],
      ["RL 16383 (2 bytes)", 16383 - 2 - 1 - (version === 5 ? 1 : 0), 2],
      ["RL 16384 (3 bytes)", 16384 - 2 - 1 - (version === 5 ? 1 : 0), 3],
      ["70 KB payload (3 bytes)", 70 * 1024, 3],
    ];
    for (const [name, size, rlBytes] of sizes) {
      test(`v${version}: ${name}`, () => {
        const payload = Buffer.alloc(size);
        for (let i = 0; i < size; i++) payload[i] = (i * 131 + 7) & 0xff;
        const out = new Output();
        expect(wp(out, msg("t", payload), version === 5, 0, 0, false, false, null, 0, true, NO_LIMIT, NOW)).toBe(true);
        const bytes = written(out);
        expect(bytes).toEqual(gen({ cmd: "publish", topic: "t", payload, qos: 0 }, version));
        // The Remaining Length field has the expected size: continuation bits on all but its last byte.
        for (let i = 1; i < rlBytes; i++) expect(bytes[i]! & 0x80).toBe(0x80);
        expect(bytes[rlBytes]! & 0x80).toBe(0);
        expect(bytes.length).toBe(1 + rlBytes + 2 + 1 + (version === 5 ? 1 : 0) + size);
      });
    }
  }

  test("consecutive packets are appended to the same Output", () => {
    const out = new Output();
    wp(out, msg("a", Buffer.from("1")), false, 1, 1, false, false, null, 0, true, NO_LIMIT, NOW);
    writeAck(out, PUBACK, 9, 0, false);
    wp(out, msg("b", Buffer.alloc(20_000, 0x61)), false, 0, 0, false, true, null, 0, true, NO_LIMIT, NOW); // forces a grow
    writePingResp(out);
    expect(written(out)).toEqual(
      Buffer.concat([
        gen({ cmd: "publish", topic: "a", payload: Buffer.from("1"), qos: 1, messageId: 1 }, 4),
        gen({ cmd: "puback", messageId: 9 }, 4),
        gen({ cmd: "publish", topic: "b", payload: Buffer.alloc(20_000, 0x61), qos: 0, retain: true }, 4),
        gen({ cmd: "pingresp" }, 4),
      ]),
    );
  });
});

describe("writePublish v5 properties vs mqtt.generate", () => {
  const passThrough = {
    payloadFormatIndicator: true,
    contentType: "application/json; charset=utf-8",
    responseTopic: "reply/ß",
    correlationData: Buffer.from([0, 1, 2, 0xff]),
    userProperties: { region: "eu", tag: ["a", "b"], "ключ": "значение" },
  };

  test("Message Expiry: the seconds left, exact [MQTT-3.3.2-6]", () => {
    const out = new Output();
    const m = msg("e/x", Buffer.from("p"), { expiresAt: NOW + 30_000 });
    expect(wp(out, m, true, 1, 5, false, false, null, 0, true, NO_LIMIT, NOW)).toBe(true);
    expect(written(out)).toEqual(gen({ cmd: "publish", topic: "e/x", payload: Buffer.from("p"), qos: 1, messageId: 5, properties: { messageExpiryInterval: 30 } }, 5));
  });

  test("Message Expiry: a partial second rounds up (29.5 s left → 30)", () => {
    const out = new Output();
    wp(out, msg("e/x", Buffer.from("p"), { expiresAt: NOW + 29_500 }), true, 0, 0, false, false, null, 0, true, NO_LIMIT, NOW);
    expect(written(out)).toEqual(gen({ cmd: "publish", topic: "e/x", payload: Buffer.from("p"), qos: 0, properties: { messageExpiryInterval: 30 } }, 5));
  });

  test("Message Expiry: 0xFFFFFFFE seconds left", () => {
    const out = new Output();
    wp(out, msg("e/x", Buffer.from("p"), { expiresAt: NOW + 0xfffffffe * 1000 }), true, 0, 0, false, false, null, 0, true, NO_LIMIT, NOW);
    expect(written(out)).toEqual(gen({ cmd: "publish", topic: "e/x", payload: Buffer.from("p"), qos: 0, properties: { messageExpiryInterval: 0xfffffffe } }, 5));
  });

  test("Message Expiry is not written for v4 (no properties at all)", () => {
    const out = new Output();
    wp(out, msg("e/x", Buffer.from("p"), { expiresAt: NOW + 30_000, props: propsBytes(passThrough) }), false, 0, 0, false, false, [3], 4, true, NO_LIMIT, NOW);
    expect(written(out)).toEqual(gen({ cmd: "publish", topic: "e/x", payload: Buffer.from("p"), qos: 0 }, 4));
  });

  for (const ids of [[1], [200], [268_435_455], [1, 200, 268_435_455], [127, 128, 16383, 16384, 2_097_151, 2_097_152]]) {
    test(`Subscription Identifiers ${ids.join(", ")} [MQTT-3.3.4-3]`, () => {
      const out = new Output();
      wp(out, msg("s/i", Buffer.from("v")), true, 2, 300, false, false, ids, 0, true, NO_LIMIT, NOW);
      expect(written(out)).toEqual(
        gen({ cmd: "publish", topic: "s/i", payload: Buffer.from("v"), qos: 2, messageId: 300, properties: { subscriptionIdentifier: ids } }, 5),
      );
      const parsed = ref(written(out), 5);
      const got = parsed.properties!.subscriptionIdentifier;
      expect(Array.isArray(got) ? got : [got]).toEqual(ids);
    });
  }

  test("Topic Alias with the topic sent", () => {
    const out = new Output();
    wp(out, msg("alias/t", Buffer.from("v")), true, 0, 0, false, false, null, 9, true, NO_LIMIT, NOW);
    expect(written(out)).toEqual(gen({ cmd: "publish", topic: "alias/t", payload: Buffer.from("v"), qos: 0, properties: { topicAlias: 9 } }, 5));
  });

  test("Topic Alias with an empty topic (sendTopic = false)", () => {
    const out = new Output();
    wp(out, msg("alias/t", Buffer.from("v")), true, 1, 2, false, false, null, 65535, false, NO_LIMIT, NOW);
    expect(written(out)).toEqual(gen({ cmd: "publish", topic: "", payload: Buffer.from("v"), qos: 1, messageId: 2, properties: { topicAlias: 65535 } }, 5));
  });

  test("pass-through properties are copied unchanged [MQTT-3.3.2-4], [MQTT-3.3.2-15..20]", () => {
    const out = new Output();
    wp(out, msg("p/t", Buffer.from("{}"), { props: propsBytes(passThrough) }), true, 1, 77, false, true, null, 0, true, NO_LIMIT, NOW);
    const bytes = written(out);
    expect(bytes).toEqual(gen({ cmd: "publish", topic: "p/t", payload: Buffer.from("{}"), qos: 1, messageId: 77, retain: true, properties: passThrough }, 5));
    expect(ref(bytes, 5).properties).toEqual(passThrough);
  });

  test("everything at once: expiry, identifiers, alias, pass-through, 70 KB payload", () => {
    const payload = Buffer.alloc(70 * 1024, 0x5a);
    const out = new Output();
    const m = msg("all/of/it", payload, { props: propsBytes(passThrough), expiresAt: NOW + 3_600_000 });
    wp(out, m, true, 2, 4242, true, true, [1, 200, 268_435_455], 12, true, NO_LIMIT, NOW);
    const expected = gen(
      {
        cmd: "publish",
        topic: "all/of/it",
        payload,
        qos: 2,
        dup: true,
        retain: true,
        messageId: 4242,
        properties: { messageExpiryInterval: 3600, subscriptionIdentifier: [1, 200, 268_435_455], topicAlias: 12, ...passThrough },
      },
      5,
    );
    expect(written(out)).toEqual(expected);
    const parsed = ref(written(out), 5);
    expect(parsed.properties).toMatchObject({ messageExpiryInterval: 3600, topicAlias: 12, ...passThrough });
  });
});

describe("writePublish and the client's Maximum Packet Size [MQTT-3.1.2-24]", () => {
  for (const version of [4, 5] as const) {
    test(`v${version}: exactly maxSize is written; one byte less returns false and writes nothing`, () => {
      const m = msg("size/t", Buffer.alloc(300, 1), { props: version === 5 ? propsBytes({ contentType: "x" }) : null, expiresAt: NOW + 10_000 });
      const full = new Output();
      expect(wp(full, m, version === 5, 1, 1, false, false, version === 5 ? [5] : null, 0, true, NO_LIMIT, NOW)).toBe(true);
      const size = full.len;

      const exact = new Output();
      expect(wp(exact, m, version === 5, 1, 1, false, false, version === 5 ? [5] : null, 0, true, size, NOW)).toBe(true);
      expect(exact.len).toBe(size);

      const out = new Output();
      writePingResp(out); // something already pending must survive untouched
      const before = written(out);
      expect(wp(out, m, version === 5, 1, 1, false, false, version === 5 ? [5] : null, 0, true, size - 1, NOW)).toBe(false);
      expect(out.len).toBe(before.length);
      expect(written(out)).toEqual(before);
    });
  }

  test("an empty Output stays empty (no buffer taken) when the packet is too large", () => {
    const out = new Output();
    expect(wp(out, msg("t", Buffer.alloc(100)), true, 0, 0, false, false, null, 0, true, 50, NOW)).toBe(false);
    expect(out.len).toBe(0);
    expect(out.buf.length).toBe(0);
  });
});

describe("writeAck vs mqtt.generate", () => {
  for (const [type, cmd] of ACK_TYPES) {
    for (const id of [1, 0x1234, 65535]) {
      test(`${cmd} v4 id ${id}`, () => {
        const out = new Output();
        writeAck(out, type, id, 0, false);
        expect(written(out)).toEqual(gen({ cmd, messageId: id }, 4));
      });
      test(`${cmd} v5 id ${id}, reason 0x00 omitted`, () => {
        const out = new Output();
        writeAck(out, type, id, 0, true);
        expect(written(out)).toEqual(gen({ cmd, messageId: id, reasonCode: 0 }, 5));
        expect(out.len).toBe(4);
      });
    }
    const codes = type === PUBACK || type === PUBREC ? [0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99] : [0x92];
    for (const code of codes) {
      test(`${cmd} v5 reason 0x${code.toString(16)}`, () => {
        const out = new Output();
        writeAck(out, type, 0x0102, code, true);
        const bytes = written(out);
        // mqtt-packet writes Remaining Length 4 with an empty Property Length (0x00);
        // writeAck uses the shorter form the spec allows (v5 §3.4.2.2.1: "If the
        // Remaining Length is less than 4 there is no Property Length and the value
        // of 0 is used"). Same bytes otherwise, and the reference parser reads both alike.
        const reference = gen({ cmd, messageId: 0x0102, reasonCode: code }, 5);
        expect(reference[1]).toBe(4);
        expect(reference[5]).toBe(0);
        const short = Buffer.from([reference[0]!, 3, ...reference.subarray(2, 5)]);
        expect(bytes).toEqual(short);
        const parsed = ref(bytes, 5);
        const parsedRef = ref(reference, 5);
        expect(parsed.cmd).toBe(cmd);
        expect(parsed.messageId).toBe(0x0102);
        expect(parsed.reasonCode).toBe(code);
        expect(parsed.cmd).toBe(parsedRef.cmd);
        expect(parsed.messageId).toBe(parsedRef.messageId);
        expect(parsed.reasonCode).toBe(parsedRef.reasonCode);
      });
    }
  }

  test("pingresp", () => {
    const out = new Output();
    writePingResp(out);
    expect(written(out)).toEqual(gen({ cmd: "pingresp" }, 4));
    expect(written(out)).toEqual(gen({ cmd: "pingresp" }, 5));
  });
});

/** decodePublish's shared result, copied so a later decode cannot change it. */
function decodeCopy(frame: Buffer, v5: boolean) {
  const { flags, start, end } = split(frame);
  const f = decodePublish(frame, start, end, flags, v5);
  return { ...f, payload: Buffer.from(f.payload), props: f.props === null ? null : Buffer.from(f.props) };
}

describe("decodePublish vs mqtt.parser", () => {
  for (const version of [4, 5] as const) {
    for (const c of pubCases()) {
      if (c.qos === 0 && c.dup) continue; // refused, see below
      test(`v${version}: ${c.name}`, () => {
        const frame = gen({ cmd: "publish", topic: c.topic, payload: c.payload, qos: c.qos, dup: c.dup, retain: c.retain, messageId: c.qos ? c.id : undefined }, version);
        const p = ref(frame, version);
        const f = decodeCopy(frame, version === 5);
        expect(f.topic).toBe(p.topic);
        expect(f.qos).toBe(p.qos);
        expect(f.retain).toBe(p.retain);
        expect(f.dup).toBe(p.dup);
        expect(f.packetId).toBe(c.qos ? p.messageId : 0);
        expect(f.payload).toEqual(Buffer.from(p.payload));
        expect(f.props).toBeNull();
        expect(f.expiry).toBe(-1);
        expect(f.alias).toBe(0);
      });
    }
    test(`v${version}: 70 KB payload`, () => {
      const payload = Buffer.alloc(70 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 13) & 0xff;
      const frame = gen({ cmd: "publish", topic: "big/one", payload, qos: 1, messageId: 3 }, version);
      const p = ref(frame, version);
      const f = decodeCopy(frame, version === 5);
      expect(f.topic).toBe("big/one");
      expect(f.payload).toEqual(Buffer.from(p.payload));
      expect(f.payload.length).toBe(70 * 1024);
    });
  }

  test("the payload is a view of the frame and the decode honours start/end inside a larger buffer", () => {
    const frame = gen({ cmd: "publish", topic: "in/the/middle", payload: Buffer.from("abc"), qos: 1, messageId: 10 }, 4);
    const big = Buffer.concat([Buffer.from([9, 9, 9]), frame, Buffer.from([0x30, 0x30, 0x30])]);
    const { flags, start, end } = split(frame);
    const f = decodePublish(big, start + 3, end + 3, flags, false);
    expect(f.topic).toBe("in/the/middle");
    expect(f.packetId).toBe(10);
    expect(f.payload.toString()).toBe("abc");
  });

  const props = {
    payloadFormatIndicator: true,
    messageExpiryInterval: 60,
    contentType: "text/plain",
    topicAlias: 3,
    responseTopic: "resp/t",
    correlationData: Buffer.from([1, 2, 3]),
    userProperties: { k: "v", multi: ["1", "2"], "ü": "€" },
  };

  test("v5 properties: expiry and alias are read, everything else passes through unchanged", () => {
    const frame = gen({ cmd: "publish", topic: "v5/p", payload: Buffer.from("body"), qos: 2, messageId: 99, properties: props }, 5);
    const p = ref(frame, 5);
    const f = decodeCopy(frame, true);
    expect(f.topic).toBe(p.topic);
    expect(f.packetId).toBe(p.messageId);
    expect(f.payload).toEqual(Buffer.from(p.payload));
    expect(f.expiry).toBe(p.properties!.messageExpiryInterval!);
    expect(f.alias).toBe(p.properties!.topicAlias!);
    expect(f.pfi).toBe(1);
    const { messageExpiryInterval: _e, topicAlias: _a, ...rest } = p.properties as Record<string, unknown>;
    expect(reparseProps(f.props)).toEqual(rest);
  });

  const orders: [string, Record<string, unknown>, Record<string, unknown> | undefined][] = [
    ["no properties", {}, undefined],
    ["only expiry", { messageExpiryInterval: 5 }, undefined],
    ["only alias", { topicAlias: 1 }, undefined],
    ["expiry and alias", { topicAlias: 1, messageExpiryInterval: 5 }, undefined],
    ["pass-through only", { contentType: "c", userProperties: { a: "b" } }, { contentType: "c", userProperties: { a: "b" } }],
    ["expiry first", { messageExpiryInterval: 5, contentType: "c", userProperties: { a: "b" } }, { contentType: "c", userProperties: { a: "b" } }],
    ["expiry in the middle", { contentType: "c", messageExpiryInterval: 5, userProperties: { a: "b" } }, { contentType: "c", userProperties: { a: "b" } }],
    ["expiry and alias last", { contentType: "c", userProperties: { a: "b" }, messageExpiryInterval: 5, topicAlias: 7 }, { contentType: "c", userProperties: { a: "b" } }],
    ["alias between pass-through entries", { payloadFormatIndicator: false, topicAlias: 2, correlationData: Buffer.from("x"), messageExpiryInterval: 1, responseTopic: "r" }, { payloadFormatIndicator: false, correlationData: Buffer.from("x"), responseTopic: "r" }],
  ];
  for (const [name, input, passed] of orders) {
    test(`v5 pass-through bytes re-parsed: ${name}`, () => {
      const frame = gen({ cmd: "publish", topic: "o/p", payload: Buffer.from("z"), qos: 0, properties: input }, 5);
      const p = ref(frame, 5);
      const f = decodeCopy(frame, true);
      expect(f.expiry).toBe((p.properties?.messageExpiryInterval as number | undefined) ?? -1);
      expect(f.alias).toBe((p.properties?.topicAlias as number | undefined) ?? 0);
      if (passed === undefined) expect(f.props).toBeNull();
      else expect(reparseProps(f.props)).toEqual(passed);
      expect(f.payload.toString()).toBe("z");
    });
  }

  test("round trip: decode, build a Message, encode again = mqtt.generate of the forwarded packet", () => {
    const frame = gen({ cmd: "publish", topic: "rt/x", payload: Buffer.from("data"), qos: 1, messageId: 5, properties: props }, 5);
    const f = decodeCopy(frame, true);
    const now = NOW;
    const m = new Message(f.topic, f.payload, f.qos, f.retain, f.props, now + f.expiry * 1000, "c");
    const out = new Output();
    wp(out, m, true, 1, 6, false, false, [42], 0, true, NO_LIMIT, now);
    const { topicAlias: _a, messageExpiryInterval: _e, ...rest } = props;
    expect(written(out)).toEqual(
      gen({ cmd: "publish", topic: "rt/x", payload: Buffer.from("data"), qos: 1, messageId: 6, properties: { messageExpiryInterval: 60, subscriptionIdentifier: 42, ...rest } }, 5),
    );
  });

  test("v4 frame decoded as v4 keeps v5-looking bytes in the payload", () => {
    // In 3.1.1 there is no property section: a first payload byte of 0 is payload.
    const frame = gen({ cmd: "publish", topic: "t", payload: Buffer.from([0, 1, 2]), qos: 0 }, 4);
    const f = decodeCopy(frame, false);
    expect([...f.payload]).toEqual([0, 1, 2]);
    expect(f.props).toBeNull();
  });
});

describe("decodePublish refusals", () => {
  /** A PUBLISH body: topic, packet id when qos > 0, v5 property bytes when given, payload. */
  function body(opts: { topic?: number[]; id?: number; props?: number[]; payload?: number[] } = {}): Buffer {
    const parts: number[] = [...(opts.topic ?? str("a/b"))];
    if (opts.id !== undefined) parts.push(...u16(opts.id));
    if (opts.props !== undefined) parts.push(...encVarint(opts.props.length), ...opts.props);
    parts.push(...(opts.payload ?? [0x68, 0x69]));
    return Buffer.from(parts);
  }
  const dec = (b: Buffer, flags: number, v5: boolean) => () => decodePublish(b, 0, b.length, flags, v5);

  for (const v5 of [false, true]) {
    const v = v5 ? "v5" : "v4";
    test(`${v}: QoS 3 is malformed [MQTT-3.3.1-4]`, () => {
      expect(mqttError(dec(body({ id: 1, props: v5 ? [] : undefined }), 0b0110, v5)).code).toBe(RC.MALFORMED_PACKET);
    });
    test(`${v}: DUP on QoS 0 is malformed [MQTT-3.3.1-2]`, () => {
      expect(mqttError(dec(body({ props: v5 ? [] : undefined }), 0b1000, v5)).code).toBe(RC.MALFORMED_PACKET);
    });
    test(`${v}: packet identifier 0 on QoS 1 and 2 is a protocol error [MQTT-2.3.1-1] / [MQTT-2.2.1-3]`, () => {
      expect(mqttError(dec(body({ id: 0, props: v5 ? [] : undefined }), 0b0010, v5)).code).toBe(RC.PROTOCOL_ERROR);
      expect(mqttError(dec(body({ id: 0, props: v5 ? [] : undefined }), 0b0100, v5)).code).toBe(RC.PROTOCOL_ERROR);
    });
    const badTopics: [string, number[]][] = [
      ["lone continuation byte", [0x61, 0x80]],
      ["truncated 2-byte sequence", [0xc3]],
      ["overlong '/' (C0 AF)", [0xc0, 0xaf]],
      ["overlong 3-byte NUL (E0 80 80)", [0xe0, 0x80, 0x80]],
      ["encoded surrogate U+D800 (ED A0 80)", [0xed, 0xa0, 0x80]],
      ["beyond U+10FFFF (F4 90 80 80)", [0xf4, 0x90, 0x80, 0x80]],
      ["invalid byte FF", [0x61, 0xff]],
      ["U+0000", [0x61, 0x00, 0x62]],
      ["U+0000 after a multibyte char", [0xc3, 0xa9, 0x00]],
    ];
    for (const [name, bytes] of badTopics) {
      test(`${v}: topic with ${name} is malformed [MQTT-3.3.2-1] / [MQTT-4.7.3-2]`, () => {
        expect(mqttError(dec(body({ topic: str(bytes), props: v5 ? [] : undefined }), 0, v5)).code).toBe(RC.MALFORMED_PACKET);
      });
    }
    test(`${v}: topic length past the end is malformed`, () => {
      const b = Buffer.from([0x00, 0x10, 0x61, 0x62]);
      expect(mqttError(dec(b, 0, v5)).code).toBe(RC.MALFORMED_PACKET);
      expect(mqttError(dec(Buffer.from([0x00]), 0, v5)).code).toBe(RC.MALFORMED_PACKET);
      expect(mqttError(dec(Buffer.alloc(0), 0, v5)).code).toBe(RC.MALFORMED_PACKET);
    });
    test(`${v}: packet id missing on QoS 1 is malformed`, () => {
      const b = Buffer.from(str("a/b").concat([0x00]));
      expect(mqttError(dec(b, 0b0010, v5)).code).toBe(RC.MALFORMED_PACKET);
    });
    test(`${v}: a topic whose length reaches exactly the end decodes (empty payload)`, () => {
      const b = Buffer.from(v5 ? [...str("a/b"), 0] : str("a/b"));
      const f = decodePublish(b, 0, b.length, 0, v5);
      expect(f.topic).toBe("a/b");
      expect(f.payload.length).toBe(0);
    });
  }

  test("v5: topic bytes EF BB BF are kept as U+FEFF (no BOM stripping) [MQTT-1.5.4-3]", () => {
    const b = body({ topic: str([0xef, 0xbb, 0xbf, 0x61]), props: [] });
    expect(decodePublish(b, 0, b.length, 0, true).topic).toBe("\uFEFFa");
  });

  const dupCases: [string, number[]][] = [
    ["Payload Format Indicator", [0x01, 0, 0x01, 1]],
    ["Message Expiry Interval", [0x02, 0, 0, 0, 5, 0x02, 0, 0, 0, 6]],
    ["Content Type", [0x03, ...str("a"), 0x03, ...str("b")]],
    ["Response Topic", [0x08, ...str("r"), 0x08, ...str("r")]],
    ["Correlation Data", [0x09, 0, 1, 7, 0x09, 0, 1, 8]],
    ["Topic Alias", [0x23, 0, 1, 0x23, 0, 2]],
  ];
  for (const [name, props] of dupCases) {
    test(`v5: ${name} twice is a protocol error (§2.2.2.2)`, () => {
      expect(mqttError(dec(body({ props }), 0, true)).code).toBe(RC.PROTOCOL_ERROR);
    });
  }

  test("v5: User Property may repeat", () => {
    const b = body({ props: [0x26, ...str("k"), ...str("1"), 0x26, ...str("k"), ...str("2")] });
    const f = decodePublish(b, 0, b.length, 0, true);
    expect(reparseProps(f.props)).toEqual({ userProperties: { k: ["1", "2"] } });
  });

  test("v5: a Subscription Identifier from a client is a protocol error [MQTT-3.3.4-6]", () => {
    expect(mqttError(dec(body({ props: [0x0b, 0x01] }), 0, true)).code).toBe(RC.PROTOCOL_ERROR);
    expect(mqttError(dec(body({ id: 4, props: [0x03, ...str("c"), 0x0b, 0x05] }), 0b0010, true)).code).toBe(RC.PROTOCOL_ERROR);
  });

  for (const [name, id] of [
    ["unknown identifier 0x7F", 0x7f],
    ["Session Expiry Interval (CONNECT only)", 0x11],
    ["Reason String (not in PUBLISH)", 0x1f],
    ["Receive Maximum", 0x21],
    ["Will Delay Interval", 0x18],
  ] as const) {
    test(`v5: ${name} is malformed (§2.2.2.2)`, () => {
      expect(mqttError(dec(body({ props: [id, 0, 0, 0, 1] }), 0, true)).code).toBe(RC.MALFORMED_PACKET);
    });
  }

  test("v5: Topic Alias 0 is Topic Alias invalid [MQTT-3.3.2-8]", () => {
    expect(mqttError(dec(body({ props: [0x23, 0, 0] }), 0, true)).code).toBe(RC.TOPIC_ALIAS_INVALID);
  });

  test("v5: Payload Format Indicator 2 is malformed", () => {
    expect(mqttError(dec(body({ props: [0x01, 2] }), 0, true)).code).toBe(RC.MALFORMED_PACKET);
  });

  test("v5: Response Topic with a wildcard is a protocol error [MQTT-3.3.2-14]", () => {
    expect(mqttError(dec(body({ props: [0x08, ...str("a/+")] }), 0, true)).code).toBe(RC.PROTOCOL_ERROR);
    expect(mqttError(dec(body({ props: [0x08, ...str("#")] }), 0, true)).code).toBe(RC.PROTOCOL_ERROR);
  });

  test("v5: bad UTF-8 in Content Type or a User Property half is malformed [MQTT-1.5.7-1]", () => {
    expect(mqttError(dec(body({ props: [0x03, ...str([0xc0, 0x80])] }), 0, true)).code).toBe(RC.MALFORMED_PACKET);
    expect(mqttError(dec(body({ props: [0x26, ...str("k"), ...str([0xed, 0xbf, 0xbf])] }), 0, true)).code).toBe(RC.MALFORMED_PACKET);
    expect(mqttError(dec(body({ props: [0x26, ...str([0x00]), ...str("v")] }), 0, true)).code).toBe(RC.MALFORMED_PACKET);
  });

  test("v5: property section or a property running past the end is malformed", () => {
    // Property Length 10 with only 2 bytes left in the packet.
    const b1 = Buffer.from([...str("a"), 10, 0x01, 0x00]);
    expect(mqttError(dec(b1, 0, true)).code).toBe(RC.MALFORMED_PACKET);
    // Message Expiry cut short inside its section.
    const b2 = Buffer.from([...str("a"), 3, 0x02, 0, 0, 0x61, 0x62]);
    expect(mqttError(dec(b2, 0, true)).code).toBe(RC.MALFORMED_PACKET);
    // Content Type string longer than the section.
    const b3 = Buffer.from([...str("a"), 4, 0x03, 0, 9, 0x61, 0x62, 0x63]);
    expect(mqttError(dec(b3, 0, true)).code).toBe(RC.MALFORMED_PACKET);
    // No property length byte at all.
    const b4 = Buffer.from(str("a"));
    expect(mqttError(dec(b4, 0, true)).code).toBe(RC.MALFORMED_PACKET);
    // A 5-byte property length varint.
    const b5 = Buffer.from([...str("a"), 0x80, 0x80, 0x80, 0x80, 0x01]);
    expect(mqttError(dec(b5, 0, true)).code).toBe(RC.MALFORMED_PACKET);
  });
});

describe("decodeAck vs mqtt.parser", () => {
  for (const [type, cmd] of ACK_TYPES) {
    const variants: [string, Ver, Record<string, unknown>][] = [
      ["v4", 4, { messageId: 0x4321 }],
      ["v5 no reason", 5, { messageId: 1, reasonCode: 0 }],
      ["v5 reason", 5, { messageId: 65535, reasonCode: type === PUBACK || type === PUBREC ? 0x10 : 0x92 }],
      ["v5 reason 0 with empty properties", 5, { messageId: 8, reasonCode: 0, properties: {} }],
      ["v5 reason and properties", 5, { messageId: 300, reasonCode: type === PUBACK || type === PUBREC ? 0x97 : 0x92, properties: { reasonString: "why ü", userProperties: { a: "1", b: ["2", "3"] } } }],
    ];
    for (const [name, version, fields] of variants) {
      test(`${cmd} ${name}`, () => {
        const frame = gen({ cmd, ...fields }, version);
        const p = ref(frame, version);
        const { flags, start, end } = split(frame);
        const a = decodeAck(type, frame, start, end, flags, version === 5);
        expect(a.packetId).toBe(p.messageId!);
        expect(a.reason).toBe((p.reasonCode as number | undefined) ?? 0);
      });
    }
  }

  test("v5 reason code with Property Length 0 (length 4)", () => {
    const frame = Buffer.from([0x40, 4, 0, 5, 0x87, 0]);
    const p = ref(frame, 5);
    const a = decodeAck(PUBACK, frame, 2, frame.length, 0, true);
    expect(a.packetId).toBe(p.messageId!);
    expect(a.reason).toBe(0x87);
  });
});

describe("decodeAck refusals", () => {
  const dec = (type: number, bytes: number[], flags: number, v5: boolean) => () => {
    const b = Buffer.from(bytes);
    return decodeAck(type, b, 0, b.length, flags, v5);
  };

  for (const v5 of [false, true]) {
    const v = v5 ? "v5" : "v4";
    test(`${v}: fixed-header flags other than 0000 (PUBREL 0010) are malformed [MQTT-2.2.2-1] / [MQTT-3.6.1-1]`, () => {
      for (const type of [PUBACK, PUBREC, PUBCOMP]) {
        for (const flags of [1, 2, 4, 8, 15]) expect(mqttError(dec(type, [0, 1], flags, v5)).code).toBe(RC.MALFORMED_PACKET);
      }
      for (const flags of [0, 1, 3, 4, 8, 10]) expect(mqttError(dec(PUBREL, [0, 1], flags, v5)).code).toBe(RC.MALFORMED_PACKET);
    });
    test(`${v}: remaining length 0 or 1 is malformed`, () => {
      expect(mqttError(dec(PUBACK, [], 0, v5)).code).toBe(RC.MALFORMED_PACKET);
      expect(mqttError(dec(PUBACK, [1], 0, v5)).code).toBe(RC.MALFORMED_PACKET);
    });
    test(`${v}: packet identifier 0 is a protocol error`, () => {
      expect(mqttError(dec(PUBACK, [0, 0], 0, v5)).code).toBe(RC.PROTOCOL_ERROR);
      expect(mqttError(dec(PUBREL, [0, 0], 2, v5)).code).toBe(RC.PROTOCOL_ERROR);
    });
  }

  test("v4: remaining length other than 2 is malformed", () => {
    for (const type of [PUBACK, PUBREC, PUBREL, PUBCOMP]) {
      const flags = type === PUBREL ? 2 : 0;
      expect(mqttError(dec(type, [0, 1, 0], flags, false)).code).toBe(RC.MALFORMED_PACKET);
      expect(mqttError(dec(type, [0, 1, 0, 0], flags, false)).code).toBe(RC.MALFORMED_PACKET);
    }
  });

  test("v5: reason codes outside each packet's table are malformed [MQTT-3.4.2-1], [MQTT-3.6.2-1]", () => {
    for (const code of [0x01, 0x11, 0x81, 0x82, 0x92, 0x95, 0xff]) {
      expect(mqttError(dec(PUBACK, [0, 1, code], 0, true)).code).toBe(RC.MALFORMED_PACKET);
      expect(mqttError(dec(PUBREC, [0, 1, code], 0, true)).code).toBe(RC.MALFORMED_PACKET);
    }
    for (const code of [0x10, 0x80, 0x87, 0x91, 0x97, 0xff]) {
      expect(mqttError(dec(PUBREL, [0, 1, code], 2, true)).code).toBe(RC.MALFORMED_PACKET);
      expect(mqttError(dec(PUBCOMP, [0, 1, code], 0, true)).code).toBe(RC.MALFORMED_PACKET);
    }
  });

  test("v5: properties other than Reason String / User Property, a repeated Reason String, or a length mismatch are refused", () => {
    expect(mqttError(dec(PUBACK, [0, 1, 0, 2, 0x23, 0, 1].slice(0, 6), 0, true)).code).toBe(RC.MALFORMED_PACKET);
    expect(mqttError(dec(PUBACK, [0, 1, 0, 3, 0x23, 0, 1], 0, true)).code).toBe(RC.MALFORMED_PACKET);
    expect(mqttError(dec(PUBACK, [0, 1, 0, 8, 0x1f, ...str("a"), 0x1f, ...str("b")], 0, true)).code).toBe(RC.PROTOCOL_ERROR);
    // Property Length says 9, only 4 bytes follow.
    expect(mqttError(dec(PUBACK, [0, 1, 0, 9, 0x1f, ...str("a")], 0, true)).code).toBe(RC.MALFORMED_PACKET);
    // Property Length says 2, 4 bytes follow (leftover bytes).
    expect(mqttError(dec(PUBACK, [0, 1, 0, 2, 0x1f, ...str("a")], 0, true)).code).toBe(RC.MALFORMED_PACKET);
    // Reason String with bad UTF-8.
    expect(mqttError(dec(PUBACK, [0, 1, 0, 4, 0x1f, ...str([0xff])], 0, true)).code).toBe(RC.MALFORMED_PACKET);
  });
});

describe("varintSize", () => {
  test("matches the encoded size at every boundary", () => {
    for (const [n, size] of [
      [0, 1],
      [127, 1],
      [128, 2],
      [16383, 2],
      [16384, 3],
      [2_097_151, 3],
      [2_097_152, 4],
      [268_435_455, 4],
    ] as const) {
      expect(varintSize(n)).toBe(size);
      expect(encVarint(n).length).toBe(size);
    }
  });
});
