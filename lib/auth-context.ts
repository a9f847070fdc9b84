/**
 * @module auth-context
 * The authentication state one connection carries between packets: a
 * validated CONNECT waiting for its verdict, and the v5 enhanced
 * authentication exchange (v5 §4.12) with its method, for the first
 * authentication and for re-authentication. It lives apart from
 * `Connection`, which stays transport and framing.
 */
import type { AuthExchange } from "./enhanced-auth.ts";
import type { DecodedConnect } from "./protocol/connect-codec.ts";
import type { Will } from "./session.ts";

/** A validated CONNECT waiting for authentication to finish. */
export interface PendingConnect {
  p: DecodedConnect;
  clientId: string;
  assigned: boolean;
  will: Will | null;
  serverKeepAlive: number | undefined;
}

/** The v5 Authentication Method of a CONNECT and the exchange running under it. */
export class AuthContext {
  /** The exchange in progress (first authentication or re-authentication), or null. */
  exchange: AuthExchange | null = null;
  /** The CONNECT waiting for the exchange to finish (first authentication only). */
  pendingConnect: PendingConnect | null = null;

  constructor(
    /** Every AUTH must carry this method ([MQTT-4.12.0-7], v5 §3.15.2.2.2). */
    readonly method: string,
  ) {}
}
