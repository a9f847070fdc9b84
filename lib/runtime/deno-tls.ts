/**
 * @module runtime/deno-tls
 * TLS options for Deno's listeners (Deno.listenTls, Deno.serve) and its
 * dial: Deno takes a certificate chain and an unencrypted key, nothing more.
 * An option Deno cannot honour (client certificates, cipher lists, TLS
 * 1.3-only) refuses to start the listener, saying so, rather than be
 * silently dropped: a listener must never be weaker than its config says.
 */
import { createPrivateKey } from "node:crypto";
import { Deno } from "./deno-globals.ts";
import type { TlsOptions } from "./types.ts";

/** Deno wants an unencrypted key: decrypt it here with its passphrase. */
export function plainKey(tls: TlsOptions): string {
  if (tls.passphrase === undefined) return tls.key!;
  return createPrivateKey({ key: tls.key!, passphrase: tls.passphrase }).export({ type: "pkcs8", format: "pem" }) as string;
}

/** A server's certificate and key, or an error naming the option Deno cannot honour on `what` listeners. */
export function denoServerTls(tls: TlsOptions, what: string): { cert: string; key: string } {
  const refuse = (option: string) =>
    new Error(`${option}: not supported on ${what} listeners under Deno (Deno takes a certificate and a key only); run this listener under Bun`);
  if (tls.requestCert === true) throw refuse("client certificates (tls.requireClientCert)");
  if (tls.secureOptions !== undefined) throw refuse("tls.minVersion TLSv1.3");
  if (tls.ciphers !== undefined) throw refuse("tls.ciphers");
  return { cert: tls.cert!, key: plainKey(tls) };
}

/**
 * SO_REUSEPORT (a TLS listener binds a second socket on its port to reload
 * certificates) needs --unstable-net: throw, saying so, where Deno would end
 * the process (exit 70) rather than throw. `Deno.listenDatagram` exists only
 * with the flag.
 */
export function requireUnstableNet(): void {
  if (typeof Deno.listenDatagram === "function") return;
  throw new Error('SO_REUSEPORT (a TLS listener, so that certificates can be reloaded) needs Deno\'s --unstable-net flag, or "unstable": ["net"] in deno.json');
}
