/**
 * @module auth
 * Basic authentication: anonymous access on or off, and users from
 * auth.users (a plain-text password or a hash) and from auth.passwordFile
 * (Mosquitto's format, password-file.ts). A user in both is the config's:
 * the file cannot override what the config says. Hashes ($6$, $7$,
 * argon2, bcrypt) are verified asynchronously so a slow hash never blocks
 * the event loop; the CONNECT waits (its connection holds later packets)
 * meanwhile. Returns a v5 reason code: 0 accepts.
 */
import { timingSafeEqual } from "node:crypto";
import type { Config } from "./config.ts";
import { isHash, readPasswordFile, verifyHash } from "./password-file.ts";
import { RC } from "./protocol/reason-codes.ts";

export class Authenticator {
  /** User name -> plain-text password or hash. */
  private readonly users: Map<string, string>;
  private readonly allowAnonymous: boolean;

  /** Reads auth.passwordFile (synchronously: at start and on reload); throws PasswordFileError. */
  constructor(cfg: Config["auth"]) {
    this.allowAnonymous = cfg.allowAnonymous;
    this.users = cfg.passwordFile !== undefined ? readPasswordFile(cfg.passwordFile) : new Map();
    for (const u of cfg.users) this.users.set(u.username, u.password);
  }

  /** Is `username` a configured user? */
  has(username: string): boolean {
    return this.users.has(username);
  }

  /** The configured user names (for reload: whose connections to close when removed). */
  usernames(): string[] {
    return [...this.users.keys()];
  }

  /**
   * 0 to accept, else the reason code (0x86 bad credentials, 0x87 not
   * authorized). `allowAnonymous` is the listener's override of the global
   * setting, if it has one.
   */
  check(username: string | undefined, password: Buffer | undefined, allowAnonymous = this.allowAnonymous): number | Promise<number> {
    // No users configured and anonymous access on: credentials are not checked (as mosquitto does).
    if (this.users.size === 0 && allowAnonymous) return 0;
    if (username === undefined) {
      return allowAnonymous && password === undefined ? 0 : RC.NOT_AUTHORIZED;
    }
    const stored = this.users.get(username);
    if (stored === undefined) return RC.BAD_USER_NAME_OR_PASSWORD;
    if (password === undefined) return RC.BAD_USER_NAME_OR_PASSWORD;
    if (isHash(stored)) return verifyHash(stored, password).then((ok) => (ok ? 0 : RC.BAD_USER_NAME_OR_PASSWORD));
    const a = Buffer.from(stored, "utf8");
    return a.length === password.length && timingSafeEqual(a, password) ? 0 : RC.BAD_USER_NAME_OR_PASSWORD;
  }
}
