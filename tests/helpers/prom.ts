/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for
 * tests: it throws on anything a Prometheus server would refuse (a sample
 * of an undeclared family, a bad metric or label name, an unparsable value,
 * a TYPE after samples, a duplicate series, a histogram whose buckets are not
 * cumulative or whose +Inf bucket is not its count).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const lines = text.split("\n");
  lines.pop();
  for (const [i, line] of lines.entries()) {
    const at = `line ${i + 1}: ${line}`;
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (m === null) continue; // a plain comment
      const [, kind, name, rest = ""] = m;
      if (!NAME.test(name!)) throw new Error(`bad metric name, ${at}`);
      let f = families.get(name!);
      if (kind === "TYPE") {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`bad type, ${at}`);
        if (f !== undefined && f.samples.length > 0) throw new Error(`TYPE after samples, ${at}`);
        if (f === undefined) families.set(name!, (f = { name: name!, type: rest as Family["type"], help: "", samples: [] }));
        else f.type = rest as Family["type"];
      } else {
        if (f === undefined) families.set(name!, (f = { name: name!, type: "untyped", help: rest, samples: [] }));
        else f.help = rest;
      }
      continue;
    }
    const s = parseSample(line, at);
    const fam = familyOf(families, s.name);
    if (fam === undefined) throw new Error(`sample of an undeclared family, ${at}`);
    const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    if (series.has(key)) throw new Error(`duplicate series, ${at}`);
    series.add(key);
    fam.samples.push(s);
  }
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  const f = families.get(sample);
  if (f !== undefined) return f;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const h = families.get(sample.slice(0, -suffix.length));
    if (h !== undefined && (h.type === "histogram" || h.type === "summary")) return h;
  }
  return undefined;
}

function parseSample(line: string, at: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
  if (m === null) throw new Error(`bad sample, ${at}`);
  const labels: Record<string, string> = {};
  let body = m[3] ?? "";
  while (body.length > 0) {
    const lm = /^([^=]+)="((?:[^"\\]|\\.)*)"(,|$)/.exec(body);
    if (lm === null) throw new Error(`bad labels, ${at}`);
    const name = lm[1]!;
    if (!LABEL.test(name)) throw new Error(`bad label name ${name}, ${at}`);
    if (name in labels) throw new Error(`duplicate label ${name}, ${at}`);
    labels[name] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    body = body.slice(lm[0].length);
  }
  const v = m[4]!;
  const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : v === "NaN" ? NaN : Number(v);
  if (v !== "NaN" && Number.isNaN(value)) throw new Error(`bad value, ${at}`);
  return { name: m[1]!, labels, value };
}

function checkHistogram(f: Family): void {
  const buckets = f.samples.filter((s) => s.name === `${f.name}_bucket`);
  const count = f.samples.find((s) => s.name === `${f.name}_count`);
  if (buckets.length === 0 || count === undefined || !f.samples.some((s) => s.name === `${f.name}_sum`)) throw new Error(`histogram ${f.name} lacks buckets, _sum or _count`);
  let prevLe = -Infinity;
  let prev = 0;
  for (const b of buckets) {
    const le = b.labels.le === "+Inf" ? Infinity : Number(b.labels.le);
    if (!(le > prevLe)) throw new Error(`histogram ${f.name}: le not increasing`);
    if (b.value < prev) throw new Error(`histogram ${f.name}: buckets not cumulative`);
    prevLe = le;
    prev = b.value;
  }
  if (prevLe !== Infinity) throw new Error(`histogram ${f.name}: no +Inf bucket`);
  if (prev !== count.value) throw new Error(`histogram ${f.name}: +Inf bucket ${prev} != count ${count.value}`);
}

/** The value of the one sample of `name` whose labels include `labels`; throws when there is not exactly one. */
export function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const f = familyOf(families, name);
  if (f === undefined) throw new Error(`no family for ${name}`);
  const hits = f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}`);
  return hits[0]!.value;
}
