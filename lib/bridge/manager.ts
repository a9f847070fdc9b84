/**
 * @module bridge/manager
 * The configured bridges of a running broker: started after the listeners,
 * stopped before the clients are closed, and reconciled with a reloaded
 * config (SIGHUP): a new name starts a bridge, a removed one stops and its
 * local session (and queue) is discarded, a changed one is restarted on the
 * same session, so what it queued is kept. Also the $SYS topics of each
 * bridge (`$SYS/broker/bridges/NAME/...`).
 */
import type { Broker } from "../broker.ts";
import { log } from "../log.ts";
import { BRIDGE_SESSION_PREFIX } from "../session.ts";
import { Bridge, type BridgeStatus, bridgeSessionId } from "./bridge.ts";
import type { BridgeConfig } from "./config.ts";

export class Bridges {
  private readonly bridges = new Map<string, Bridge>();
  /** Positions for each bridge's ListenerInfo (after the listeners'). */
  private nextIndex = 1000;

  constructor(private readonly broker: Broker) {
    broker.bridgeStatus = () => this.status();
    broker.sys?.sources.push(() => this.sysValues());
  }

  /** Start every configured bridge; local sessions of bridges no longer configured are discarded. */
  start(list: readonly BridgeConfig[]): void {
    const names = new Set(list.map((b) => b.name));
    for (const s of [...this.broker.sessions.values()]) {
      if (!s.id.startsWith(BRIDGE_SESSION_PREFIX) || names.has(s.id.slice(BRIDGE_SESSION_PREFIX.length))) continue;
      log.warn("bridge no longer configured; its local session and queue are discarded", { session: s.id, queued: s.queue.length + s.inflight.count });
      this.broker.endSession(s);
    }
    for (const cfg of list) this.add(cfg);
    this.broker.endBatch();
  }

  private add(cfg: BridgeConfig): void {
    const b = new Bridge(this.broker, cfg, this.nextIndex++);
    this.bridges.set(cfg.name, b);
    log.info("bridge starting", { bridge: cfg.name, address: cfg.address, topics: cfg.topics.length, queued: b.session.queue.length + b.session.inflight.count });
    b.start();
  }

  /** Apply a reloaded `bridges[]`; returns what changed, one phrase each. */
  reload(list: readonly BridgeConfig[]): string[] {
    const changes: string[] = [];
    const next = new Map(list.map((b) => [b.name, b]));
    for (const [name, b] of [...this.bridges]) {
      if (next.has(name)) continue;
      b.stop();
      this.bridges.delete(name);
      const s = this.broker.sessions.get(bridgeSessionId(name));
      if (s !== undefined) this.broker.endSession(s);
      changes.push(`bridge ${name} removed`);
    }
    for (const cfg of list) {
      const old = this.bridges.get(cfg.name);
      if (old === undefined) {
        this.add(cfg);
        changes.push(`bridge ${cfg.name} added`);
        continue;
      }
      if (JSON.stringify(old.cfg) === JSON.stringify(cfg)) continue;
      old.stop();
      // Upstream subscriptions the new config no longer has are removed at its next connection.
      const wanted = new Set(cfg.topics.filter((t) => t.direction !== "out").map((t) => t.remotePrefix + t.pattern));
      const stale = old.cfg.topics.filter((t) => t.direction !== "out").map((t) => t.remotePrefix + t.pattern).filter((f) => !wanted.has(f));
      const sameUpstream = old.cfg.address === cfg.address && old.cfg.clientId === cfg.clientId;
      this.add(cfg);
      if (sameUpstream) this.bridges.get(cfg.name)!.staleRemote = [...old.staleRemote, ...stale];
      changes.push(`bridge ${cfg.name} changed`);
    }
    this.broker.endBatch();
    return changes;
  }

  /** Stop every bridge (normal DISCONNECT upstream; the local sessions stay stored). */
  stop(): void {
    for (const b of this.bridges.values()) b.stop();
    this.broker.endBatch();
  }

  get(name: string): Bridge | undefined {
    return this.bridges.get(name);
  }

  status(): BridgeStatus[] {
    return [...this.bridges.values()].map((b) => b.status());
  }

  private *sysValues(): Generator<[string, string | number]> {
    for (const s of this.status()) {
      const p = `$SYS/broker/bridges/${s.name}`;
      // Mosquitto's topic: "1" connected, "0" not (its $SYS/broker/connection/NAME/state).
      yield [`${p}/state`, s.connected ? 1 : 0];
      yield [`${p}/queued`, s.queued + s.inflight];
      yield [`${p}/messages/sent`, s.messagesOut];
      yield [`${p}/messages/received`, s.messagesIn];
      yield [`${p}/bytes/sent`, s.bytesOut];
      yield [`${p}/bytes/received`, s.bytesIn];
      yield [`${p}/dropped`, s.dropped];
      yield [`${p}/last_error`, s.lastError === "" ? "none" : s.lastError];
    }
  }
}
