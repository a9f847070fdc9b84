/**
 * MQTT.js clients (the real third-party client) against a test broker, with
 * reconnection off and a message collector.
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

export interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
  properties?: Record<string, unknown>;
  messageId?: number;
}

export interface TestClient {
  client: MqttClient;
  messages: Received[];
  /** Wait until at least `n` messages have arrived. */
  waitMessages(n: number, ms?: number): Promise<Received[]>;
  end(force?: boolean): Promise<void>;
}

/**
 * Connect and wait for CONNACK. The message collector is attached before
 * the CONNECT is sent: a resumed session's queued messages can arrive in the
 * same read as CONNACK, before a connectAsync() promise would resolve.
 */
export async function connectClient(port: number, opts: IClientOptions = {}): Promise<TestClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    reconnectPeriod: 0,
    connectTimeout: 3000,
    ...opts,
  });
  const wrapped = wrap(client);
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
  return wrapped;
}

export function wrap(client: MqttClient): TestClient {
  const messages: Received[] = [];
  let waiters: (() => void)[] = [];
  client.on("message", (topic, payload, packet) => {
    messages.push({
      topic,
      payload,
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
      properties: packet.properties as Record<string, unknown> | undefined,
      messageId: packet.messageId,
    });
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  return {
    client,
    messages,
    async waitMessages(n, ms = 3000) {
      const end = Date.now() + ms;
      while (messages.length < n) {
        const left = end - Date.now();
        if (left <= 0) throw new Error(`expected ${n} messages, got ${messages.length}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return messages;
    },
    async end(force = false) {
      await client.endAsync(force);
    },
  };
}
