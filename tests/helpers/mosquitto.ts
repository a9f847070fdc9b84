/**
 * A real Mosquitto broker (Debian's `/usr/sbin/mosquitto -c CONF`) run as a
 * child process for tests: its config written to a temp directory, its
 * listeners on free loopback ports (picked by binding port 0, retried with
 * other ports if one was taken meanwhile), ready once it logs "running",
 * its log (stderr) kept as a string, SIGKILL and restart on the same ports.
 *
 * `MOSQUITTO` is null when the program is not installed: the tests using it
 * skip, printing why.
 */
import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const find = (name: string, path: string): string | null => Bun.which(name) ?? (existsSync(path) ? path : null);

/** The mosquitto program, or null when not installed. */
export const MOSQUITTO = find("mosquitto", "/usr/sbin/mosquitto");
/** mosquitto_passwd, or null when not installed. */
export const MOSQUITTO_PASSWD = find("mosquitto_passwd", "/usr/bin/mosquitto_passwd");
export const MOSQUITTO_MISSING = "mosquitto not found at /usr/sbin/mosquitto or on PATH (apt-get install mosquitto)";

/** A loopback port nothing listens on right now (bound with port 0, then released). */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

export interface MosquittoOptions {
  /** Listeners to open (default 1); their ports are `ports[0..n-1]`. */
  listeners?: number;
  /**
   * The config after the global lines written here (`user root` when run as
   * root, `log_dest stderr`): listeners, options. Called again with the same
   * ports and directory at a restart.
   */
  conf(ports: number[], dir: string): string;
}

export class Mosquitto {
  proc: Subprocess<"ignore", "ignore", "pipe"> | null = null;
  /** Everything it logged, over all its runs. */
  log = "";
  /** Where its config (and anything the test puts there: password file, persistence) lives. */
  readonly dir = mkdtempSync(join(tmpdir(), "bunmq-mosquitto-"));
  ports: number[] = [];
  private readonly confPath = join(this.dir, "mosquitto.conf");
  private exited: Promise<number> | null = null;

  private constructor(private readonly opts: MosquittoOptions) {}

  /** Start one on free ports; retried on other ports when one was taken between the pick and the bind. */
  static async start(opts: MosquittoOptions): Promise<Mosquitto> {
    const m = new Mosquitto(opts);
    for (let attempt = 1; ; attempt++) {
      m.ports = Array.from({ length: opts.listeners ?? 1 }, () => freePort());
      try {
        await m.run();
        return m;
      } catch (err) {
        if (attempt >= 5 || !/Address already in use/i.test(m.log)) {
          await m.cleanup();
          throw err;
        }
      }
    }
  }

  /** The first listener's port. */
  get port(): number {
    return this.ports[0]!;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Start (again) with the same ports and directory; resolves once it logs "running". */
  async run(ms = 5000): Promise<void> {
    if (this.running) throw new Error("mosquitto is already running");
    const head = process.getuid?.() === 0 ? "user root\n" : ""; // as root it would switch to the mosquitto user, who cannot read our temp files
    writeFileSync(this.confPath, `${head}log_dest stderr\n${this.opts.conf(this.ports, this.dir)}`);
    const from = this.log.length;
    const proc = Bun.spawn([MOSQUITTO!, "-c", this.confPath], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    this.proc = proc;
    const dec = new TextDecoder();
    const drained = (async () => {
      try {
        for await (const chunk of proc.stderr) this.log += dec.decode(chunk, { stream: true });
      } catch {}
    })();
    this.exited = proc.exited.then(async (code) => {
      await drained;
      return code;
    });
    const end = Date.now() + ms;
    while (!/mosquitto version \S+ running/.test(this.log.slice(from))) {
      if (!this.running || Date.now() > end) {
        const why = this.running ? `not running after ${ms} ms` : `exited ${proc.exitCode ?? proc.signalCode}`;
        await this.kill();
        throw new Error(`mosquitto ${why}; its log:\n${this.log.slice(from)}`);
      }
      await Bun.sleep(5);
    }
  }

  /** SIGKILL (if running) and wait for it to be gone. */
  async kill(): Promise<void> {
    if (this.proc === null) return;
    if (this.running) this.proc.kill(9);
    await this.exited;
    this.proc = null;
  }

  /** Send a signal (SIGUSR1: write the persistence database now). */
  signal(sig: NodeJS.Signals): void {
    this.proc?.kill(sig);
  }

  /** How many times the log contains `re` (a global regular expression). */
  count(re: RegExp): number {
    return this.log.match(re)?.length ?? 0;
  }

  /** Kill it and remove its directory. */
  async cleanup(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
