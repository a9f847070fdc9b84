/**
 * lib/config.ts listener options beyond the basics (see also config.test.ts):
 * `tls.crl` (only with requireClientCert, resolved like the other TLS paths)
 * and `allowedOrigins` (ws/wss only, non-empty), and how ListenerInfo reads
 * them.
 */
import { describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "../../lib/config.ts";
import { ListenerInfo, normalOrigin } from "../../lib/listener-info.ts";

function message(input: object): string {
  try {
    parseConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

const TLS = { cert: "s.crt", key: "s.key" };

describe("tls.crl", () => {
  test("is resolved against the base directory, like cert, key and ca", () => {
    const c = parseConfig({ listeners: [{ protocol: "mqtts", tls: { ...TLS, ca: "ca.crt", requireClientCert: true, crl: "ca.crl" } }] }, "config", "/etc/bunmq");
    expect(c.listeners[0]!.tls!.crl).toBe("/etc/bunmq/ca.crl");
  });

  test("without requireClientCert it is refused, naming listeners.0.tls.crl", () => {
    expect(message({ listeners: [{ protocol: "mqtts", tls: { ...TLS, ca: "ca.crt", crl: "ca.crl" } }] })).toContain("listeners.0.tls.crl: only with requireClientCert");
  });
});

describe("allowedOrigins", () => {
  test("ws and wss take it; ListenerInfo compares origins case-insensitively without a trailing slash", () => {
    const c = parseConfig({ listeners: [{ protocol: "ws", port: 0, allowedOrigins: ["https://App.example.com/"] }] });
    const info = new ListenerInfo(0, c.listeners[0]!);
    expect(info.allowedOrigins!.has(normalOrigin("https://app.example.com"))).toBe(true);
    expect(info.allowedOrigins!.has(normalOrigin("https://app.example.com.evil"))).toBe(false);
    expect(new ListenerInfo(0, parseConfig({ listeners: [{ protocol: "ws" }] }).listeners[0]!).allowedOrigins).toBeNull();
  });

  test("on mqtt / mqtts it is refused; an empty list is refused", () => {
    expect(message({ listeners: [{ allowedOrigins: ["https://a"] }] })).toContain("listeners.0.allowedOrigins: only for protocol ws or wss");
    expect(message({ listeners: [{ protocol: "mqtts", tls: TLS, allowedOrigins: ["https://a"] }] })).toContain("listeners.0.allowedOrigins: only for protocol ws or wss");
    expect(message({ listeners: [{ protocol: "ws", allowedOrigins: [] }] })).toContain("listeners.0.allowedOrigins");
  });
});
