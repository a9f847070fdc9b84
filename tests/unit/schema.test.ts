/**
 * config.schema.json, the JSON Schema editors use for config files: it is
 * what scripts/gen-schema.ts generates from the zod schema now (CI runs the
 * same check), every option has a description, every object refuses
 * unknown keys as the strict zod objects do, and it agrees with the
 * broker's own validation on real configs, checked by a small validator
 * for the keywords the schema uses (no validator library is a dependency).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigSchema, parseConfig } from "../../lib/config.ts";
import { generate, SCHEMA_PATH } from "../../scripts/gen-schema.ts";

type Node = Record<string, any>;
const schema = JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as Node;

/** Errors of `v` against `s` (type, enum, bounds, properties, additionalProperties, required, items, anyOf). */
function validate(v: unknown, s: Node, at = "(root)"): string[] {
  if (s.anyOf) return (s.anyOf as Node[]).some((a) => validate(v, a, at).length === 0) ? [] : [`${at}: matches no alternative`];
  const errs: string[] = [];
  const type = s.type as string | undefined;
  const actual = Array.isArray(v) ? "array" : v === null ? "null" : Number.isInteger(v) ? "integer" : typeof v;
  if (type !== undefined && !(type === actual || (type === "number" && actual === "integer"))) return [`${at}: expected ${type}, got ${actual}`];
  if (s.const !== undefined && v !== s.const) errs.push(`${at}: expected ${JSON.stringify(s.const)}`);
  if (s.enum && !(s.enum as unknown[]).includes(v)) errs.push(`${at}: not one of ${s.enum}`);
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errs.push(`${at}: below ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) errs.push(`${at}: above ${s.maximum}`);
  }
  if (typeof v === "string" && s.minLength !== undefined && v.length < s.minLength) errs.push(`${at}: shorter than ${s.minLength}`);
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errs.push(`${at}: fewer than ${s.minItems} items`);
    if (s.items) v.forEach((x, i) => errs.push(...validate(x, s.items, `${at}.${i}`)));
  }
  if (actual === "object") {
    const o = v as Record<string, unknown>;
    for (const r of (s.required as string[] | undefined) ?? []) if (!(r in o)) errs.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      const p = s.properties?.[k];
      if (p !== undefined) errs.push(...validate(x, p, `${at}.${k}`));
      else if (s.additionalProperties === false) errs.push(`${at}.${k}: unknown option`);
    }
  }
  return errs;
}

function zodAccepts(c: unknown): boolean {
  try {
    parseConfig(c);
    return true;
  } catch {
    return false;
  }
}

describe("config.schema.json", () => {
  test("is what scripts/gen-schema.ts generates from lib/config.ts (run `bun run schema` after changing either)", () => {
    expect(readFileSync(SCHEMA_PATH, "utf8")).toBe(generate());
  });

  test("has every top-level option of the zod schema, and a description on every option at every depth", () => {
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(ConfigSchema.shape).sort());
    const undocumented: string[] = [];
    const walk = (n: Node, path: string) => {
      for (const [k, p] of Object.entries((n.properties ?? {}) as Record<string, Node>)) {
        const here = path ? `${path}.${k}` : k;
        if (typeof p.description !== "string" || p.description.length < 3) undocumented.push(here);
        walk(p, here);
        if (p.items) walk(p.items, `${here}[]`);
      }
    };
    walk(schema, "");
    expect(undocumented).toEqual([]);
    expect(schema.properties.limits.properties.maxPacketSize.default).toBe(1048576);
    expect(schema.properties.listeners.items.properties.protocol.enum).toEqual(["mqtt", "mqtts", "ws", "wss", "http"]);
  });

  test("every object refuses unknown keys (additionalProperties: false), as the strict zod objects do", () => {
    const open: string[] = [];
    const walk = (n: Node, path: string) => {
      if (n.type === "object" && n.additionalProperties !== false) open.push(path || "(root)");
      for (const [k, p] of Object.entries((n.properties ?? {}) as Record<string, Node>)) walk(p, path ? `${path}.${k}` : k);
      if (n.items) walk(n.items, `${path}[]`);
    };
    walk(schema, "");
    expect(open).toEqual([]);
    for (const k of ["limits", "persistence", "auth", "mqtt", "sys", "http", "shutdown"]) {
      expect(Object.keys(schema.properties[k].properties).sort()).toEqual(Object.keys((ConfigSchema.shape as Record<string, any>)[k].unwrap().shape).sort());
    }
  });

  test("config.example.json (with its $schema key) is valid under it", () => {
    const example = JSON.parse(readFileSync(join(import.meta.dir, "..", "..", "config.example.json"), "utf8"));
    expect(example.$schema).toBe("./config.schema.json");
    expect(validate(example, schema)).toEqual([]);
    expect(parseConfig(example).$schema).toBe("./config.schema.json");
  });

  test("agrees with the broker's validation: what one refuses the other refuses", () => {
    const cases: [unknown, boolean][] = [
      [{}, true],
      [{ listeners: [{ port: 1883 }, { protocol: "ws", port: 8080 }, { protocol: "http", port: 8080 }] }, true],
      [{ limits: { maxPacketSize: 4096 }, sys: { interval: 0 }, shutdown: { publishWills: false } }, true],
      [{ $schema: "./config.schema.json", logLevel: "silent" }, true],
      [{ limitz: {} }, false],
      [{ limits: { maxPakcetSize: 4096 } }, false],
      [{ listeners: [{ port: 1883, tls_: {} }] }, false],
      [{ limits: { maxPacketSize: "big" } }, false],
      [{ limits: { maxPacketSize: 1.5 } }, false],
      [{ listeners: [{ protocol: "ftp" }] }, false],
      [{ listeners: [{ port: 70000 }] }, false],
      [{ listeners: [] }, false],
      [{ logLevel: "loud" }, false],
      [{ http: { token: "short" } }, false],
      [{ auth: { users: [{ username: "u" }] } }, false],
      [{ sys: { interval: -1 } }, false],
    ];
    for (const [c, ok] of cases) {
      expect({ c, zod: zodAccepts(c) }).toEqual({ c, zod: ok });
      expect({ c, schema: validate(c, schema).length === 0 }).toEqual({ c, schema: ok });
    }
  });
});
