/**
 * @module broker-types
 * The shapes the Broker hands out and takes: its counters (stats()) and a
 * subscription request. Apart from broker.ts so that the API, the embed
 * entry and the handlers can name them without the class.
 */
import type { StoredSubscription } from "./store.ts";

export interface BrokerStats {
  connections: number;
  clients: number;
  sessions: number;
  subscriptions: number;
  retained: number;
  messagesIn: number;
  messagesOut: number;
  /** Deliveries dropped, all causes (see drops.ts for each). */
  dropped: number;
  /** Sockets closed at accept, all causes (full, unauthenticated, connect rate). */
  refusedConnections: number;
  /** ... because too many sockets had not finished CONNECT (limits.maxUnauthenticated). */
  refusedUnauthenticated: number;
  /** ... because their source address was over limits.connectRate. */
  refusedConnectRate: number;
  /** Sockets whose CONNECT is not accepted yet. */
  unauthenticated: number;
  /** Times a client over limits.publishRate / publishBytesRate stopped being read. */
  throttled: number;
  stuckSubscribers: number;
}

/** A subscription request, as SUBSCRIBE gives it: the stored fields plus how it is matched. */
export interface SubscribeRequest extends Omit<StoredSubscription, "clientId"> {
  /** Shared-subscription group, or null. */
  group: string | null;
  /** The filter matched against topics (without the `$share/` prefix). */
  matchFilter: string;
}
