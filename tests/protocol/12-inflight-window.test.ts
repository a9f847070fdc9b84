/**
 * The outbound in-flight window: at most limits.maxInflight unacknowledged
 * QoS 1/2 PUBLISHes per client, and the window also closes once
 * limits.maxInflightBytes of payload are in flight (a memory bound for large
 * messages). The rest waits in the session queue, in order, and flows as
 * acks come back ([MQTT-4.6.0-5] order kept).
 */
import { expect, test } from "bun:test";
import { useTestBroker } from "../helpers/broker.ts";
import { connectClient } from "../helpers/clients.ts";
import { RawClient } from "../helpers/raw.ts";

const b = useTestBroker({ limits: { maxInflight: 100, maxInflightBytes: 4096 } });

test("the window closes on payload bytes: 1000-byte messages, 4096 bytes allowed → 5 in flight, one more per ack, in order", async () => {
  const sub = await RawClient.connected(b.port, 4, { clientId: "ifb-sub" });
  sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "ifb/t", qos: 1 }] });
  await sub.nextOf("suback");
  const pub = await connectClient(b.port, { clientId: "ifb-pub" });
  for (let i = 0; i < 10; i++) await pub.client.publishAsync("ifb/t", Buffer.alloc(1000, i), { qos: 1 });
  const first = await sub.drain(300);
  expect(first.map((p) => p.payload[0])).toEqual([0, 1, 2, 3, 4]);
  sub.send({ cmd: "puback", messageId: first[0]!.messageId });
  const next = await sub.drain(300);
  expect(next.map((p) => p.payload[0])).toEqual([5]);
  for (const p of [...first.slice(1), ...next]) sub.send({ cmd: "puback", messageId: p.messageId });
  const rest = await sub.drain(300);
  expect(rest.map((p) => p.payload[0])).toEqual([6, 7, 8, 9]);
  await pub.end();
  sub.destroy();
});

test("small messages are bounded by the count: maxInflight 100 of 150 unacknowledged", async () => {
  const sub = await RawClient.connected(b.port, 4, { clientId: "ifc-sub" });
  sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "ifc/t", qos: 1 }] });
  await sub.nextOf("suback");
  const pub = await connectClient(b.port, { clientId: "ifc-pub" });
  for (let i = 0; i < 150; i++) pub.client.publish("ifc/t", String(i), { qos: 1 });
  await new Promise<void>((r) => pub.client.publish("ifc/done", "x", { qos: 1 }, () => r()));
  const got = await sub.drain(300);
  expect(got.length).toBe(100);
  expect(got.map((p) => p.payload.toString())).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
  await pub.end();
  sub.destroy();
});
