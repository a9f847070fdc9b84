/**
 * @module json-error
 * Where a JSON text goes wrong, said the same way under every runtime:
 * JSON.parse's messages are the engine's own (JavaScriptCore under Bun, V8
 * under Deno) and a config error must read the same on both. Called only
 * after JSON.parse has refused the text, so it only has to find the first
 * place that breaks RFC 8259's grammar, not build a value.
 */

class Stop {
  constructor(
    readonly at: number,
    readonly what: string,
  ) {}
}

/** "unexpected '}' at line 3, column 5" for the first error in `text`, or null if it is valid JSON. */
export function jsonErrorAt(text: string): string | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const fail = (expected: string): never => {
    throw new Stop(i, i >= text.length ? `unexpected end of input (expected ${expected})` : `unexpected ${JSON.stringify(text[i])} (expected ${expected})`);
  };
  const literal = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail(`"${word}"`);
      i++;
    }
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      const ch = text[i];
      if (ch === undefined) fail('a closing "');
      if (ch === '"') {
        i++;
        return;
      }
      if (ch! < " ") fail("no control character inside a string");
      if (ch === "\\") {
        i++;
        const e = text[i];
        if (e === "u") {
          i++;
          for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(text[i] ?? "")) fail("four hex digits after \\u");
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail("an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\u");
      }
      i++;
    }
  };
  const number = () => {
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else if (/[1-9]/.test(text[i] ?? "")) while (/[0-9]/.test(text[i] ?? "")) i++;
    else fail("a digit");
    if (text[i] === ".") {
      i++;
      if (!/[0-9]/.test(text[i] ?? "")) fail("a digit after the decimal point");
      while (/[0-9]/.test(text[i] ?? "")) i++;
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      if (!/[0-9]/.test(text[i] ?? "")) fail("a digit in the exponent");
      while (/[0-9]/.test(text[i] ?? "")) i++;
    }
  };
  const value = (depth: number): void => {
    if (depth > 1000) fail("less nesting");
    ws();
    const ch = text[i];
    if (ch === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('a property name in double quotes');
        string();
        ws();
        if (text[i] !== ":") fail("':'");
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return;
        }
        fail("',' or '}'");
      }
    }
    if (ch === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return;
        }
        fail("',' or ']'");
      }
    }
    if (ch === '"') return string();
    if (ch === "t") return literal("true");
    if (ch === "f") return literal("false");
    if (ch === "n") return literal("null");
    if (ch === "-" || /[0-9]/.test(ch ?? "")) return number();
    fail("a value");
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i++; // a BOM (JSON.parse refuses it too)
    value(0);
    ws();
    if (i < text.length) fail("the end after the value");
    return null;
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    const before = text.slice(0, err.at);
    const line = before.split("\n").length;
    const column = err.at - before.lastIndexOf("\n");
    return `${err.what} at line ${line}, column ${column}`;
  }
}
