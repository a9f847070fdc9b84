/**
 * @module topic-aliases
 * MQTT 5 Topic Aliases of one connection, both ways. They are per
 * connection, never session state: a new connection starts with none
 * ([MQTT-3.3.2-7], v5 §3.3.2.3.4).
 *
 * Inbound: the client binds aliases up to our Topic Alias Maximum.
 * Outbound: we bind the client's aliases first come, first served, up to its
 * Topic Alias Maximum ([MQTT-3.1.2-27], [MQTT-3.3.2-11]).
 */

export class InboundAliases {
  private readonly byAlias: (string | undefined)[] = [];

  get(alias: number): string | undefined {
    return this.byAlias[alias];
  }

  bind(alias: number, topic: string): void {
    this.byAlias[alias] = topic;
  }
}

export class OutboundAliases {
  private readonly byTopic = new Map<string, number>();

  constructor(readonly max: number) {}

  /** The alias bound to `topic`, or 0. */
  get(topic: string): number {
    return this.byTopic.get(topic) ?? 0;
  }

  /** The alias `topic` would get if bound now, or 0 when all are taken. */
  next(): number {
    return this.byTopic.size < this.max ? this.byTopic.size + 1 : 0;
  }

  bind(topic: string, alias: number): void {
    this.byTopic.set(topic, alias);
  }
}
