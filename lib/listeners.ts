/**
 * @module listeners
 * Opens every configured listener on its transport — TCP and TLS through
 * tcp.ts, WebSocket and secure WebSocket through http-server.ts (listeners
 * that share a host:port share one HTTP server) — and reloads TLS
 * certificates for new connections without touching live ones.
 *
 * Certificate reload: a TLS listener binds with SO_REUSEPORT, so a
 * replacement with the new certificate can bind the same port; then the old
 * listener stops accepting and keeps its connections until they end. Before
 * the first bind, a plain bind of the same address (no SO_REUSEPORT) proves
 * the port is free: otherwise a second broker would silently share it.
 * Files that fail to load or a port that fails to bind leave the old
 * certificate in force.
 */
import type { Broker } from "./broker.ts";
import type { Config } from "./config.ts";
import { HttpApp } from "./http/app.ts";
import { HttpServer } from "./http-server.ts";
import { ListenerInfo } from "./listener-info.ts";
import { listenError } from "./listen-error.ts";
import { log } from "./log.ts";
import { runtime, type TcpServer, type TlsOptions as TLSOptions } from "./runtime/index.ts";
import { startTcpListener } from "./tcp.ts";
import { loadTlsMaterial, type TlsConfig, type TlsMaterial } from "./tls-material.ts";

/** What a certificate reload did for one TLS listener (or one shared HTTP server). */
export interface TlsReload {
  listener: string;
  result: "reloaded" | "unchanged" | "failed";
  detail: string;
}

/** One bound socket (a TCP/TLS listener, or an HTTP server carrying one or more WebSocket listeners). */
interface Unit {
  infos: ListenerInfo[];
  tls: TlsConfig | null;
  material: TlsMaterial | null;
  stop(closeActive: boolean): void;
  /** Bind a replacement with new TLS options; the old one keeps its connections. */
  swap(options: TLSOptions): void;
}

export class Listeners {
  /** One per configured listener, in config order (ports resolved). */
  readonly infos: ListenerInfo[];
  private readonly units: Unit[] = [];

  /** Open every listener of `config`; on failure, what was opened is closed and the error (ListenError, TlsError) thrown. */
  constructor(config: Config, broker: Broker) {
    this.infos = config.listeners.map((l, i) => new ListenerInfo(i, l));
    // Certificates first: a bad file stops the start before anything listens.
    const material = config.listeners.map((l, i) => (l.tls ? loadTlsMaterial(l.tls, this.infos[i]!.name) : null));
    try {
      const shared = new Map<string, HttpUnit>();
      const http: HttpUnit[] = [];
      config.listeners.forEach((l, i) => {
        const info = this.infos[i]!;
        const m = material[i]!;
        if (l.protocol === "mqtt" || l.protocol === "mqtts") {
          this.units.push(tcpUnit(info, broker, l.tls ?? null, m));
          return;
        }
        // Endpoints on one host:port share its HTTP server (config.ts allows that only with the same TLS).
        const key = `${l.host}|${l.port}`;
        let unit = l.port === 0 ? undefined : shared.get(key);
        if (unit === undefined) {
          unit = httpUnit(new HttpServer(l.host, m !== null ? exclusivePort(l.host, l.port) : l.port, broker), l.tls ?? null, m, broker);
          if (l.port !== 0) shared.set(key, unit);
          http.push(unit);
          this.units.push(unit);
        }
        unit.add(info);
      });
      // Bind the HTTP servers once all their endpoints are known.
      for (const u of http) u.bind();
    } catch (err) {
      this.stop(true);
      throw err;
    }
  }

  /**
   * Stop accepting; with `closeActive`, close every connection too. With
   * `keepHttp`, servers that carry an http listener stay up (a shutdown
   * answers /healthz with 503 until the end; the broker admits no new MQTT
   * connection meanwhile).
   */
  stop(closeActive: boolean, keepHttp = false): void {
    for (const u of this.units) if (!keepHttp || !u.infos.some((i) => i.protocol === "http")) u.stop(closeActive);
  }

  /** Re-read every TLS listener's files; changed certificates apply to new connections. Logs each result. */
  reloadTls(): TlsReload[] {
    const out: TlsReload[] = [];
    for (const u of this.units) {
      if (u.tls === null || u.material === null) continue;
      const name = u.infos.map((i) => i.url).join(", ");
      let next: TlsMaterial;
      try {
        next = loadTlsMaterial(u.tls, u.infos[0]!.name);
      } catch (err) {
        log.error("certificate reload failed; the old certificate stays in force", { listener: name, err: (err as Error).message });
        out.push({ listener: name, result: "failed", detail: (err as Error).message });
        continue;
      }
      if (sameFiles(next.options, u.material.options)) {
        log.info("certificate unchanged", { listener: name, subject: next.subject });
        out.push({ listener: name, result: "unchanged", detail: next.subject });
        continue;
      }
      try {
        u.swap(next.options);
      } catch (err) {
        log.error("certificate reload failed; the old certificate stays in force", { listener: name, err: (err as Error).message });
        out.push({ listener: name, result: "failed", detail: (err as Error).message });
        continue;
      }
      u.material = next;
      log.info("certificate reloaded; new connections use it", { listener: name, subject: next.subject, validTo: next.validTo.toISOString() });
      out.push({ listener: name, result: "reloaded", detail: next.subject });
    }
    return out;
  }
}

function tcpUnit(info: ListenerInfo, broker: Broker, tls: TlsConfig | null, material: TlsMaterial | null): Unit {
  if (material === null) {
    const l = startTcpListener(info, broker, { tls: null });
    info.port = l.port;
    return { infos: [info], tls: null, material: null, stop: (c) => l.stop(c), swap() {} };
  }
  info.port = exclusivePort(info.host, info.port);
  let current = startTcpListener(info, broker, { tls: material.options, reusePort: true });
  const retired: TcpServer[] = [];
  return {
    infos: [info],
    tls,
    material,
    stop(closeActive) {
      current.stop(closeActive);
      for (const r of retired) r.stop(closeActive);
    },
    swap(options) {
      const next = startTcpListener(info, broker, { tls: options, reusePort: true });
      current.stop(false); // stops accepting; its connections go on
      retired.push(current);
      current = next;
    },
  };
}

interface HttpUnit extends Unit {
  add(info: ListenerInfo): void;
  bind(): void;
}

function httpUnit(server: HttpServer, tls: TlsConfig | null, material: TlsMaterial | null, broker: Broker): HttpUnit {
  const infos: ListenerInfo[] = [];
  return {
    infos,
    tls,
    material,
    add(info) {
      infos.push(info);
      if (info.protocol === "http") server.app = new HttpApp(broker, info);
      else server.endpoints.set(info.path, info);
    },
    bind() {
      server.start(material?.options ?? null);
      for (const i of infos) i.port = server.boundPort;
    },
    stop: (c) => server.stop(c),
    swap: (options) => server.restart(options),
  };
}

/**
 * Prove host:port is free with a plain bind (no SO_REUSEPORT), and return
 * the port (port 0 resolved). A TLS listener then binds it with
 * SO_REUSEPORT, which a broker already on the port would not refuse.
 */
function exclusivePort(host: string, port: number): number {
  let probe;
  try {
    probe = runtime().listenTcp({ host, port, tls: null, accept: () => null });
  } catch (err) {
    throw listenError(err, host, port);
  }
  const bound = probe.port;
  probe.stop(true);
  return bound;
}

function sameFiles(a: TLSOptions, b: TLSOptions): boolean {
  return a.cert === b.cert && a.key === b.key && a.ca === b.ca && a.crl === b.crl && a.passphrase === b.passphrase;
}
