/**
 * The hand-written CONNECT decoder (lib/protocol/connect-codec.ts) against
 * the reference codec: for CONNECT packets encoded by mqtt-packet, both
 * decoders must agree field by field; and the cases mqtt-packet lets through
 * must be refused ([MQTT-1.5.4-1] strict UTF-8, repeated properties, 0/1
 * byte properties, property placement, leftover bytes).
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { decodeConnect } from "../../lib/protocol/connect-codec.ts";
import { MqttError } from "../../lib/protocol/reason-codes.ts";

function reference(frame: Buffer): Record<string, any> {
  const p = mqtt.parser();
  let got: Record<string, any> | null = null;
  p.on("packet", (x) => (got = x as unknown as Record<string, any>));
  p.on("error", (e) => {
    throw e;
  });
  p.parse(frame);
  return got!;
}

const cases: [string, Record<string, unknown>][] = [
  ["3.1 (MQIsdp)", { protocolId: "MQIsdp", protocolVersion: 3, clientId: "c31", clean: true, keepalive: 30 }],
  ["3.1.1 minimal", { protocolId: "MQTT", protocolVersion: 4, clientId: "c", clean: true, keepalive: 0 }],
  ["3.1.1 clean 0, user and password", { protocolId: "MQTT", protocolVersion: 4, clientId: "c2", clean: false, keepalive: 65535, username: "alice", password: Buffer.from("s3cret") }],
  ["3.1.1 will QoS 2 retained", { protocolId: "MQTT", protocolVersion: 4, clientId: "c3", clean: true, keepalive: 10, will: { topic: "w/t", payload: Buffer.from([0, 1, 2]), qos: 2, retain: true } }],
  ["3.1.1 non-ASCII client id and will topic", { protocolId: "MQTT", protocolVersion: 4, clientId: "zähler-€", clean: true, keepalive: 10, will: { topic: "état/ü", payload: Buffer.alloc(0), qos: 1, retain: false } }],
  ["5 empty", { protocolId: "MQTT", protocolVersion: 5, clientId: "", clean: true, keepalive: 60 }],
  [
    "5 every CONNECT property",
    {
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "c5",
      clean: false,
      keepalive: 5,
      properties: {
        sessionExpiryInterval: 3600,
        receiveMaximum: 20,
        maximumPacketSize: 4096,
        topicAliasMaximum: 10,
        requestResponseInformation: true,
        requestProblemInformation: false,
        userProperties: { a: "1", b: ["2", "3"] },
        authenticationMethod: "SCRAM-SHA-256",
        authenticationData: Buffer.from("n,,n=u,r=x"),
      },
    },
  ],
  [
    "5 will with every will property, user name and password",
    {
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "c6",
      clean: true,
      keepalive: 0,
      username: "u",
      password: Buffer.from("token"),
      will: {
        topic: "w",
        payload: Buffer.from("bye"),
        qos: 1,
        retain: false,
        properties: {
          willDelayInterval: 30,
          payloadFormatIndicator: true,
          messageExpiryInterval: 60,
          contentType: "text/plain",
          responseTopic: "r/t",
          correlationData: Buffer.from([9, 9]),
          userProperties: { k: "v" },
        },
      },
    },
  ],
];

describe("decodeConnect agrees with mqtt-packet", () => {
  for (const [name, packet] of cases) {
    test(name, () => {
      const frame = mqtt.generate({ cmd: "connect", ...packet } as mqtt.IConnectPacket);
      const ref = reference(frame);
      const got = decodeConnect(frame) as Record<string, any>;
      for (const k of ["protocolId", "protocolVersion", "clean", "keepalive", "clientId", "username"]) expect(got[k]).toEqual(ref[k]);
      expect(got.password === undefined ? undefined : Buffer.from(got.password)).toEqual(ref.password);
      expect(JSON.parse(JSON.stringify(got.properties ?? null))).toEqual(JSON.parse(JSON.stringify(ref.properties ?? null)));
      if (ref.will) {
        expect(got.will.topic).toBe(ref.will.topic);
        expect(Buffer.from(got.will.payload)).toEqual(Buffer.from(ref.will.payload));
        expect(got.will.qos).toBe(ref.will.qos);
        expect(got.will.retain).toBe(ref.will.retain);
        expect(JSON.parse(JSON.stringify(got.will.properties ?? null))).toEqual(JSON.parse(JSON.stringify(ref.will.properties ?? null)));
      } else {
        expect(got.will).toBeUndefined();
      }
    });
  }

  test("will pass-through bytes are the raw forwarded properties in order (no Will Delay, no Message Expiry)", () => {
    const frame = mqtt.generate({ cmd: "connect", ...cases[7]![1] } as mqtt.IConnectPacket);
    const got = decodeConnect(frame);
    // Re-parse the pass-through bytes as a PUBLISH property section.
    const props = got.willPassThrough!;
    const pub = Buffer.concat([Buffer.from([0x30, 2 + 1 + 1 + props.length, 0, 1, 0x74, props.length]), props]);
    const p = mqtt.parser({ protocolVersion: 5 });
    let parsed: any;
    p.on("packet", (x) => (parsed = x));
    p.parse(pub);
    expect(parsed.properties).toEqual({
      payloadFormatIndicator: true,
      contentType: "text/plain",
      responseTopic: "r/t",
      correlationData: Buffer.from([9, 9]),
      userProperties: { k: "v" },
    });
  });
});

function code(frame: Buffer): number {
  try {
    decodeConnect(frame);
  } catch (e) {
    if (e instanceof MqttError) return e.code;
    throw e;
  }
  return 0;
}

/** A v5 CONNECT with a raw property section and client id "c". */
function v5With(props: number[]): Buffer {
  const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 0, props.length, ...props, 0, 1, 0x63];
  return Buffer.from([0x10, body.length, ...body]);
}

describe("decodeConnect refuses what mqtt-packet accepts", () => {
  test("client id with an encoded surrogate (ED A0 80) → 0x81 [MQTT-1.5.4-1]", () => {
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, 0, 3, 0xed, 0xa0, 0x80];
    expect(code(Buffer.from([0x10, body.length, ...body]))).toBe(0x81);
  });
  test("client id with U+0000 → 0x81 [MQTT-1.5.4-2]", () => {
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, 0, 2, 0x61, 0x00];
    expect(code(Buffer.from([0x10, body.length, ...body]))).toBe(0x81);
  });
  test("Session Expiry Interval 0 then 5 → 0x82 (mqtt-packet keeps the last)", () => {
    expect(code(v5With([0x11, 0, 0, 0, 0, 0x11, 0, 0, 0, 5]))).toBe(0x82);
  });
  test("Request Problem Information 2 → 0x82", () => {
    expect(code(v5With([0x17, 2]))).toBe(0x82);
  });
  test("Topic Alias in CONNECT → 0x81 (not allowed there)", () => {
    expect(code(v5With([0x23, 0, 1]))).toBe(0x81);
  });
  test("unknown property 0x7f → 0x81", () => {
    expect(code(v5With([0x7f, 0]))).toBe(0x81);
  });
  test("a byte after the last field → 0x81", () => {
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, 0, 1, 0x63, 0xff];
    expect(code(Buffer.from([0x10, body.length, ...body]))).toBe(0x81);
  });
  test("reserved flag bit → 0x81 [MQTT-3.1.2-3]", () => {
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x03, 0, 0, 0, 1, 0x63];
    expect(code(Buffer.from([0x10, body.length, ...body]))).toBe(0x81);
  });
});
