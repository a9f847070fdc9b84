/**
 * @module client-id-patterns
 * Which Client IDs a user may connect with (auth.users[].clientIdPattern,
 * else auth.clientIdPattern; `%u` is the user name): globs compiled once per
 * user and kept while the config's glob is unchanged, so a reload that
 * changes one takes effect at the next CONNECT.
 */
import { globRegExp } from "./acl.ts";
import type { Config } from "./config.ts";

/** Users whose compiled pattern is kept; beyond it the cache starts over (bounded memory). */
const MAX_CACHED = 10_000;

export class ClientIdPatterns {
  private readonly cache = new Map<string, { glob: string; re: RegExp }>();

  /** The pattern `user`'s Client ID must match, or null when any is allowed. */
  pattern(auth: Config["auth"], user: string): RegExp | null {
    const glob = auth.users.find((u) => u.username === user)?.clientIdPattern ?? auth.clientIdPattern;
    if (glob === undefined) return null;
    let re = this.cache.get(user);
    if (re === undefined || re.glob !== glob) {
      re = { glob, re: globRegExp(glob, user) };
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      this.cache.set(user, re);
    }
    return re.re;
  }
}
