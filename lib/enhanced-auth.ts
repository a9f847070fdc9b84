/**
 * @module enhanced-auth
 * MQTT 5 enhanced authentication (v5 §4.12): a hook interface for methods
 * that run a multi-step AUTH exchange, and one real method, SCRAM-SHA-256
 * (RFC 5802 / RFC 7677) over the users in the config. The broker drives an
 * exchange step by step from CONNECT and AUTH packets (handlers/connect.ts,
 * handlers/auth.ts), for the first authentication and for re-authentication.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import type { Config } from "./config.ts";
import { RC } from "./protocol/reason-codes.ts";

/** What one step of an exchange decided. */
export type AuthStep =
  | { kind: "continue"; data: Buffer }
  | { kind: "success"; data?: Buffer; username?: string }
  | { kind: "fail"; code: number; reason: string };

/** One running exchange: fed the client's Authentication Data, step after step. */
export interface AuthExchange {
  step(data: Buffer | undefined): AuthStep;
}

/** An authentication method, registered by name in `Broker.authMethods`. */
export interface AuthMethod {
  readonly name: string;
  start(): AuthExchange;
}

const ITERATIONS = 4096;

interface ScramCredentials {
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest();
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest();

/** Derive SCRAM credentials from a password (RFC 5802 §3). */
function scramCredentials(password: string, salt: Buffer, iterations = ITERATIONS): ScramCredentials {
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  return { salt, storedKey: sha256(hmac(salted, "Client Key")), serverKey: hmac(salted, "Server Key") };
}

/** Decode a SCRAM saslname ("=2C" is ",", "=3D" is "="). */
function saslName(s: string): string | null {
  if (/=(?!2C|3D)/.test(s)) return null;
  return s.replace(/=2C/g, ",").replace(/=3D/g, "=");
}

function attrs(msg: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of msg.split(",")) {
    const i = part.indexOf("=");
    if (i === 1) m.set(part[0]!, part.slice(2));
  }
  return m;
}

/**
 * SCRAM-SHA-256 for the users of `auth.users` that have a plain-text
 * password (a password stored as an argon2/bcrypt hash cannot be used for
 * SCRAM). Salted credentials are derived once per user and cached. An unknown
 * user runs the exchange to the end with a stable fake salt, so the answer
 * does not reveal which user names exist.
 */
export class ScramSha256 implements AuthMethod {
  readonly name = "SCRAM-SHA-256";
  private readonly passwords: Map<string, string>;
  private readonly cache = new Map<string, ScramCredentials>();
  private readonly secret = randomBytes(32);

  constructor(users: Config["auth"]["users"]) {
    this.passwords = new Map(users.filter((u) => !u.password.startsWith("$argon2") && !u.password.startsWith("$2")).map((u) => [u.username, u.password]));
  }

  private credentials(user: string): ScramCredentials | null {
    const pw = this.passwords.get(user);
    if (pw === undefined) return null;
    let c = this.cache.get(user);
    if (!c) this.cache.set(user, (c = scramCredentials(pw, randomBytes(16))));
    return c;
  }

  start(): AuthExchange {
    let stage = 0;
    let username = "";
    let creds: ScramCredentials | null = null;
    let fakeSalt: Buffer | null = null;
    let nonce = "";
    let clientFirstBare = "";
    let serverFirst = "";
    let gs2 = "";
    const fail = (reason: string, code: number = RC.BAD_USER_NAME_OR_PASSWORD): AuthStep => ({ kind: "fail", code, reason });
    return {
      step: (data) => {
        const text = data?.toString("utf8") ?? "";
        if (stage === 0) {
          // client-first-message: gs2-header "n,," then "n=user,r=nonce"
          const m = /^([ny]),(?:a=[^,]*)?,(.*)$/.exec(text);
          if (!m) return fail("SCRAM: client-first-message expected (no channel binding)", RC.NOT_AUTHORIZED);
          gs2 = text.slice(0, text.length - m[2]!.length);
          clientFirstBare = m[2]!;
          const a = attrs(clientFirstBare);
          const user = saslName(a.get("n") ?? "");
          const cnonce = a.get("r");
          if (!user || !cnonce) return fail("SCRAM: malformed client-first-message", RC.NOT_AUTHORIZED);
          username = user;
          creds = this.credentials(user);
          if (!creds) fakeSalt = hmac(this.secret, user).subarray(0, 16);
          nonce = cnonce + randomBytes(18).toString("base64");
          serverFirst = `r=${nonce},s=${(creds?.salt ?? fakeSalt)!.toString("base64")},i=${ITERATIONS}`;
          stage = 1;
          return { kind: "continue", data: Buffer.from(serverFirst) };
        }
        if (stage === 1) {
          stage = 2;
          // client-final-message: "c=<b64 gs2>,r=<nonce>,p=<proof>"
          const i = text.lastIndexOf(",p=");
          if (i < 0) return fail("SCRAM: malformed client-final-message", RC.NOT_AUTHORIZED);
          const withoutProof = text.slice(0, i);
          const a = attrs(withoutProof);
          if (a.get("c") !== Buffer.from(gs2).toString("base64") || a.get("r") !== nonce) {
            return fail("SCRAM: channel binding or nonce mismatch", RC.NOT_AUTHORIZED);
          }
          if (!creds) return fail("SCRAM: authentication failed");
          const proof = Buffer.from(text.slice(i + 3), "base64");
          const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
          const signature = hmac(creds.storedKey, authMessage);
          if (proof.length !== signature.length) return fail("SCRAM: authentication failed");
          const clientKey = Buffer.alloc(proof.length);
          for (let k = 0; k < proof.length; k++) clientKey[k] = proof[k]! ^ signature[k]!;
          if (!timingSafeEqual(sha256(clientKey), creds.storedKey)) return fail("SCRAM: authentication failed");
          const serverSignature = hmac(creds.serverKey, authMessage).toString("base64");
          return { kind: "success", data: Buffer.from(`v=${serverSignature}`), username };
        }
        return fail("SCRAM: exchange already finished", RC.PROTOCOL_ERROR);
      },
    };
  }
}

/** The methods a broker offers by default. */
export function defaultAuthMethods(cfg: Config["auth"]): Map<string, AuthMethod> {
  const scram = new ScramSha256(cfg.users);
  return new Map<string, AuthMethod>([[scram.name, scram]]);
}
