/**
 * @module session
 * `Session`: the durable state of one Client ID, which outlives connections
 * (3.1.1 §3.1.2.4, v5 §4.1): subscriptions, outbound deliveries in flight
 * (by packet id) and queued, inbound QoS 2 packet ids awaiting PUBREL, the
 * will, and expiry. It holds no socket: `conn` is only the attach point the
 * broker sets while a connection is live, so routing can reach it.
 */
import type { ClientAcl } from "./acl.ts";
import type { Connection } from "./connection.ts";
import type { Delivery, QoS } from "./message.ts";
import type { RetainedJob } from "./retained-sender.ts";
import type { Subscription } from "./topic-tree.ts";

/** Client IDs of the local sessions of bridges (`$bridge/NAME`), reserved: clients cannot use them. */
export const BRIDGE_SESSION_PREFIX = "$bridge/";

export interface Will {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** v5 pass-through properties, encoded (see Message.props). */
  props: Buffer | null;
  /** Will Delay Interval in seconds (v5), 0 = publish at once. */
  delay: number;
  /** Message Expiry Interval for the published will in seconds, -1 = none. */
  expiry: number;
}

/**
 * Outbound in-flight deliveries keyed by packet id, in a power-of-two slot
 * array (PERFORMANCE.md: a Map here halves QoS 1 throughput). Packet ids are
 * handed out in sequence and never reuse one that is still in flight
 * (3.1.1 [MQTT-2.3.1-4], 5 [MQTT-2.2.1-4]).
 */
const EMPTY_SLOTS: (Delivery | undefined)[] = [];

export class InflightTable {
  // Allocated on first use: most connections never have anything in flight.
  private slots: (Delivery | undefined)[] = EMPTY_SLOTS;
  private mask = 0;
  count = 0;
  /** Payload bytes in flight (bounded by limits.maxInflightBytes). */
  bytes = 0;
  private lastId = 0;

  get(id: number): Delivery | undefined {
    if (this.count === 0) return undefined;
    const d = this.slots[id & this.mask];
    return d !== undefined && d.packetId === id ? d : undefined;
  }

  /** A free packet id (not in flight). At most 65535 can be in flight. */
  nextId(): number {
    if (this.count >= 65535) throw new Error("all 65535 packet identifiers are in flight");
    if (this.count * 2 >= this.slots.length && this.slots.length < 65536) this.grow();
    // (slots is never empty past this point: grow() makes at least 16)
    for (;;) {
      const id = (this.lastId % 65535) + 1;
      this.lastId = id;
      if (this.slots[id & this.mask] === undefined) return id;
    }
  }

  /** Put a delivery whose `packetId` is set (new, or restored from the store). */
  add(d: Delivery): void {
    if (this.slots.length === 0) this.grow();
    // At 65536 slots every id has its own slot, so growing always ends a collision.
    while (this.slots[d.packetId & this.mask] !== undefined || (this.count * 2 >= this.slots.length && this.slots.length < 65536)) this.grow();
    this.slots[d.packetId & this.mask] = d;
    this.count++;
    this.bytes += d.msg.payload.length;
  }

  remove(id: number): Delivery | undefined {
    if (this.count === 0) return undefined;
    const i = id & this.mask;
    const d = this.slots[i];
    if (d === undefined || d.packetId !== id) return undefined;
    this.slots[i] = undefined;
    this.count--;
    this.bytes -= d.msg.payload.length;
    return d;
  }

  /** All in-flight deliveries in the order they were first sent. */
  ordered(): Delivery[] {
    if (this.count === 0) return [];
    const out: Delivery[] = [];
    for (const d of this.slots) if (d !== undefined) out.push(d);
    return out.sort((a, b) => a.seq - b.seq);
  }

  clear(): void {
    if (this.count === 0) return;
    this.slots = EMPTY_SLOTS;
    this.mask = 0;
    this.count = 0;
    this.bytes = 0;
  }

  private grow(): void {
    if (this.slots.length >= 65536) throw new Error("in-flight table full");
    const old = this.slots;
    this.slots = new Array(Math.max(16, old.length * 2)).fill(undefined);
    this.mask = this.slots.length - 1;
    for (const d of old) if (d !== undefined) this.slots[d.packetId & this.mask] = d;
  }
}

/** A set of packet ids whose Set is only created when first needed (idle sessions stay small). */
export class PacketIdSet {
  private set: Set<number> | null = null;
  get size(): number {
    return this.set === null ? 0 : this.set.size;
  }
  has(id: number): boolean {
    return this.set !== null && this.set.has(id);
  }
  add(id: number): void {
    (this.set ??= new Set()).add(id);
  }
  delete(id: number): boolean {
    return this.set !== null && this.set.delete(id);
  }
  clear(): void {
    this.set = null;
  }
  [Symbol.iterator](): Iterator<number> {
    return (this.set ?? EMPTY_IDS)[Symbol.iterator]();
  }
}
const EMPTY_IDS: ReadonlySet<number> = new Set();

const NO_ITEMS: (Delivery | undefined)[] = [];

