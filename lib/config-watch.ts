/**
 * @module config-watch
 * When to reload (reload.ts does the applying): on SIGHUP, and when the
 * config file, the password file or the ACL file changes on disk. Changes
 * are debounced (editors and `mv` produce bursts of events) and watched
 * through their directories, so a file replaced by rename, as editors and
 * `bunmq passwd` do, is still seen. A config that fails validation is
 * refused with a log line naming the field; the old one stays in force.
 */
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { type Config, ConfigError, loadConfig, type Overrides } from "./config.ts";
import { log } from "./log.ts";
import { applyConfig, type Reloadable, type ReloadResult } from "./reload.ts";

const DEBOUNCE_MS = 300;

export class ConfigWatcher {
  private watchers = new Map<string, FSWatcher>();
  /** Watched directory -> the file names in it that trigger a reload. */
  private files = new Map<string, Set<string>>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private readonly running: Reloadable,
    /** The config file, or undefined when the broker runs on defaults and flags. */
    private readonly path: string | undefined,
    private readonly overrides: Overrides,
    /** Watch files for changes (SIGHUP and `reload()` work either way). */
    private readonly watchFiles = true,
  ) {
    if (watchFiles) this.rewatch(running.broker.config);
  }

  /** Load the config again and apply it (SIGHUP, a file change, or a caller). */
  reload(trigger: string): ReloadResult {
    log.info("reloading config", { trigger });
    let next: Config;
    try {
      next = loadConfig(this.path, this.overrides);
    } catch (err) {
      const error = err instanceof ConfigError ? err.message : `cannot read the config: ${(err as Error).message}`;
      log.warn("reload refused; the running config stays", { err: error });
      return { applied: false, error, changes: [], disconnected: 0, restartNeeded: [], tls: [] };
    }
    const result = applyConfig(this.running, next);
    if (result.applied && this.watchFiles) this.rewatch(next);
    return result;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watch the files `cfg` names (the password and ACL files may have moved). */
  private rewatch(cfg: Config): void {
    const wanted = [this.path, cfg.auth.passwordFile, cfg.auth.aclFile].filter((p): p is string => p !== undefined).map((p) => resolve(p));
    this.files = new Map();
    for (const f of wanted) {
      const dir = dirname(f);
      let set = this.files.get(dir);
      if (set === undefined) this.files.set(dir, (set = new Set()));
      set.add(basename(f));
    }
    for (const [dir, w] of this.watchers) {
      if (!this.files.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of this.files.keys()) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => this.changed(dir, name));
        w.on("error", (err) => log.warn("cannot watch for config changes", { dir, err }));
        this.watchers.set(dir, w);
      } catch (err) {
        log.warn("cannot watch for config changes; SIGHUP still reloads", { dir, err: err as Error });
      }
    }
  }

  private changed(dir: string, name: string | Buffer | null): void {
    if (this.stopped) return;
    const file = name === null ? null : name.toString();
    // No name (some platforms): any change in the directory may be ours.
    if (file !== null && !this.files.get(dir)?.has(file)) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      try {
        this.reload(`file changed: ${file ?? dir}`);
      } catch (err) {
        log.error("reload failed", { err: err as Error, stack: (err as Error).stack });
      }
    }, DEBOUNCE_MS);
  }
}
