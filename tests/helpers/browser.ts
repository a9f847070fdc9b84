/**
 * A real headless Chromium driven over the DevTools protocol (no driver
 * library): launch, open a page, evaluate script in it, wait for a
 * condition, take a screenshot. Page errors (exceptions, CSP violations,
 * console errors) are collected so tests can assert there were none.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The Chromium executable, or null (the caller skips, saying why). */
export function findChromium(): string | null {
  for (const name of [process.env.CHROMIUM, "chromium", "chromium-browser", "google-chrome"]) {
    if (!name) continue;
    const p = Bun.which(name);
    if (p !== null) return p;
  }
  return null;
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

export class Browser {
  private ws!: WebSocket;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Exceptions, console errors and log errors (CSP violations among them) seen on the page. */
  readonly errors: string[] = [];

  private constructor(
    private readonly proc: ReturnType<typeof Bun.spawn>,
    private readonly profile: string,
  ) {}

  static async launch(exe: string, width = 1400, height = 1000): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), "bunmq-chromium-"));
    const proc = Bun.spawn(
      [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0", `--user-data-dir=${profile}`, `--window-size=${width},${height}`, "about:blank"],
      { stdout: "ignore", stderr: "pipe", stdin: "ignore" },
    );
    const b = new Browser(proc, profile);
    try {
      // Chromium writes its DevTools port to DevToolsActivePort in the profile once it listens.
      const end = Date.now() + 30_000;
      let port = 0;
      while (port === 0) {
        if (Date.now() > end) throw new Error("chromium did not open its DevTools port within 30 s");
        if (proc.exitCode !== null) throw new Error(`chromium exited with ${proc.exitCode}`);
        try {
          port = Number(readFileSync(join(profile, "DevToolsActivePort"), "utf8").split("\n")[0]);
        } catch {
          await Bun.sleep(50);
        }
      }
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { type: string; webSocketDebuggerUrl: string }[];
      const page = targets.find((t) => t.type === "page");
      if (page === undefined) throw new Error("chromium has no page target");
      await b.connect(page.webSocketDebuggerUrl);
      await b.send("Runtime.enable");
      await b.send("Log.enable");
      await b.send("Page.enable");
      await b.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
      return b;
    } catch (e) {
      await b.close();
      throw e;
    }
  }

  private connect(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("cannot connect to chromium's DevTools"));
      ws.onmessage = (ev) => {
        const msg = JSON.parse(String(ev.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: Record<string, any> };
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (msg.error) p?.reject(new Error(msg.error.message));
          else p?.resolve(msg.result ?? {});
          return;
        }
        if (msg.method === "Runtime.exceptionThrown") this.errors.push(`exception: ${msg.params?.exceptionDetails?.exception?.description ?? msg.params?.exceptionDetails?.text}`);
        if (msg.method === "Runtime.consoleAPICalled" && msg.params?.type === "error") this.errors.push(`console.error: ${JSON.stringify(msg.params.args?.map((a: { value?: unknown; description?: string }) => a.value ?? a.description))}`);
        if (msg.method === "Log.entryAdded" && msg.params?.entry?.level === "error") this.errors.push(`log: ${msg.params.entry.text} ${msg.params.entry.url ?? ""}`);
      };
    });
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Navigate and wait for the load event. */
  async goto(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
    await this.waitFor("document.readyState === 'complete' && location.href !== 'about:blank'", "page load");
  }

  /** Evaluate an expression in the page (promises awaited), returning its value. */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = (await this.send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true })) as { result?: { value?: T }; exceptionDetails?: { text: string; exception?: { description?: string } } };
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result?.value as T;
  }

  /** Poll `expression` until it is truthy; returns its value. */
  async waitFor<T = unknown>(expression: string, what: string, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    let last: unknown;
    for (;;) {
      try {
        last = await this.eval<T>(expression);
        if (last) return last as T;
      } catch (e) {
        last = e;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${expression}); last: ${String(last)}`);
      await Bun.sleep(50);
    }
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Buffer> {
    const r = (await this.send("Page.captureScreenshot", { format: "png" })) as { data: string };
    return Buffer.from(r.data, "base64");
  }

  async close(): Promise<void> {
    try {
      this.ws?.close();
    } catch {
      // already gone
    }
    this.proc.kill("SIGKILL");
    await this.proc.exited;
    rmSync(this.profile, { recursive: true, force: true });
  }
}