/**
 * FIFO of deliveries waiting for the in-flight window or for the client to return.
 * A ring over a power-of-two array: a queue that stays long under load (a
 * bridge's, a slow subscriber's) pushes and shifts without copying or
 * regrowing its array; it doubles when full and is dropped when empty.
 */
export class DeliveryQueue {
  private items: (Delivery | undefined)[] = NO_ITEMS;
  private head = 0;
  private count = 0;
  bytes = 0;

  get length(): number {
    return this.count;
  }

  push(d: Delivery): void {
    const cap = this.items.length;
    if (this.count === cap) this.grow(cap);
    const items = this.items;
    items[(this.head + this.count) & (items.length - 1)] = d;
    this.count++;
    this.bytes += d.msg.payload.length;
  }

  private grow(cap: number): void {
    const next: (Delivery | undefined)[] = new Array(cap === 0 ? 16 : cap * 2).fill(undefined);
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) & (cap - 1)];
    this.items = next;
    this.head = 0;
  }

  peek(): Delivery | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  shift(): Delivery | undefined {
    if (this.count === 0) return undefined;
    const items = this.items;
    const d = items[this.head]!;
    items[this.head] = undefined;
    this.count--;
    if (this.count === 0) {
      // Empty: let go of the array (an idle session holds none).
      this.items = NO_ITEMS;
      this.head = 0;
    } else {
      this.head = (this.head + 1) & (items.length - 1);
    }
    this.bytes -= d.msg.payload.length;
    return d;
  }

  toArray(): Delivery[] {
    const out: Delivery[] = new Array(this.count);
    const mask = this.items.length - 1;
    for (let i = 0; i < this.count; i++) out[i] = this.items[(this.head + i) & mask]!;
    return out;
  }

  /** Remove deliveries from the tail until at most `maxLength` and `maxBytes` remain; returns them, oldest first. */
  trimTo(maxLength: number, maxBytes: number): Delivery[] {
    const cut: Delivery[] = [];
    const mask = this.items.length - 1;
    while (this.count > 0 && (this.count > maxLength || this.bytes > maxBytes)) {
      const i = (this.head + this.count - 1) & mask;
      const d = this.items[i]!;
      this.items[i] = undefined;
      this.count--;
      this.bytes -= d.msg.payload.length;
      cut.push(d);
    }
    if (this.count === 0) this.clear();
    return cut.reverse();
  }

  clear(): void {
    this.items = NO_ITEMS;
    this.head = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export class Session {
  /** The live connection, set by Broker.attach/detach only. */
  conn: Connection | null = null;
  readonly subs = new Map<string, Subscription<Session>>();
  readonly inflight = new InflightTable();
  readonly queue = new DeliveryQueue();
  /** Inbound QoS 2 packet ids received and not yet released by PUBREL. */
  readonly inboundQos2 = new PacketIdSet();
  will: Will | null = null;
  /** Session Expiry Interval in seconds; 0 = ends with the connection. */
  expiryInterval = 0;
  /** When an offline session expires (ms since epoch), 0 while connected or never. */
  expiresAt = 0;
  /** When a delayed will is due (ms since epoch), 0 when none is pending. */
  willAt = 0;
  /** Protocol version of the last connection. */
  version: 3 | 4 | 5 = 4;
  /** Next delivery sequence number (order of first send). */
  seq = 0;
  /** Messages dropped because the queue was full. */
  dropped = 0;
  /** Its state is written through to the store (it outlives its connection). */
  stored = false;
  /** Set once the session is discarded; late references must not act on it. */
  ended = false;
  /** In-flight deliveries still to re-send on this connection (its Receive Maximum was smaller), or null. */
  resend: Delivery[] | null = null;
  /** Publishers held back because this session's queue overflowed (backpressure), or null. */
  blockers: Connection[] | null = null;
  /** When the session last made progress while holding publishers back (ms). */
  blockedSince = 0;
  /** It held publishers back for limits.maxPublisherStallMs without progress: its overflow is dropped until it drains to half. */
  stuck = false;
  /** Retained messages still to send for new subscriptions, paced by its window (retained-sender.ts), or null. */
  retainedJobs: RetainedJob[] | null = null;
  /**
   * The user name of the last accepted CONNECT (undefined: anonymous). With
   * auth.clientIdOwnership it owns the session: another user name cannot
   * connect with this Client ID. Stored with the session.
   */
  username: string | undefined = undefined;
  /** Topic access for (username, id), or null when no ACL rule exists (Broker.setIdentity). */
  acl: ClientAcl | null = null;
  /** Bounds of this session's queue when not limits.maxQueuedMessages / maxQueuedBytes (a bridge's `queue`), or null. */
  queueBound: { maxMessages: number; maxBytes: number } | null = null;
  /** Routing scratch: the route pass that last reached this session, and its index. */
  routeMark = 0;
  routeIndex = 0;

  constructor(readonly id: string) {}

  /** True when the session outlives its connection (3.1.1 clean = 0, v5 expiry > 0). */
  get persistent(): boolean {
    return this.expiryInterval > 0;
  }
}
