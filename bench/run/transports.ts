/**
 * @module run/transports
 * The transports a run can measure (`--transport tcp|tls|ws|wss`) and what
 * each one means for the three parties: the bunmq listener to configure
 * (protocol mqtt, mqtts, ws or wss on port 0), the Mosquitto listener lines
 * (certfile/keyfile for TLS, `protocol websockets` for ws), and the C
 * loadgen's flags (`--tls --cafile`, `--ws PATH`). loadgen.ts speaks plain
 * TCP only, so anything but tcp runs on the C tool.
 */
import type { BenchCerts } from "./certs.ts";

export const TRANSPORTS = ["tcp", "tls", "ws", "wss"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** The path of the WebSocket endpoint on both brokers. */
export const WS_PATH = "/mqtt";

export const isTls = (t: Transport): boolean => t === "tls" || t === "wss";
export const isWs = (t: Transport): boolean => t === "ws" || t === "wss";

/** bunmq's listener protocol name for a transport (also the scheme of its "listening on" line). */
export function bunmqProtocol(t: Transport): "mqtt" | "mqtts" | "ws" | "wss" {
  return t === "tcp" ? "mqtt" : t === "tls" ? "mqtts" : t;
}

/** The bunmq `listeners[0]` entry for a transport, on 127.0.0.1 and a free port. */
export function bunmqListener(t: Transport, certs: BenchCerts | null): Record<string, unknown> {
  const l: Record<string, unknown> = { protocol: bunmqProtocol(t), host: "127.0.0.1", port: 0 };
  if (isWs(t)) l.path = WS_PATH;
  if (isTls(t)) {
    if (!certs) throw new Error(`transport ${t} needs certificates`);
    l.tls = { cert: certs.cert, key: certs.key };
  }
  return l;
}

/**
 * Mosquitto 2.0 listener lines for a transport on `port`. Debian's 2.0.11
 * binds a websockets listener to every interface when given an address
 * (libwebsockets takes an interface name there), so ws/wss listeners name
 * the interface `lo`; and it refuses to start with websockets listeners
 * only, so those get an idle plain listener on `extraPort` too.
 */
export function mosquittoListener(t: Transport, port: number, extraPort: number, certs: BenchCerts | null): string[] {
  const lines = isWs(t) ? [`listener ${extraPort} 127.0.0.1`, `listener ${port} lo`, "protocol websockets"] : [`listener ${port} 127.0.0.1`];
  if (isTls(t)) {
    if (!certs) throw new Error(`transport ${t} needs certificates`);
    lines.push(`certfile ${certs.cert}`, `keyfile ${certs.key}`);
  }
  return lines;
}

/** The C loadgen's transport flags; `cafile` empty = do not verify (a broker the runner did not start). */
export function loadgenTransportArgs(t: Transport, cafile: string, wsPath = WS_PATH): string[] {
  const a: string[] = [];
  if (isTls(t)) a.push("--tls", ...(cafile ? ["--cafile", cafile] : []));
  if (isWs(t)) a.push("--ws", wsPath);
  return a;
}

/** `--transport tls,ws` into a list without repeats, in the order given. */
export function parseTransports(s: string): Transport[] | string {
  const out: Transport[] = [];
  for (const x of s.split(",").map((v) => v.trim()).filter(Boolean)) {
    if (!(TRANSPORTS as readonly string[]).includes(x)) return `--transport: unknown transport ${x} (one or more of ${TRANSPORTS.join(",")})`;
    if (!out.includes(x as Transport)) out.push(x as Transport);
  }
  return out.length ? out : `--transport: one or more of ${TRANSPORTS.join(",")}`;
}
