/**
 * `bun:test` under `deno test`, as far as the shared suites use it
 * (tests/persistence/store.contract.ts): describe / test / afterEach /
 * afterAll and `expect` with toBe, toEqual, toBeDefined, toBeInstanceOf,
 * toContain, and `.not`. deno.json maps the `bun:test` specifier here, so
 * the same file runs under both runners. Each test becomes one `Deno.test`
 * named "describe > … > test".
 *
 * toEqual follows Bun's: recursive equality that ignores prototypes and
 * properties whose value is undefined; typed arrays compare by their bytes.
 */
type Fn = () => void | Promise<void>;

interface Scope {
  name: string;
  afterEach: Fn[];
  parent: Scope | null;
}

const D = (globalThis as unknown as { Deno: { test(name: string, fn: () => Promise<void>): void } }).Deno;
const root: Scope = { name: "", afterEach: [], parent: null };
let scope = root;
const afterAlls: Fn[] = [];

export function describe(name: string, body: () => void): void {
  const parent = scope;
  scope = { name, afterEach: [], parent };
  try {
    body();
  } finally {
    scope = parent;
  }
}

export function test(name: string, fn: Fn, _timeoutMs?: number): void {
  const at = scope;
  const names: string[] = [];
  for (let s: Scope | null = at; s !== null && s !== root; s = s.parent) names.unshift(s.name);
  D.test([...names, name].join(" > "), async () => {
    try {
      await fn();
    } finally {
      for (let s: Scope | null = at; s !== null; s = s.parent) for (const h of s.afterEach) await h();
    }
  });
}
export const it = test;

export function afterEach(fn: Fn): void {
  scope.afterEach.push(fn);
}

/** Run once every test is done (only synchronous work completes: the process is ending). */
export function afterAll(fn: Fn): void {
  if (afterAlls.push(fn) === 1) globalThis.addEventListener("unload", () => afterAlls.forEach((f) => void f()));
}

// ---------------------------------------------------------------- expect

function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b)) return false;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((v, i) => equal(v, (b as unknown[])[i]));
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  for (const k of keys) if (!equal(ra[k], rb[k])) return false;
  return true;
}

const show = (v: unknown) => {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : ArrayBuffer.isView(x) ? [...new Uint8Array(x.buffer, x.byteOffset, x.byteLength)] : x));
  } catch {
    return String(v);
  }
};

type Matchers = {
  toBe(want: unknown): void;
  toEqual(want: unknown): void;
  toBeDefined(): void;
  toBeInstanceOf(cls: abstract new (...args: never[]) => unknown): void;
  toContain(part: unknown): void;
};

function matchers(got: unknown, negated: boolean): Matchers {
  const check = (ok: boolean, what: string) => {
    if (ok === negated) throw new Error(`expected ${show(got)} ${negated ? "not " : ""}${what}`);
  };
  return {
    toBe: (want) => check(Object.is(got, want), `to be ${show(want)}`),
    toEqual: (want) => check(equal(got, want), `to equal ${show(want)}`),
    toBeDefined: () => check(got !== undefined, "to be defined"),
    toBeInstanceOf: (cls) => check(got instanceof cls, `to be an instance of ${cls.name}`),
    toContain: (part) => check(typeof got === "string" ? got.includes(String(part)) : Array.isArray(got) && got.some((v) => Object.is(v, part)), `to contain ${show(part)}`),
  };
}

export function expect(got: unknown): Matchers & { not: Matchers } {
  return { ...matchers(got, false), not: matchers(got, true) };
}
