/**
 * Raw clients opened by the current test, destroyed after it even when it
 * fails, so a failing test cannot leave connections (or sessions with their
 * subscriptions) behind for the next ones.
 */
import { afterEach } from "bun:test";
import type { RunningBroker } from "../../lib/server.ts";
import { waitFor } from "./broker.ts";
import { RawClient } from "./raw.ts";

let seq = 0;
/** A Client ID unique in this process. */
export const uid = (tag: string) => `${tag}-${++seq}-${process.pid}`;

export class Pool {
  private opened: { c: RawClient; id: string; rb: RunningBroker }[] = [];

  /** Connect (CONNACK 0x00 required) with a fresh Client ID unless opts.clientId is given. */
  async raw(rb: RunningBroker, version: 3 | 4 | 5, tag: string, opts: Record<string, unknown> = {}): Promise<RawClient & { id: string }> {
    const id = (opts.clientId as string | undefined) ?? uid(tag);
    const c = (await RawClient.connected(rb.port, version, { ...opts, clientId: id })) as RawClient & { id: string };
    c.id = id;
    this.opened.push({ c, id, rb });
    return c;
  }

  /**
   * A connected socket without CONNECT (for handshakes the test checks
   * itself). `id` is the Client ID it will use, to wait for its session to be
   * detached after the test; "" when there is none to wait for.
   */
  async socket(rb: RunningBroker, version: 3 | 4 | 5, id = ""): Promise<RawClient> {
    const c = await RawClient.connect(rb.port, version);
    this.opened.push({ c, id, rb });
    return c;
  }

  track(c: RawClient, id: string, rb: RunningBroker): void {
    this.opened.push({ c, id, rb });
  }

  /** Destroy every client opened since the last cleanup and wait until the brokers have detached their sessions. */
  async cleanup(): Promise<void> {
    const list = this.opened.splice(0);
    for (const o of list) o.c.destroy();
    await waitFor(() => list.every((o) => o.id === "" || !o.rb.broker.sessions.get(o.id)?.conn), 3000, "test clients detached");
  }
}

/** A Pool cleaned up after each test of the file (or describe block) that calls this. */
export function usePool(): Pool {
  const pool = new Pool();
  afterEach(() => pool.cleanup());
  return pool;
}
