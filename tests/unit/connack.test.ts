/**
 * The hand-written success CONNACK (lib/protocol/connack.ts) decoded by the
 * reference codec (mqtt-packet): flags byte, reason code and every property.
 * [MQTT-3.2.2-1] (bits 7–1 zero), [MQTT-3.2.2-2/3] Session Present.
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { ConnackEncoder, type ConnackExtras } from "../../lib/protocol/connack.ts";
import { Output } from "../../lib/protocol/output.ts";

function parse(bytes: Buffer, version: 4 | 5): Record<string, any> {
  const p = mqtt.parser({ protocolVersion: version });
  let got: Record<string, any> | null = null;
  let err: Error | null = null;
  p.on("packet", (x) => (got = x as unknown as Record<string, any>));
  p.on("error", (e) => (err = e));
  expect(p.parse(bytes)).toBe(0);
  if (err) throw err;
  return got!;
}

const enc = new ConnackEncoder({ receiveMaximum: 256, maximumPacketSize: 1048576, topicAliasMaximum: 64 });

describe("3.1.1 CONNACK", () => {
  for (const sp of [false, true]) {
    test(`session present ${sp}: bytes 20 02 0${sp ? 1 : 0} 00 [MQTT-3.2.2-1]`, () => {
      const out = new Output();
      enc.writeV3(out, sp);
      const bytes = Buffer.from(out.buf.subarray(0, out.len));
      expect(bytes.toString("hex")).toBe(`2002${sp ? "01" : "00"}00`);
      expect(bytes.equals(mqtt.generate({ cmd: "connack", sessionPresent: sp, returnCode: 0 } as mqtt.IConnackPacket))).toBe(true);
    });
  }
});

describe("v5 CONNACK", () => {
  const cases: [string, ConnackExtras | null][] = [
    ["no extras", null],
    ["assigned id", { assignedClientIdentifier: "bunmq-0123456789abcdef" }],
    ["all extras", { assignedClientIdentifier: "x", sessionExpiryInterval: 3600, serverKeepAlive: 30, responseInformation: "resp/x", authenticationMethod: "SCRAM-SHA-256", authenticationData: Buffer.from("v=abc") }],
    ["long auth data (2-byte lengths)", { authenticationMethod: "M", authenticationData: Buffer.alloc(300, 7) }],
  ];
  for (const [name, x] of cases) {
    for (const sp of [false, true]) {
      test(`${name}, session present ${sp}: mqtt-packet reads every property back`, () => {
        const out = new Output();
        enc.writeV5(out, sp, x);
        const p = parse(Buffer.from(out.buf.subarray(0, out.len)), 5);
        expect(p.cmd).toBe("connack");
        expect(p.sessionPresent).toBe(sp);
        expect(p.reasonCode).toBe(0);
        const props = p.properties;
        expect(props.receiveMaximum).toBe(256);
        expect(props.maximumPacketSize).toBe(1048576);
        expect(props.topicAliasMaximum).toBe(64);
        expect(props.retainAvailable).toBe(true);
        expect(props.wildcardSubscriptionAvailable).toBe(true);
        expect(props.subscriptionIdentifiersAvailable).toBe(true);
        expect(props.sharedSubscriptionAvailable).toBe(true);
        expect(props.assignedClientIdentifier).toBe(x?.assignedClientIdentifier);
        expect(props.sessionExpiryInterval).toBe(x?.sessionExpiryInterval);
        expect(props.serverKeepAlive).toBe(x?.serverKeepAlive);
        expect(props.responseInformation).toBe(x?.responseInformation);
        expect(props.authenticationMethod).toBe(x?.authenticationMethod);
        expect(props.authenticationData).toEqual(x?.authenticationData);
      });
    }
  }
});
