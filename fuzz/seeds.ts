/**
 * @module fuzz/seeds
 * Valid packets of every type, for 3.1.1 and 5.0, encoded by mqtt-packet
 * (the reference codec, independent of the broker's own): the corpus the
 * mutators start from. Topics stay under `fz/` so the fuzz clients do not
 * subscribe to the control pair's topic unless a mutation makes them.
 */
import mqtt from "mqtt-packet";
import type { Rng } from "./prng.ts";

export type Version = 4 | 5;

const enc = (p: Record<string, unknown>, v: Version): Buffer => mqtt.generate(p as unknown as mqtt.Packet, { protocolVersion: v });

/** A valid CONNECT for a fuzz client (with will, credentials and properties when `rich`). */
export function connectSeed(v: Version, clientId: string, rich: boolean): Buffer {
  const p: Record<string, unknown> = { cmd: "connect", protocolId: "MQTT", protocolVersion: v, clientId, clean: true, keepalive: 30 };
  if (rich) {
    p.username = "fz";
    p.password = Buffer.from("pw");
    p.will = { topic: "fz/will", payload: Buffer.from("gone"), qos: 1, retain: false, ...(v === 5 ? { properties: { willDelayInterval: 0, contentType: "text/plain" } } : {}) };
    if (v === 5) p.properties = { sessionExpiryInterval: 0, receiveMaximum: 20, maximumPacketSize: 65536, topicAliasMaximum: 5, requestProblemInformation: true, userProperties: { k: "v" } };
  }
  return enc(p, v);
}

/** Packets a client may send after CONNECT (and some it may not: CONNACK, SUBACK, ... are the server's). */
export function streamSeeds(v: Version): Buffer[] {
  const five = v === 5;
  const props = (o: Record<string, unknown>) => (five ? { properties: o } : {});
  const list: Record<string, unknown>[] = [
    { cmd: "publish", topic: "fz/a", payload: Buffer.from("hello"), qos: 0, retain: false, dup: false },
    { cmd: "publish", topic: "fz/b/c", payload: Buffer.alloc(64, 1), qos: 1, messageId: 1, retain: false, dup: false, ...props({ payloadFormatIndicator: true, messageExpiryInterval: 60, contentType: "x", userProperties: { a: "b" } }) },
    { cmd: "publish", topic: "fz/r", payload: Buffer.from("kept"), qos: 1, messageId: 2, retain: true, dup: false },
    { cmd: "publish", topic: "fz/q2", payload: Buffer.from("two"), qos: 2, messageId: 3, retain: false, dup: false, ...props({ responseTopic: "fz/resp", correlationData: Buffer.from("id") }) },
    { cmd: "puback", messageId: 1, ...(five ? { reasonCode: 0 } : {}) },
    { cmd: "pubrec", messageId: 3, ...(five ? { reasonCode: 0 } : {}) },
    { cmd: "pubrel", messageId: 3, ...(five ? { reasonCode: 0 } : {}) },
    { cmd: "pubcomp", messageId: 3, ...(five ? { reasonCode: 0 } : {}) },
    { cmd: "subscribe", messageId: 4, subscriptions: [{ topic: "fz/#", qos: 1 }, { topic: "fz/+/c", qos: 0 }], ...props({ subscriptionIdentifier: 7 }) },
    { cmd: "subscribe", messageId: 5, subscriptions: [{ topic: "$share/g/fz/s", qos: 2, ...(five ? { nl: true, rap: true, rh: 1 } : {}) }] },
    { cmd: "unsubscribe", messageId: 6, unsubscriptions: ["fz/#", "fz/+/c"] },
    { cmd: "pingreq" },
    { cmd: "connack", sessionPresent: false, ...(five ? { reasonCode: 0 } : { returnCode: 0 }) },
    { cmd: "suback", messageId: 4, granted: [1] },
    { cmd: "unsuback", messageId: 6, ...(five ? { granted: [0] } : {}) },
    { cmd: "pingresp" },
    { cmd: "disconnect", ...(five ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : {}) },
  ];
  if (five) {
    list.push({ cmd: "publish", topic: "fz/alias", payload: Buffer.from("a"), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } });
    list.push({ cmd: "publish", topic: "", payload: Buffer.from("b"), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } });
    list.push({ cmd: "auth", reasonCode: 0x18, properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: Buffer.from("n,,n=fz,r=abc") } });
  }
  return list.map((p) => enc(p, v));
}

/** A connection's first packet: usually a valid CONNECT (so the stream behind it is read), sometimes anything. */
export function firstPacket(rng: Rng, v: Version, id: string): Buffer {
  return connectSeed(v, id, rng.chance(0.5));
}
