/**
 * The client side of SCRAM-SHA-256 (RFC 5802 / 7677), for tests of the
 * broker's enhanced authentication. Independent of lib/enhanced-auth.ts.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest();

export class ScramClient {
  readonly nonce = randomBytes(18).toString("base64");
  private bare = "";
  private serverSignature = "";

  constructor(
    readonly username: string,
    readonly password: string,
  ) {}

  /** client-first-message */
  first(): Buffer {
    this.bare = `n=${this.username.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${this.nonce}`;
    return Buffer.from(`n,,${this.bare}`);
  }

  /** client-final-message for the server-first-message. */
  final(serverFirst: Buffer | string, proofOverride?: Buffer): Buffer {
    const sf = serverFirst.toString();
    const a = new Map(sf.split(",").map((p) => [p[0]!, p.slice(2)] as [string, string]));
    const r = a.get("r")!;
    if (!r.startsWith(this.nonce)) throw new Error("server nonce does not extend ours");
    const salt = Buffer.from(a.get("s")!, "base64");
    const iterations = Number(a.get("i"));
    const salted = pbkdf2Sync(this.password, salt, iterations, 32, "sha256");
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const withoutProof = `c=biws,r=${r}`;
    const authMessage = `${this.bare},${sf},${withoutProof}`;
    const sig = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ sig[i]!;
    this.serverSignature = hmac(hmac(salted, "Server Key"), authMessage).toString("base64");
    return Buffer.from(`${withoutProof},p=${(proofOverride ?? proof).toString("base64")}`);
  }

  /** True when the server-final-message proves the server knows the password. */
  verifyServer(serverFinal: Buffer | string): boolean {
    return serverFinal.toString() === `v=${this.serverSignature}`;
  }
}
