/**
 * Interop with a second real client implementation: Debian's
 * mosquitto_pub / mosquitto_sub (libmosquitto), MQTT 3.1.1 and 5, QoS 0–2,
 * retained messages, and a v5 user property. Skipped when the tools are not
 * installed (`apt-get install mosquitto-clients`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { startTestBroker, waitFor } from "../helpers/broker.ts";

const have = Bun.which("mosquitto_pub") !== null && Bun.which("mosquitto_sub") !== null;

let b: RunningBroker;
beforeAll(async () => {
  if (have) b = await startTestBroker();
});
afterAll(async () => {
  if (have) await b.stop();
});

/** Start mosquitto_sub and wait until its subscription is in the broker; resolves with its output. */
async function sub(args: string[], count: number, waitSubscribed = true): Promise<{ out: Promise<string> }> {
  const before = b.broker.stats().subscriptions;
  const p = Bun.spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", String(b.port), "-C", String(count), "-W", "5", ...args], { stdout: "pipe", stderr: "pipe" });
  if (waitSubscribed) await waitFor(() => b.broker.stats().subscriptions > before, 5000, "mosquitto_sub's subscription");
  // Wrapped: an async function returning a bare promise would wait for it.
  return { out: new Response(p.stdout).text() };
}

async function pub(args: string[]): Promise<number> {
  const p = Bun.spawn(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(b.port), ...args], { stdout: "ignore", stderr: "pipe" });
  return p.exited;
}

describe.skipIf(!have)("mosquitto_pub / mosquitto_sub", () => {
  for (const v of ["mqttv311", "mqttv5"]) {
    for (const q of ["0", "1", "2"]) {
      test(`${v} QoS ${q}: a message published by mosquitto_pub reaches mosquitto_sub`, async () => {
        const topic = `interop/${v}/${q}`;
        const got = await sub(["-V", v, "-q", q, "-t", topic, "-v"], 1);
        expect(await pub(["-V", v, "-q", q, "-t", topic, "-m", `hello ${v} ${q}`])).toBe(0);
        expect((await got.out).trim()).toBe(`${topic} hello ${v} ${q}`);
      });
    }
  }

  test("retained message set by mosquitto_pub -r is delivered to a later mosquitto_sub [MQTT-3.3.1-6]", async () => {
    expect(await pub(["-t", "interop/retained", "-m", "kept", "-r", "-q", "1"])).toBe(0);
    expect((await (await sub(["-t", "interop/retained", "-v"], 1, false)).out).trim()).toBe("interop/retained kept");
  });

  test("v5 user property from mosquitto_pub arrives at mosquitto_sub [MQTT-3.3.2-17]", async () => {
    const got = await sub(["-V", "mqttv5", "-t", "interop/props", "-F", "%P %p"], 1);
    expect(await pub(["-V", "mqttv5", "-t", "interop/props", "-m", "x", "-D", "publish", "user-property", "k", "v"])).toBe(0);
    expect((await got.out).trim()).toBe("k:v x");
  });
});
