/**
 * A broker (or any command) run as a child process for tests that need a
 * real process: its stdout and stderr read continuously into strings, the
 * port from its "listening" line, its exit code with a timeout, SIGKILL.
 */
import type { Subprocess } from "bun";
import { resolve } from "node:path";

/** The checkout whose broker.ts runs (BUNMQ_ROOT: another checkout, to show a test fails on an older broker). */
export const ROOT = process.env.BUNMQ_ROOT ?? resolve(import.meta.dir, "../..");
export const LISTENING = /bunmq listening on mqtt:\/\/\S+:(\d+)/;

export class BrokerProcess {
  stdout = "";
  stderr = "";
  readonly done: Promise<number>;

  constructor(readonly proc: Subprocess<"ignore", "pipe", "pipe">) {
    const drain = async (s: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
      const dec = new TextDecoder();
      try {
        for await (const chunk of s) this[key] += dec.decode(chunk, { stream: true });
      } catch {}
    };
    const a = drain(proc.stdout, "stdout");
    const b = drain(proc.stderr, "stderr");
    this.done = proc.exited.then(async (code) => {
      await Promise.all([a, b]);
      return code;
    });
  }

  /** `bun broker.ts ARGS` in the repository root. */
  static start(args: string[]): BrokerProcess {
    return BrokerProcess.spawn([process.execPath, "broker.ts", ...args]);
  }

  /** Any command, in the repository root. */
  static spawn(cmd: string[]): BrokerProcess {
    return new BrokerProcess(Bun.spawn(cmd, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Wait until stdout matches `re`; throws with both outputs if the process exits first or after `ms`. */
  async waitStdout(re: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = this.stdout.match(re);
      if (m) return m;
      if (!this.running || Date.now() > end) {
        throw new Error(`no ${re} on stdout (exit ${this.proc.exitCode ?? this.proc.signalCode})\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
      }
      await Bun.sleep(10);
    }
  }

  /** The port from the listening line. */
  async port(ms = 15_000): Promise<number> {
    return Number((await this.waitStdout(LISTENING, ms))[1]);
  }

  /** Exit code once the process is gone; throws (and kills it) if it is still running after `ms`. */
  async exitCode(ms = 15_000): Promise<number> {
    const r = await Promise.race([this.done, Bun.sleep(ms).then(() => "running" as const)]);
    if (r === "running") {
      this.proc.kill(9);
      throw new Error(`process still running after ${ms} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
    }
    return r;
  }

  /** SIGKILL if still running, and wait for it to be gone. */
  async kill(): Promise<void> {
    if (this.running) this.proc.kill(9);
    await this.proc.exited;
  }
}
