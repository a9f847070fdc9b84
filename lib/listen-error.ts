/**
 * @module listen-error
 * Turns what `Bun.listen` throws into one line a person can act on. Bun's
 * own message is only "Failed to listen at HOST" whatever went wrong; the
 * cause is in the error's `code` (EADDRINUSE, EACCES, EADDRNOTAVAIL, with
 * `errno`, `syscall: "listen"`, `address` and `port`). A host name that does
 * not resolve, or is not an address at all, throws with no `code`.
 */

/** A listener that could not be opened; `message` is one line, without a program-name prefix. */
export class ListenError extends Error {
  constructor(
    message: string,
    /** The errno name from Bun (e.g. "EADDRINUSE"), or undefined when Bun gave none. */
    readonly code: string | undefined,
    readonly host: string,
    readonly port: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ListenError";
  }
}

/** host:port as a user would type it: an IPv6 address in brackets. */
export function formatAddress(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * The error to report for `err`, thrown by `Bun.listen({ hostname: host, port })`.
 * An error that is already a ListenError is returned as it is, so that
 * mapping twice (listener and entry point) is harmless.
 */
export function listenError(err: unknown, host: string, port: number): Error {
  if (err instanceof ListenError) return err;
  const code = errorCode(err);
  const at = formatAddress(host, port);
  const cause = { cause: err };
  switch (code) {
    case "EADDRINUSE":
      return new ListenError(`${at} is already in use (EADDRINUSE); another broker? use --port`, code, host, port, cause);
    case "EACCES":
      // Linux: ports below net.ipv4.ip_unprivileged_port_start (1024 by default) need privilege.
      return new ListenError(
        `cannot listen on ${at}: permission denied (EACCES); ports below 1024 need root or CAP_NET_BIND_SERVICE, use --port 1024 or higher`,
        code,
        host,
        port,
        cause,
      );
    case "EADDRNOTAVAIL":
      return new ListenError(
        `cannot listen on ${at}: not an address of this machine (EADDRNOTAVAIL); use --host with a local address, or 0.0.0.0 for all`,
        code,
        host,
        port,
        cause,
      );
    default: {
      // Bun's own "Failed to listen at HOST" says nothing the line does not; any other message (an
      // invalid option from an embedding caller, say) is kept.
      const own = err instanceof Error && !err.message.startsWith("Failed to listen") ? err.message : "";
      if (code === undefined && own === "") {
        // No errno at all: Bun could not resolve the host name, or it is no address.
        return new ListenError(`cannot listen on ${at}: cannot resolve or bind that host; check --host`, code, host, port, cause);
      }
      const detail = [own, code && `(${code})`].filter(Boolean).join(" ");
      return new ListenError(`cannot listen on ${at}: ${detail}`, code, host, port, cause);
    }
  }
}

function errorCode(err: unknown): string | undefined {
  if (err === null || typeof err !== "object") return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.length > 0 ? code : undefined;
}
