/**
 * @module events
 * Broker events that observers outside the protocol path want: a client
 * connected, a connection ended, a CONNECT was refused, a session was taken
 * over. The info log (event-log.ts), the metrics and the dashboard's recent
 * events subscribe here, so the protocol code has one call per event and
 * knows nothing of who listens. Never fired per message: the hot path stays
 * free of observers.
 */
import type { Connection } from "./connection.ts";

export interface ConnectedEvent {
  conn: Connection;
  clientId: string;
  /** The session was resumed (Session Present). */
  resumed: boolean;
  clean: boolean;
}

export interface DisconnectedEvent {
  conn: Connection;
  /** "" when the connection ended before a CONNECT was accepted. */
  clientId: string;
  why: string;
  /** The v5 reason code sent in DISCONNECT, or undefined when none was sent. */
  reason: number | undefined;
  /** It had finished CONNECT (a refused or idle socket did not). */
  wasActive: boolean;
}

export interface RefusedEvent {
  conn: Connection;
  clientId: string;
  /** The reason code of the refusal (v5 numbering; 3.1.1 gets its mapped return code). */
  code: number;
  why: string | undefined;
}

export interface TakeoverEvent {
  clientId: string;
  oldRemote: string;
  newRemote: string;
}

type Listener<E> = (e: E) => void;

export class BrokerEvents {
  readonly connected: Listener<ConnectedEvent>[] = [];
  readonly disconnected: Listener<DisconnectedEvent>[] = [];
  readonly refused: Listener<RefusedEvent>[] = [];
  readonly takeover: Listener<TakeoverEvent>[] = [];

  /** Call every listener; one that throws does not stop the others or the caller. */
  emit<E>(listeners: readonly Listener<E>[], e: E): void {
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!(e);
      } catch {
        // An observer's failure must never reach the protocol path.
      }
    }
  }
}
