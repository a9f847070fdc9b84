/**
 * A raw MQTT client over WebSocket (RFC 6455, written here for the tests):
 * the HTTP upgrade with a chosen subprotocol, masked client frames, and the
 * broker's frames unwrapped and fed to the RawClient's mqtt-packet parser.
 * `write` sends one binary frame; `sendFrame` sends any frame (text,
 * fragments with FIN clear, continuation), for the [MQTT-6.0.0-x] cases.
 * Also `upgradeRequest`, which returns the broker's raw HTTP answer.
 */
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import * as tls from "node:tls";
import { RawClient } from "./raw.ts";

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

export interface WsOptions {
  path?: string;
  /** Sec-WebSocket-Protocol header value; null sends none. */
  protocols?: string | null;
  /** wss: TLS options (ca, cert, key); absent for ws. */
  tls?: tls.ConnectionOptions;
  /** More request headers (e.g. Origin). */
  headers?: Record<string, string>;
}

/** Open a TCP (or TLS) socket to 127.0.0.1:port. */
function open(port: number, t: tls.ConnectionOptions | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = t ? tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...t }, () => resolve(s)) : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
}

function request(path: string, protocols: string | null, extra: Record<string, string> = {}): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
    "Sec-WebSocket-Version: 13",
  ];
  if (protocols !== null) lines.push(`Sec-WebSocket-Protocol: ${protocols}`);
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** Send an upgrade (or, with `upgrade: false`, a plain GET) and return the status line, headers and body the broker answered. */
export async function upgradeRequest(
  port: number,
  opts: WsOptions & { upgrade?: boolean } = {},
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const s = await open(port, opts.tls);
  const req = opts.upgrade === false ? `GET ${opts.path ?? "/mqtt"} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n` : request(opts.path ?? "/mqtt", opts.protocols === undefined ? "mqtt" : opts.protocols, opts.headers);
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    s.on("data", (d: Buffer) => {
      chunks.push(d);
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const len = /content-length: *(\d+)/i.exec(text.slice(0, end));
      if (/^HTTP\/1\.1 101/.test(text) || (len && text.length >= end + 4 + Number(len[1]))) resolve();
    });
    s.on("close", () => resolve());
  });
  s.on("error", () => {});
  s.write(req);
  await Promise.race([done, Bun.sleep(3000)]);
  s.destroy();
  const text = Buffer.concat(chunks).toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  const head = text.slice(0, end < 0 ? text.length : end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const h of head.slice(1)) {
    const i = h.indexOf(":");
    if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return { status: Number(head[0]?.split(" ")[1] ?? 0), headers, body: end < 0 ? "" : text.slice(end + 4) };
}

/** Encode one client frame (masked, as RFC 6455 §5.3 requires of clients). */
export function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

export class RawWsClient extends RawClient {
  /** The subprotocol the broker selected. */
  protocol = "";
  /** Close frames from the broker: their codes. */
  readonly closeCodes: number[] = [];
  /** Opcodes of every frame the broker sent, in order. */
  readonly opcodes: number[] = [];
  private pendingIn: Buffer = Buffer.alloc(0);
  private upgraded = false;
  private onUpgrade: ((status: string) => void) | null = null;

  /** Upgrade to MQTT over WebSocket; rejects unless the broker answers 101. */
  static async connectWs(port: number, version: 3 | 4 | 5 = 4, opts: WsOptions = {}): Promise<RawWsClient> {
    const s = await open(port, opts.tls);
    const c = new RawWsClient(s, version);
    const status = await new Promise<string>((resolve) => {
      c.onUpgrade = resolve;
      s.once("close", () => resolve("closed before the upgrade answer"));
      s.write(request(opts.path ?? "/mqtt", opts.protocols === undefined ? "mqtt" : opts.protocols, opts.headers));
    });
    if (!status.startsWith("HTTP/1.1 101")) {
      s.destroy();
      throw new Error(`upgrade refused: ${status.split("\r\n")[0]}`);
    }
    return c;
  }

  static async connectedWs(port: number, version: 3 | 4 | 5 = 4, opts: Record<string, unknown> = {}, ws: WsOptions = {}): Promise<RawWsClient> {
    return RawClient.handshaken(await RawWsClient.connectWs(port, version, ws), opts);
  }

  /** One binary frame carrying `data`. */
  override write(data: Buffer | number[]): void {
    this.sendFrame(OP_BINARY, Buffer.isBuffer(data) ? data : Buffer.from(data));
  }

  sendFrame(opcode: number, payload: Buffer, fin = true): void {
    this.socket.write(frame(opcode, payload, fin));
  }

  protected override input(d: Buffer): void {
    this.pendingIn = this.pendingIn.length ? Buffer.concat([this.pendingIn, d]) : d;
    if (!this.upgraded) {
      const end = this.pendingIn.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.pendingIn.subarray(0, end).toString("latin1");
      this.pendingIn = this.pendingIn.subarray(end + 4);
      this.upgraded = true;
      this.protocol = /sec-websocket-protocol: *(\S+)/i.exec(head)?.[1] ?? "";
      this.onUpgrade?.(head);
    }
    for (;;) {
      const b = this.pendingIn;
      if (b.length < 2) return;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      const opcode = b[0]! & 0x0f;
      const payload = b.subarray(off, off + len);
      this.pendingIn = b.subarray(off + len);
      this.opcodes.push(opcode);
      if (opcode === OP_BINARY || opcode === OP_CONT) super.input(Buffer.from(payload));
      else if (opcode === OP_CLOSE) {
        this.closeCodes.push(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
        this.socket.end(frame(OP_CLOSE, Buffer.from(payload.subarray(0, 2))));
      } else if (opcode === OP_PING) this.socket.write(frame(OP_PONG, Buffer.from(payload)));
    }
  }
}
