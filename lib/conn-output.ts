/**
 * @module conn-output
 * The output side of a connection, under `Connection` (which adds framing
 * and the lifecycle): encoding packets into the connection's output buffer
 * (PUBLISH with outbound Topic Aliases, acknowledgements, the packets
 * mqtt-packet encodes), holding acknowledgements until what they acknowledge
 * is committed ("ack" durability), and writing the sealed part to the
 * transport once per batch, the rest on drain.
 */
import type { Broker } from "./broker.ts";
import { State } from "./conn-state.ts";
import type { Delivery, Message } from "./message.ts";
import { encode, type Packet } from "./protocol/codec.ts";
import { type PublishHeader, writeAck, writePublish } from "./protocol/fast-codec.ts";
import { Output } from "./protocol/output.ts";
import type { OutboundAliases } from "./topic-aliases.ts";
import type { Transport } from "./transport.ts";

/** The header of the PUBLISH being encoded; one for all connections (encoding is synchronous). */
const HDR: PublishHeader = { v5: false, qos: 0, packetId: 0, dup: false, retain: false, subIds: null, alias: 0, sendTopic: true, maxSize: 0, now: 0, topic: null };

export abstract class ConnectionOutput {
  state = State.New;
  /** 0 until CONNECT is decoded; then 3 (3.1), 4 (3.1.1) or 5. */
  version: 0 | 3 | 4 | 5 = 0;
  v5 = false;
  clientId = "";
  readonly out = new Output();
  /** In the broker's dirty list for this batch. */
  dirty = false;
  /** A write was partial; waiting for `drain`. */
  waitingDrain = false;
  drainSince = 0;
  /** Shut the write side once the output has been flushed (lingering close). */
  protected endAfterFlush = false;
  /** Largest packet the client accepts ([MQTT-3.1.2-24]). */
  maxOutPacket = 268_435_460;
  /** Topic Aliases we bind, when the client allows them ([MQTT-3.1.2-26]), else null. */
  aliasesOut: OutboundAliases | null = null;
  /**
   * The topic a PUBLISH is sent under, when it is not the message's own (a
   * bridge's uplink maps local topics to remote ones, bridge/uplink.ts), or
   * null: the hot path pays one null check.
   */
  topicMap: ((msg: Message) => Buffer) | null = null;

  constructor(
    readonly transport: Transport,
    readonly broker: Broker,
  ) {}

  /** Close without lingering (a peer that does not read). */
  abstract abort(why: string): void;

  /**
   * Encode a non-hot packet with mqtt-packet into the output buffer. They
   * are acknowledgements or follow one (SUBACK, UNSUBACK, CONNACK, AUTH,
   * DISCONNECT): held until the open journal work is committed.
   */
  sendPacket(packet: Packet): void {
    if (this.state === State.Closed) return;
    this.append(encode(packet, this.version === 0 ? 4 : this.version));
  }

  /** Append encoded control bytes (held like sendPacket's). */
  protected append(bytes: Buffer): void {
    this.holdForCommit();
    this.out.append(bytes);
    this.markDirty();
  }

  /** PUBACK / PUBREC / PUBREL / PUBCOMP: held until what it acknowledges is committed. */
  ack(type: number, packetId: number, reason = 0): void {
    this.holdForCommit();
    writeAck(this.out, type, packetId, reason, this.v5);
    this.markDirty();
  }

  /**
   * What is written from here on acknowledges state recorded in the journal
   * but not committed ("ack" durability): it must wait for that commit. Bytes
   * written before it may still leave now (QoS 0/1 PUBLISHes to subscribers,
   * PINGRESP); bytes after it wait too, to keep their order.
   */
  holdForCommit(): void {
    if (this.broker.holdAcks && this.broker.journal.pending) this.out.holdHere();
  }

  /**
   * Encode a PUBLISH to this client, with an outbound Topic Alias when the
   * client allows them: the first PUBLISH of a topic binds the next free
   * alias (topic + alias), later ones send an empty topic + alias
   * ([MQTT-3.1.2-27], [MQTT-3.3.2-11]). Returns false when the packet would
   * exceed the client's Maximum Packet Size (nothing written, no binding made).
   */
  writeDelivery(d: Delivery, dup: boolean, now: number): boolean {
    // A QoS 2 PUBLISH of an uncommitted message must not leave: after a crash the
    // publisher's retry would reach the subscriber again under another packet id.
    if (d.qos === 2) this.holdForCommit();
    const h = HDR;
    h.qos = d.qos;
    h.packetId = d.packetId;
    h.dup = dup;
    h.retain = d.retain;
    h.subIds = d.subIds;
    h.now = now;
    return this.encodePublish(d.msg, h);
  }

  /** A QoS 0 PUBLISH (no delivery record): see writeDelivery. */
  writeQos0(msg: Message, retain: boolean, subIds: readonly number[] | null, now: number): boolean {
    const h = HDR;
    h.qos = 0;
    h.packetId = 0;
    h.dup = false;
    h.retain = retain;
    h.subIds = subIds;
    h.now = now;
    return this.encodePublish(msg, h);
  }

  private encodePublish(msg: Message, h: PublishHeader): boolean {
    h.v5 = this.v5;
    h.maxSize = this.maxOutPacket;
    h.topic = this.topicMap === null ? null : this.topicMap(msg);
    const aliases = this.aliasesOut;
    h.alias = 0;
    h.sendTopic = true;
    if (aliases !== null) {
      const bound = aliases.get(msg.topic);
      if (bound !== 0) {
        h.alias = bound;
        h.sendTopic = false;
      } else {
        h.alias = aliases.next();
      }
    }
    if (!writePublish(this.out, msg, h)) return false;
    if (aliases !== null && h.sendTopic && h.alias !== 0) aliases.bind(msg.topic, h.alias);
    this.markDirty();
    return true;
  }

  markDirty(): void {
    if (!this.dirty) {
      this.dirty = true;
      this.broker.batch.dirty.push(this);
    }
  }

  /**
   * End of a batch, after its commit point: seal what this batch wrote,
   * except from its first held byte on, which waits for the commit of the
   * epoch it depends on (Output.seal). Then write.
   */
  flush(now: number): void {
    this.dirty = false;
    this.track(this.out.seal(this.broker.batch.ackEpoch, this.broker.journal.committedEpoch));
    this.write(now);
  }

  /** A later commit point: release the held regions it covers, and write. */
  release(now: number): void {
    this.track(this.out.releaseHeld(this.broker.journal.committedEpoch));
    this.write(now);
  }

  private track(holding: boolean): void {
    if (holding) this.broker.batch.holding.add(this);
    else if (this.broker.batch.holding.size !== 0) this.broker.batch.holding.delete(this);
  }

  /** Write the sealed part of the output; a partial write waits for `onDrain`. */
  protected write(now: number): void {
    const out = this.out;
    const ready = out.ready;
    if (ready > 0 && !this.waitingDrain) {
      const n = this.transport.write(out.buf, 0, ready);
      if (n < 0) {
        out.discard();
        this.broker.batch.holding.delete(this);
      } else {
        out.consume(n);
        this.broker.metrics.netOut += n;
        if (n < ready) {
          this.waitingDrain = true;
          this.drainSince = now;
        }
      }
    }
    if (this.endAfterFlush && out.len === 0) {
      this.endAfterFlush = false;
      this.transport.shutdownWrite();
    }
  }
}
