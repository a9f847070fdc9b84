/**
 * @module runtime/deno-net-api
 * The few members of Deno's socket API that deno-net.ts uses, typed here:
 * the project is type-checked against Bun's types (@types/bun), which know
 * nothing of `Deno`. Reached through `globalThis`, so Bun can type-check
 * (and never run) this code.
 */

export interface DenoConn {
  readonly remoteAddr: unknown;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

export interface DenoTlsConn extends DenoConn {
  handshake(): Promise<unknown>;
}

export interface DenoListener {
  readonly addr: unknown;
  accept(): Promise<DenoConn>;
  close(): void;
}

interface ListenOptions {
  hostname: string;
  port: number;
  reusePort?: boolean;
}

export interface DenoNetApi {
  listen(o: ListenOptions): DenoListener;
  listenTls(o: ListenOptions & { cert: string; key: string }): DenoListener;
  connect(o: { hostname: string; port: number }): Promise<DenoConn>;
  connectTls(o: { hostname: string; port: number; serverName?: string; caCerts?: string[]; cert?: string; key?: string }): Promise<DenoTlsConn>;
}

export const Deno = (globalThis as unknown as { Deno: DenoNetApi }).Deno;
