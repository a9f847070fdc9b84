/**
 * @module message
 * An application message as the broker holds it: routed once, shared by every
 * subscriber's delivery, queue entry and in-flight slot (never copied per
 * subscriber).
 */

import type { SharedGroup } from "./topic-tree.ts";

export type QoS = 0 | 1 | 2;

/** A change recorded in the journal and not applied yet: it can still be cancelled (journal.ts). */
export interface JournalOp {
  cancel(): void;
}

export class Message {
  /** UTF-8 bytes of `topic`, made on first encode and shared afterwards. */
  topicBytes: Buffer | null = null;
  /** Row id in the store once persisted (0 = not stored). */
  storeId = 0;
  /** How many store rows reference it; lets the store drop unreferenced payloads. */
  storeRefs = 0;
  /** Its insert, recorded in the journal and not applied yet (journal.ts), or null. */
  jop: JournalOp | null = null;
  /** Order of publication in this process (0 = restored); retained-sender.ts compares it with a subscription's start. */
  serial = 0;
  /** The retained-delivery job that last sent it (retained-sender.ts), 0 = none. */
  sentByJob = 0;

  constructor(
    readonly topic: string,
    /** Owned bytes (never a view into a socket chunk once the message is kept). */
    public payload: Buffer,
    readonly qos: QoS,
    /** The publisher's RETAIN flag. */
    readonly retain: boolean,
    /**
     * v5 properties forwarded unchanged, already encoded in their original
     * order: Payload Format Indicator, Content Type, Response Topic,
     * Correlation Data, User Properties ([MQTT-3.3.2-4], [MQTT-3.3.2-15..18]).
     * Never contains Topic Alias, Message Expiry or Subscription Identifier:
     * those are per hop and written by the encoder.
     */
    public props: Buffer | null,
    /** Absolute expiry in ms since the epoch; 0 = never ([MQTT-3.3.2-5]). */
    readonly expiresAt: number,
    /** Client id of the publisher ("" for the broker), for No Local. */
    readonly origin: string,
  ) {}

  expired(now: number): boolean {
    return this.expiresAt !== 0 && now >= this.expiresAt;
  }

  bytesOfTopic(): Buffer {
    return (this.topicBytes ??= Buffer.from(this.topic, "utf8"));
  }
}

/** One pending or in-flight delivery of a message to one session. */
export class Delivery {
  /** 0 = not yet sent; set when it enters the in-flight window. */
  packetId = 0;
  /** false: awaiting PUBACK/PUBREC; true: PUBREL sent, awaiting PUBCOMP. */
  released = false;
  /** Order within the session (assigned when the session takes it), for in-order resend and restore. */
  seq = 0;
  /** The journal tracks it (it holds a reference to its message's row). */
  stored = false;
  /** Its row has been written to the store (an insert may still be pending otherwise). */
  row = false;
  /** Its latest state, recorded in the journal and not applied yet (journal.ts), or null. */
  jop: JournalOp | null = null;

  constructor(
    readonly msg: Message,
    readonly qos: QoS,
    readonly retain: boolean,
    readonly subIds: readonly number[] | null,
    /** The shared-subscription group it was given to this session for, if any (not persisted). */
    readonly group: SharedGroup<unknown> | null = null,
  ) {}
}
