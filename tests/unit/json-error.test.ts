/**
 * lib/json-error.ts: the config's JSON error message, the same under Bun and
 * Deno. It must agree with JSON.parse on what is valid (checked on fixed
 * cases and on many random mutations of a real config), and say where the
 * first error is, by line and column.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { jsonErrorAt } from "../../lib/json-error.ts";

const parses = (t: string) => {
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
};

describe("jsonErrorAt", () => {
  test("names the first error by line and column", () => {
    expect(jsonErrorAt("{ nope")).toBe(`unexpected "n" (expected a property name in double quotes) at line 1, column 3`);
    expect(jsonErrorAt('{\n  "a": 1,\n  "b": 2,\n}')).toBe(`unexpected "}" (expected a property name in double quotes) at line 4, column 1`);
    expect(jsonErrorAt('{"a": [1, 2')).toBe("unexpected end of input (expected ',' or ']') at line 1, column 12");
    expect(jsonErrorAt('{"a": tru}')).toBe(`unexpected "}" (expected "true") at line 1, column 10`);
    expect(jsonErrorAt('{"a": 01}')).toBe(`unexpected "1" (expected ',' or '}') at line 1, column 8`);
    expect(jsonErrorAt("")).toBe("unexpected end of input (expected a value) at line 1, column 1");
  });

  test("valid JSON gives null (objects, arrays, escapes, numbers, literals, whitespace)", () => {
    for (const t of ['{"a":[1,-0.5e+3,true,false,null,"x\\u00e9\\n\\"",{}],"b":{}}', " [ ] ", '"s"', "0", "-1E-2"]) {
      expect(parses(t)).toBe(true);
      expect(jsonErrorAt(t)).toBe(null);
    }
  });

  test("agrees with JSON.parse on 5000 random mutations of config.example.json", () => {
    const base = readFileSync(join(import.meta.dir, "../../config.example.json"), "utf8");
    const alphabet = '{}[]",:0123456789-+.eE \n\\tfnulrsa';
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let invalid = 0;
    for (let k = 0; k < 5000; k++) {
      let t = base;
      for (let m = 1 + rnd(3); m > 0; m--) {
        const at = rnd(t.length);
        const op = rnd(3);
        const ch = alphabet[rnd(alphabet.length)]!;
        t = op === 0 ? t.slice(0, at) + t.slice(at + 1) : op === 1 ? t.slice(0, at) + ch + t.slice(at) : t.slice(0, at) + ch + t.slice(at + 1);
      }
      const ok = parses(t);
      if (!ok) invalid++;
      const where = jsonErrorAt(t);
      if ((where === null) !== ok) throw new Error(`disagrees with JSON.parse (parses: ${ok}, says: ${where}) on:\n${t}`);
    }
    expect(invalid).toBeGreaterThan(1000);
  });
});
