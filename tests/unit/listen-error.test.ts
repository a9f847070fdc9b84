/**
 * lib/listen-error.ts: what Bun.listen really throws (EADDRINUSE,
 * EADDRNOTAVAIL, a host name that does not resolve, an invalid option),
 * turned into one line naming host:port (IPv6 bracketed) and what to do.
 * EACCES needs an unprivileged process: see tests/e2e/cli.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { formatAddress, ListenError, listenError } from "../../lib/listen-error.ts";

/** What Bun.listen throws for this host and port (fails the test if it does not throw). */
function thrownBy(hostname: string, port: number): unknown {
  try {
    const l = Bun.listen({ hostname, port, socket: { data() {} } });
    l.stop(true);
  } catch (err) {
    return err;
  }
  throw new Error(`Bun.listen(${hostname}, ${port}) did not throw`);
}

function busy(hostname: string) {
  return Bun.listen({ hostname, port: 0, socket: { data() {} } });
}

describe("the errors Bun.listen throws (the shapes listenError relies on)", () => {
  test("EADDRINUSE: code, errno, syscall listen, address and port; the message says only 'Failed to listen at HOST'", () => {
    const b = busy("127.0.0.1");
    try {
      const e = thrownBy("127.0.0.1", b.port) as Error & Record<string, unknown>;
      expect(e).toBeInstanceOf(Error);
      expect(e.message).toBe("Failed to listen at 127.0.0.1");
      expect({ code: e.code, syscall: e.syscall, address: e.address, port: e.port }).toEqual({
        code: "EADDRINUSE",
        syscall: "listen",
        address: "127.0.0.1",
        port: b.port,
      });
      expect(typeof e.errno).toBe("number");
    } finally {
      b.stop(true);
    }
  });

  test("EADDRNOTAVAIL for an address this machine does not have", () => {
    const e = thrownBy("192.0.2.1", 0) as Record<string, unknown>;
    expect(e.code).toBe("EADDRNOTAVAIL");
  });

  test("a host name that does not resolve: no code at all", () => {
    const e = thrownBy("no-such-host.invalid", 0) as Error & Record<string, unknown>;
    expect(e.code).toBeUndefined();
    expect(e.message).toBe("Failed to listen at no-such-host.invalid");
  });
});

describe("listenError", () => {
  test("EADDRINUSE: exactly the one-line message, a ListenError with the code", () => {
    const b = busy("127.0.0.1");
    try {
      const raw = thrownBy("127.0.0.1", b.port);
      const e = listenError(raw, "127.0.0.1", b.port);
      expect(e).toBeInstanceOf(ListenError);
      expect(e.message).toBe(`127.0.0.1:${b.port} is already in use (EADDRINUSE); another broker? use --port`);
      expect((e as ListenError).code).toBe("EADDRINUSE");
      expect(e.cause).toBe(raw);
    } finally {
      b.stop(true);
    }
  });

  test("EADDRINUSE on IPv6: the address is bracketed", () => {
    let b;
    try {
      b = busy("::1");
    } catch {
      return void console.warn("skipped: no IPv6 loopback here");
    }
    try {
      const e = listenError(thrownBy("::1", b.port), "::1", b.port);
      expect(e.message).toBe(`[::1]:${b.port} is already in use (EADDRINUSE); another broker? use --port`);
    } finally {
      b.stop(true);
    }
  });

  test("EADDRNOTAVAIL: names the address and --host", () => {
    const e = listenError(thrownBy("192.0.2.1", 1883), "192.0.2.1", 1883);
    expect(e.message).toBe(
      "cannot listen on 192.0.2.1:1883: not an address of this machine (EADDRNOTAVAIL); use --host with a local address, or 0.0.0.0 for all",
    );
  });

  test("no code (unresolvable host): names host:port and --host", () => {
    const e = listenError(thrownBy("no-such-host.invalid", 1883), "no-such-host.invalid", 1883);
    expect(e.message).toBe("cannot listen on no-such-host.invalid:1883: cannot resolve or bind that host; check --host");
  });

  test("an invalid option from an embedding caller keeps Bun's message and code", () => {
    const e = listenError(thrownBy("127.0.0.1", 70000), "127.0.0.1", 70000);
    expect(e.message).toMatch(/^cannot listen on 127\.0\.0\.1:70000: .*70000.* \(ERR_OUT_OF_RANGE\)$/);
  });

  test("every message is one line", () => {
    for (const e of [
      listenError(thrownBy("192.0.2.1", 0), "192.0.2.1", 0),
      listenError(thrownBy("no-such-host.invalid", 0), "no-such-host.invalid", 0),
      listenError("not even an Error", "127.0.0.1", 1),
    ]) {
      expect(e.message).not.toContain("\n");
    }
  });

  test("mapping twice is harmless: a ListenError is returned as it is", () => {
    const once = listenError(thrownBy("192.0.2.1", 0), "192.0.2.1", 0);
    expect(listenError(once, "other", 1)).toBe(once);
  });

  test("formatAddress brackets IPv6 only", () => {
    expect(formatAddress("127.0.0.1", 1883)).toBe("127.0.0.1:1883");
    expect(formatAddress("::", 1883)).toBe("[::]:1883");
    expect(formatAddress("fe80::1%eth0", 1)).toBe("[fe80::1%eth0]:1");
    expect(formatAddress("localhost", 0)).toBe("localhost:0");
  });
});
