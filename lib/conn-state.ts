/**
 * @module conn-state
 * The lifecycle states of a connection, in a module of their own so that the
 * handlers, housekeeping and routing can test them without importing
 * `Connection` (handlers import connection.ts for types only).
 */
export const enum State {
  /** Accepted; waiting for CONNECT. */
  New = 0,
  /** CONNECT received; authentication in progress (frames are held). */
  Connecting = 1,
  /** CONNACK 0x00 sent. */
  Active = 2,
  /** Closing or closed: nothing more is read or dispatched. */
  Closed = 3,
  /** Enhanced authentication exchange before CONNACK: only AUTH and DISCONNECT are allowed. */
  Authenticating = 4,
}
