/**
 * The fuzzer in the repository (fuzz/): its mutators are deterministic per
 * seed and each does what it says, and a bounded run of 45,000 packets (a
 * warm-up and two campaigns of 15,000 against one broker process) passes:
 * the broker stays up and answers a fresh CONNECT within 1 s, the QoS 1
 * control pair loses nothing, no ERROR line is logged, and the last
 * campaign does not raise the peak RSS. Long campaigns: `bun run fuzz --count N --seed S`.
 */
import { describe, expect, test } from "bun:test";
import { runFuzz } from "../../fuzz/main.ts";
import { KINDS, mutate, split } from "../../fuzz/mutate.ts";
import { Rng } from "../../fuzz/prng.ts";
import { connectSeed, streamSeeds } from "../../fuzz/seeds.ts";

describe("mutators", () => {
  const seed = streamSeeds(5)[1]!; // a v5 QoS 1 PUBLISH with properties

  test("the same seed gives the same mutations; another seed others", () => {
    const run = (s: number) => {
      const rng = new Rng(s);
      return Array.from({ length: 200 }, () => mutate(rng, seed, rng.pick(KINDS), true).toString("hex"));
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  test("every kind changes the bytes (over a few tries), and each does its own thing", () => {
    const rng = new Rng(1);
    for (const kind of KINDS) {
      const outs = Array.from({ length: 20 }, () => mutate(rng, seed, kind, true));
      expect(outs.some((o) => !o.equals(seed))).toBe(true);
    }
    const len = (b: Buffer) => b.length;
    expect(Array.from({ length: 20 }, () => len(mutate(rng, seed, "truncate", true))).every((n) => n < seed.length)).toBe(true);
    expect(Array.from({ length: 20 }, () => len(mutate(rng, seed, "insert", true))).every((n) => n > seed.length)).toBe(true);
    expect(Array.from({ length: 20 }, () => len(mutate(rng, seed, "delete", true))).every((n) => n < seed.length)).toBe(true);
    // Structure-aware kinds re-frame: the Remaining Length stays right, so the broker reads the bad field.
    for (const kind of ["property", "utf8", "strlen"] as const) {
      for (let i = 0; i < 20; i++) {
        const m = mutate(rng, seed, kind, true);
        const s = split(m)!;
        expect(m.length).toBe(m.indexOf(s.body) + s.body.length);
      }
    }
    // utf8 puts a sequence that is never valid UTF-8 where a string was.
    const bad = mutate(new Rng(3), connectSeed(5, "fz-1", false), "utf8", true);
    expect(new TextDecoder("utf-8", { fatal: false }).decode(bad).includes("\uFFFD") || bad.includes(Buffer.from([0, 0]))).toBe(true);
    // length rewrites the Remaining Length field (the body stays).
    const l = mutate(new Rng(5), seed, "length", true);
    expect(l[0]).toBe(seed[0]);
    expect(l.subarray(l.length - 8).equals(seed.subarray(seed.length - 8))).toBe(true);
  });
});

test("a bounded run (45,000 packets over 32 connections: warm-up and two campaigns) passes every criterion", async () => {
  const res = await runFuzz({ count: 45_000, seed: 20261205, connections: 32, log: (l) => console.log(l) });
  expect(res.failures).toEqual([]);
  expect(res.campaigns).toHaveLength(3);
  const [a, b] = res.campaigns;
  expect(res.campaigns.reduce((n, c) => n + c.packets, 0)).toBeGreaterThanOrEqual(45_000);
  expect(a!.closedByBroker).toBeGreaterThan(0); // the mutations are seen as malformed: not a no-op campaign
  expect(a!.controlSent).toBeGreaterThan(0);
  expect(a!.probes + b!.probes).toBeGreaterThan(0);
}, 60_000);
