/**
 * Test certificates, made at run time with the `openssl` command (Debian's
 * openssl package; .ci/run installs it where missing): a CA, a server
 * certificate for localhost / 127.0.0.1, a renewed server certificate,
 * client certificates signed by the CA (CN alice, CN bob, one without a CN,
 * and CN dave, revoked in the CA's CRL), and an untrusted CA with its own
 * client certificate. All ECDSA P-256.
 * Made once per test process in a temp directory.
 *
 * Without openssl, `testCerts()` returns null and `skipReason` says why:
 * the TLS tests then skip, printing it.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Another certificate for the same names (certificate renewal); subject CN "renewed". */
  renewedCert: string;
  renewedKey: string;
  aliceCert: string;
  aliceKey: string;
  bobCert: string;
  bobKey: string;
  /** Signed by the CA, subject without a CN. */
  noCnCert: string;
  noCnKey: string;
  /** Signed by the CA, then revoked: listed in `crl`. */
  revokedCert: string;
  revokedKey: string;
  /** The CA's certificate revocation list (PEM), listing revokedCert. */
  crl: string;
  /** A CA nobody trusts, and a client certificate (CN mallory) it signed. */
  otherCa: string;
  malloryCert: string;
  malloryKey: string;
}

let made: TestCerts | null | undefined;
export let skipReason = "";

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
}

function key(dir: string, name: string): string {
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  return join(dir, `${name}.key`);
}

function ca(dir: string, name: string, cn: string): string {
  key(dir, name);
  openssl(["req", "-x509", "-new", "-key", `${name}.key`, "-sha256", "-days", "2", "-subj", `/CN=${cn}`, "-out", `${name}.crt`], dir);
  return join(dir, `${name}.crt`);
}

function signed(dir: string, name: string, subj: string, caName: string, ext: string): string {
  key(dir, name);
  openssl(["req", "-new", "-key", `${name}.key`, "-subj", subj, "-out", `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${caName}.crt`, "-CAkey", `${caName}.key`, "-CAcreateserial", "-days", "2", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.crt`],
    dir,
  );
  return join(dir, `${name}.crt`);
}

/** Revoke `name`.crt with the CA `caName` and write its CRL (openssl ca needs a small database). */
function revoke(dir: string, name: string, caName: string): string {
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "crlnumber"), "1000\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${join(dir, "index.txt")}\ncrlnumber = ${join(dir, "crlnumber")}\ncertificate = ${join(dir, `${caName}.crt`)}\nprivate_key = ${join(dir, `${caName}.key`)}\ndefault_md = sha256\ndefault_crl_days = 2\n`,
  );
  openssl(["ca", "-config", "ca.cnf", "-revoke", `${name}.crt`], dir);
  openssl(["ca", "-config", "ca.cnf", "-gencrl", "-out", `${caName}.crl`], dir);
  return join(dir, `${caName}.crl`);
}

const SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
const CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n";

/** The test certificates, made on first use; null when openssl is not available. */
export function testCerts(): TestCerts | null {
  if (made !== undefined) return made;
  if (Bun.which("openssl") === null) {
    skipReason = "openssl not found (apt-get install -y openssl): TLS tests skipped";
    made = null;
    return made;
  }
  const dir = mkdtempSync(join(tmpdir(), "bunmq-certs-"));
  try {
    made = {
      dir,
      ca: ca(dir, "ca", "bunmq test CA"),
      serverCert: signed(dir, "server", "/CN=localhost", "ca", SERVER_EXT),
      serverKey: join(dir, "server.key"),
      renewedCert: signed(dir, "renewed", "/CN=renewed", "ca", SERVER_EXT),
      renewedKey: join(dir, "renewed.key"),
      aliceCert: signed(dir, "alice", "/CN=alice", "ca", CLIENT_EXT),
      aliceKey: join(dir, "alice.key"),
      bobCert: signed(dir, "bob", "/CN=bob", "ca", CLIENT_EXT),
      bobKey: join(dir, "bob.key"),
      noCnCert: signed(dir, "nocn", "/O=bunmq tests", "ca", CLIENT_EXT),
      noCnKey: join(dir, "nocn.key"),
      revokedCert: signed(dir, "dave", "/CN=dave", "ca", CLIENT_EXT),
      revokedKey: join(dir, "dave.key"),
      crl: revoke(dir, "dave", "ca"),
      otherCa: ca(dir, "other-ca", "untrusted CA"),
      malloryCert: signed(dir, "mallory", "/CN=mallory", "other-ca", CLIENT_EXT),
      malloryKey: join(dir, "mallory.key"),
    };
  } catch (err) {
    skipReason = `could not make test certificates: ${(err as Error).message}`;
    made = null;
  }
  return made;
}

/** Print why TLS tests skip (once per file that calls it). */
export function warnSkip(file: string): void {
  if (made === null) console.warn(`${file}: SKIPPED: ${skipReason}`);
}
