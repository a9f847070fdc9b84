/**
 * @module store
 * The persistence interface: a narrow, event-shaped journal of the state
 * that must survive a restart (DESIGN.md 3). Memory stays authoritative; the
 * broker calls these methods at the points where state changes, only for
 * sessions that outlive their connection (clean sessions never touch it) and
 * for retained messages. Synchronous, because bun:sqlite is.
 *
 * Two implementations share one contract suite (tests/persistence/store.contract.ts):
 * `MemoryStore` (below) and `SqliteStore` (store-sqlite.ts).
 */
import type { QoS } from "./message.ts";
import type { Will } from "./session.ts";

export interface StoredMessage {
  id: number;
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  props: Buffer | null;
  /** Absolute expiry in ms since the epoch, 0 = never. */
  expiresAt: number;
  origin: string;
}

export interface StoredSession {
  clientId: string;
  version: 3 | 4 | 5;
  /** Session Expiry Interval in seconds (0xFFFFFFFF = never). */
  expiryInterval: number;
  /** When the offline session expires (ms); 0 while connected or never. */
  expiresAt: number;
  /** True while a connection is attached (so a crash left it "connected"). */
  connected: boolean;
  will: Will | null;
  /** When a delayed will is due (ms), 0 = none pending. */
  willAt: number;
  /** User name of the last accepted CONNECT (the owner under auth.clientIdOwnership); undefined: anonymous. */
  username?: string;
}

export interface StoredSubscription {
  clientId: string;
  filter: string;
  qos: QoS;
  noLocal: boolean;
  rap: boolean;
  rh: number;
  subId: number;
}

export interface StoredDelivery {
  clientId: string;
  /** Order within the session (queue and in-flight alike). */
  seq: number;
  messageId: number;
  /** 0 while queued; the packet id once in flight. */
  packetId: number;
  qos: QoS;
  retain: boolean;
  /** PUBREL sent, awaiting PUBCOMP. */
  released: boolean;
  subIds: number[] | null;
}

export interface Snapshot {
  messages: StoredMessage[];
  retained: { topic: string; messageId: number }[];
  sessions: StoredSession[];
  subscriptions: StoredSubscription[];
  /** Ordered by client, then seq. */
  deliveries: StoredDelivery[];
  inbound: { clientId: string; packetId: number }[];
}

export interface Store {
  /** Where the data lives, for logs. */
  readonly description: string;
  /** Writes outlive the process (a file), so they are worth saving: not in memory. */
  readonly durable: boolean;
  /** Store a message's bytes once; returns its id (messages are shared by many deliveries). */
  addMessage(m: Omit<StoredMessage, "id">): number;
  deleteMessage(id: number): void;
  saveSession(s: StoredSession): void;
  /** Delete the session and everything of it: subscriptions, deliveries, inbound ids. */
  deleteSession(clientId: string): void;
  saveSubscription(s: StoredSubscription): void;
  deleteSubscription(clientId: string, filter: string): void;
  setRetained(topic: string, messageId: number): void;
  deleteRetained(topic: string): void;
  /** Insert or replace by (clientId, seq). */
  saveDelivery(d: StoredDelivery): void;
  deleteDelivery(clientId: string, seq: number): void;
  addInbound(clientId: string, packetId: number): void;
  deleteInbound(clientId: string, packetId: number): void;
  /** Make everything written so far durable (one group commit). */
  commit(): void;
  /** Everything stored, for restore at start. */
  load(): Snapshot;
  /** Commit, checkpoint, release the file. */
  close(): void;
}

/** Tables of a MemoryStore; kept outside it so a "reopened" MemoryStore sees the same data. */
export class MemoryData {
  nextId = 1;
  messages = new Map<number, StoredMessage>();
  sessions = new Map<string, StoredSession>();
  subscriptions = new Map<string, StoredSubscription>();
  retained = new Map<string, number>();
  deliveries = new Map<string, StoredDelivery>();
  inbound = new Set<string>();
}

const key = (a: string, b: string | number) => `${a}\u0000${b}`;

/**
 * The store for `persistence.path: ":memory:"`: state lives only as long as
 * the process. It keeps real tables so the same contract holds for both
 * stores, and a broker restarted in the same process can restore from it.
 */
export class MemoryStore implements Store {
  readonly description = "memory";
  readonly durable = false;
  constructor(private readonly d: MemoryData = new MemoryData()) {}

  addMessage(m: Omit<StoredMessage, "id">): number {
    const id = this.d.nextId++;
    this.d.messages.set(id, { ...m, id });
    return id;
  }
  deleteMessage(id: number): void {
    this.d.messages.delete(id);
  }
  saveSession(s: StoredSession): void {
    this.d.sessions.set(s.clientId, { ...s });
  }
  deleteSession(clientId: string): void {
    this.d.sessions.delete(clientId);
    const prefix = clientId + "\u0000";
    for (const k of this.d.subscriptions.keys()) if (k.startsWith(prefix)) this.d.subscriptions.delete(k);
    for (const k of this.d.deliveries.keys()) if (k.startsWith(prefix)) this.d.deliveries.delete(k);
    for (const k of this.d.inbound) if (k.startsWith(prefix)) this.d.inbound.delete(k);
  }
  saveSubscription(s: StoredSubscription): void {
    this.d.subscriptions.set(key(s.clientId, s.filter), { ...s });
  }
  deleteSubscription(clientId: string, filter: string): void {
    this.d.subscriptions.delete(key(clientId, filter));
  }
  setRetained(topic: string, messageId: number): void {
    this.d.retained.set(topic, messageId);
  }
  deleteRetained(topic: string): void {
    this.d.retained.delete(topic);
  }
  saveDelivery(d: StoredDelivery): void {
    this.d.deliveries.set(key(d.clientId, d.seq), { ...d });
  }
  deleteDelivery(clientId: string, seq: number): void {
    this.d.deliveries.delete(key(clientId, seq));
  }
  addInbound(clientId: string, packetId: number): void {
    this.d.inbound.add(key(clientId, packetId));
  }
  deleteInbound(clientId: string, packetId: number): void {
    this.d.inbound.delete(key(clientId, packetId));
  }
  commit(): void {}
  load(): Snapshot {
    const deliveries = [...this.d.deliveries.values()].map((x) => ({ ...x }));
    deliveries.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : a.seq - b.seq));
    return {
      messages: [...this.d.messages.values()].map((x) => ({ ...x })),
      retained: [...this.d.retained].map(([topic, messageId]) => ({ topic, messageId })),
      sessions: [...this.d.sessions.values()].map((x) => ({ ...x })),
      subscriptions: [...this.d.subscriptions.values()].map((x) => ({ ...x })),
      deliveries,
      inbound: [...this.d.inbound].map((k) => {
        const i = k.lastIndexOf("\u0000");
        return { clientId: k.slice(0, i), packetId: Number(k.slice(i + 1)) };
      }),
    };
  }
  close(): void {}
}
