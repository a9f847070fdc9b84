/**
 * @module run/certs
 * Benchmark certificates, made at run time with the `openssl` command into
 * OUT/certs/: a CA and an ECDSA P-256 server certificate for localhost and
 * 127.0.0.1 (subjectAltName), valid 2 days. Both brokers get the same
 * files, and the C loadgen verifies against the CA (`--cafile`). The keys
 * are throwaway and world-readable: Mosquitto started as root drops to the
 * user "mosquitto" before it may need them.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { die } from "./env.ts";

export interface BenchCerts {
  dir: string;
  /** CA certificate (PEM): the loadgen's --cafile. */
  ca: string;
  /** Server certificate (PEM), signed by the CA. */
  cert: string;
  /** Its private key (PEM, ECDSA P-256). */
  key: string;
}

const SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) die(`openssl ${args.join(" ")} failed: ${r.stderr.toString().trim()}`);
}

let made: BenchCerts | null = null;

/** The run's certificates, made on first use in OUT/certs/. */
export function benchCerts(out: string): BenchCerts {
  if (made) return made;
  if (Bun.which("openssl") === null) die("TLS transports need the openssl command to make certificates (apt-get install -y openssl)");
  const dir = join(out, "certs");
  mkdirSync(dir, { recursive: true });
  chmodSync(out, 0o755);
  chmodSync(dir, 0o755);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir);
  openssl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "2", "-subj", "/CN=bunmq bench CA", "-out", "ca.crt"], dir);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"], dir);
  openssl(["req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr"], dir);
  writeFileSync(join(dir, "server.ext"), SERVER_EXT);
  openssl(
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-sha256", "-extfile", "server.ext", "-out", "server.crt"],
    dir,
  );
  const c: BenchCerts = { dir, ca: join(dir, "ca.crt"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
  for (const f of [c.ca, c.cert, c.key]) {
    if (!existsSync(f)) die(`openssl did not write ${f}`);
    chmodSync(f, 0o644);
  }
  made = c;
  return c;
}
