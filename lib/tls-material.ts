/**
 * @module tls-material
 * Reads a listener's certificate, key and CA files into the TLS options of
 * the runtime seam, and checks them first (PEM that parses, a key that matches the
 * certificate, a certificate within its validity), so that a bad file stops
 * the start, or a SIGHUP reload, with one line naming the listener and the
 * file instead of a handshake failure later. Files are read whole at each
 * call: a reload picks up renewed certificates.
 */
import { constants, createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ListenerConfig } from "./config.ts";
import type { TlsOptions as TLSOptions } from "./runtime/index.ts";

export type TlsConfig = NonNullable<ListenerConfig["tls"]>;

/** A certificate, key or CA file that cannot be used; `message` is one line. */
export class TlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsError";
  }
}

export interface TlsMaterial {
  /** For the runtime's TCP and HTTP listeners (runtime/types.ts). */
  options: TLSOptions;
  /** Subject of the server certificate (for the log). */
  subject: string;
  /** End of the server certificate's validity. */
  validTo: Date;
  /** SHA-256 fingerprint of the server certificate (tells a reload what changed). */
  fingerprint: string;
}

/**
 * Read and check the files of `t`; `where` names the listener in errors
 * (e.g. "listeners.1 (mqtts://0.0.0.0:8883)"). Throws TlsError.
 */
export function loadTlsMaterial(t: TlsConfig, where: string, now = Date.now()): TlsMaterial {
  const certPem = readPem(t.cert, "certificate", where);
  const keyPem = readPem(t.key, "key", where);
  const caPem = t.ca === undefined ? undefined : readPem(t.ca, "CA file", where);
  const crlPem = t.crl === undefined ? undefined : readPem(t.crl, "CRL", where);
  if (crlPem !== undefined && !crlPem.includes("-----BEGIN X509 CRL-----")) throw new TlsError(`${where}: ${t.crl} holds no X509 CRL`);

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new TlsError(`${where}: ${t.cert} is not a PEM certificate (${short(err)})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, passphrase: t.passphrase });
  } catch (err) {
    throw new TlsError(`${where}: cannot load the key ${t.key} (${short(err)}${t.passphrase === undefined ? "; encrypted? set tls.passphrase" : ""})`);
  }
  if (!cert.checkPrivateKey(key)) throw new TlsError(`${where}: the key ${t.key} does not belong to the certificate ${t.cert}`);
  const validTo = new Date(cert.validTo);
  if (validTo.getTime() < now) throw new TlsError(`${where}: the certificate ${t.cert} expired on ${validTo.toISOString()}`);
  if (caPem !== undefined) {
    try {
      new X509Certificate(caPem);
    } catch (err) {
      throw new TlsError(`${where}: ${t.ca} is not a PEM certificate (${short(err)})`);
    }
  }

  const options: TLSOptions = {
    cert: certPem,
    key: keyPem,
    // Client certificates are requested only with requireClientCert, and then a
    // client without one signed by `ca` fails the handshake.
    requestCert: t.requireClientCert,
    rejectUnauthorized: true,
  };
  if (t.passphrase !== undefined) options.passphrase = t.passphrase;
  if (caPem !== undefined) options.ca = caPem;
  if (crlPem !== undefined) options.crl = crlPem;
  if (t.ciphers !== undefined) options.ciphers = t.ciphers;
  // TLS 1.0 and 1.1 are never offered by Bun's TLS; 1.3 only drops 1.2 as well.
  if (t.minVersion === "TLSv1.3") options.secureOptions = constants.SSL_OP_NO_TLSv1_2;
  return { options, subject: cert.subject.replace(/\n/g, ", "), validTo, fingerprint: cert.fingerprint256 };
}

function readPem(path: string, what: string, where: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TlsError(`${where}: cannot read the ${what} ${path}${e.code ? ` (${e.code})` : ""}`);
  }
  if (!text.includes("-----BEGIN ")) throw new TlsError(`${where}: the ${what} ${path} holds no PEM block`);
  return text;
}

function short(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0]!;
}
