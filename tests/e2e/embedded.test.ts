/**
 * The broker embedded in another program (`startBroker(config)` from
 * lib/server.ts, as a test suite would use it): the config's `logLevel`
 * applies without the CLI, and `stop()` releases the port.
 */
import { afterEach, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config.ts";
import { setLogLevel } from "../../lib/log.ts";
import { startBroker } from "../../lib/server.ts";
import { RawClient } from "../helpers/raw.ts";

const realWrite = process.stderr.write.bind(process.stderr);
afterEach(() => {
  process.stderr.write = realWrite;
  setLogLevel("error");
});

function capture(): string[] {
  const lines: string[] = [];
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  return lines;
}

test("embedded use honours the config's logLevel: debug lines appear with logLevel debug, none with error", async () => {
  for (const level of ["debug", "error"] as const) {
    setLogLevel(level === "debug" ? "error" : "debug"); // whatever the process had before
    const rb = await startBroker(parseConfig({ listeners: [{ host: "127.0.0.1", port: 0 }], persistence: { path: ":memory:" }, logLevel: level }));
    const lines = capture();
    try {
      const c = await RawClient.connected(rb.port, 4, { clientId: `embedded-${level}` });
      c.destroy();
      await Bun.sleep(50);
    } finally {
      process.stderr.write = realWrite;
      await rb.stop();
    }
    const debug = lines.filter((l) => / DEBUG client connected /.test(l));
    expect({ level, debugLines: debug.length > 0 }).toEqual({ level, debugLines: level === "debug" });
  }
});

test("stop() releases the port: a second embedded broker binds the same one", async () => {
  const config = (port: number) => parseConfig({ listeners: [{ host: "127.0.0.1", port }], persistence: { path: ":memory:" } });
  const a = await startBroker(config(0));
  const port = a.port;
  await a.stop();
  const b = await startBroker(config(port));
  expect(b.port).toBe(port);
  await b.stop();
});
