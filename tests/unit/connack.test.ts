/**
 * The hand-written success CONNACK (lib/protocol/connack.ts) decoded by the
 * reference codec (mqtt-packet): flags byte, reason code and every property.
 * [MQTT-3.2.2-1] (bits 7–1 zero), [MQTT-3.2.2-2/3] Session Present. Then the
 * size-aware encoders (success CONNACK, refusing CONNACK, DISCONNECT) for
 * every client Maximum Packet Size from 2 to 200 bytes ([MQTT-3.1.2-24]):
 * each result parses, has no trailing bytes, fits, and drops optional
 * properties only whole and only when they do not fit.
 */
import { describe, expect, test } from "bun:test";
import mqtt from "mqtt-packet";
import { ConnackEncoder, type ConnackExtras, encodeConnackRefusal } from "../../lib/protocol/connack.ts";
import { encodeDisconnect } from "../../lib/protocol/disconnect-encoder.ts";
import { Output } from "../../lib/protocol/output.ts";

function parse(bytes: Buffer, version: 4 | 5): Record<string, any> {
  const p = mqtt.parser({ protocolVersion: version });
  let got: Record<string, any> | null = null;
  let err: Error | null = null;
  p.on("packet", (x) => (got = x as unknown as Record<string, any>));
  p.on("error", (e) => (err = e));
  expect(p.parse(bytes)).toBe(0);
  if (err) throw err;
  return got!;
}

const enc = new ConnackEncoder({ receiveMaximum: 256, maximumPacketSize: 1048576, topicAliasMaximum: 64 });

describe("3.1.1 CONNACK", () => {
  for (const sp of [false, true]) {
    test(`session present ${sp}: bytes 20 02 0${sp ? 1 : 0} 00 [MQTT-3.2.2-1]`, () => {
      const out = new Output();
      enc.writeV3(out, sp);
      const bytes = Buffer.from(out.buf.subarray(0, out.len));
      expect(bytes.toString("hex")).toBe(`2002${sp ? "01" : "00"}00`);
      expect(bytes.equals(mqtt.generate({ cmd: "connack", sessionPresent: sp, returnCode: 0 } as mqtt.IConnackPacket))).toBe(true);
    });
  }
});

describe("v5 CONNACK", () => {
  const cases: [string, ConnackExtras | null][] = [
    ["no extras", null],
    ["assigned id", { assignedClientIdentifier: "bunmq-0123456789abcdef" }],
    ["all extras", { assignedClientIdentifier: "x", sessionExpiryInterval: 3600, serverKeepAlive: 30, responseInformation: "resp/x", authenticationMethod: "SCRAM-SHA-256", authenticationData: Buffer.from("v=abc") }],
    ["long auth data (2-byte lengths)", { authenticationMethod: "M", authenticationData: Buffer.alloc(300, 7) }],
  ];
  for (const [name, x] of cases) {
    for (const sp of [false, true]) {
      test(`${name}, session present ${sp}: mqtt-packet reads every property back`, () => {
        const out = new Output();
        enc.writeV5(out, sp, x);
        const p = parse(Buffer.from(out.buf.subarray(0, out.len)), 5);
        expect(p.cmd).toBe("connack");
        expect(p.sessionPresent).toBe(sp);
        expect(p.reasonCode).toBe(0);
        const props = p.properties;
        expect(props.receiveMaximum).toBe(256);
        expect(props.maximumPacketSize).toBe(1048576);
        expect(props.topicAliasMaximum).toBe(64);
        expect(props.retainAvailable).toBe(true);
        expect(props.wildcardSubscriptionAvailable).toBe(true);
        expect(props.subscriptionIdentifiersAvailable).toBe(true);
        expect(props.sharedSubscriptionAvailable).toBe(true);
        expect(props.assignedClientIdentifier).toBe(x?.assignedClientIdentifier);
        expect(props.sessionExpiryInterval).toBe(x?.sessionExpiryInterval);
        expect(props.serverKeepAlive).toBe(x?.serverKeepAlive);
        expect(props.responseInformation).toBe(x?.responseInformation);
        expect(props.authenticationMethod).toBe(x?.authenticationMethod);
        expect(props.authenticationData).toEqual(x?.authenticationData);
      });
    }
  }
});

// ---- sized for the client's Maximum Packet Size [MQTT-3.1.2-24] ----------------------

/** Size of `n` as a Variable Byte Integer (written out here, independent of lib/). */
const vbiSize = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4);
/** Whole packet size for `fixed` variable-header bytes and a property section of `plen` bytes. */
const sizeWith = (fixed: number, plen: number) => {
  const rl = fixed + vbiSize(plen) + plen;
  return 1 + vbiSize(rl) + rl;
};
const readVbi = (b: Buffer, p: number): [number, number] => {
  let v = 0;
  for (let mul = 1; ; mul *= 128) {
    const x = b[p++]!;
    v += (x & 0x7f) * mul;
    if ((x & 0x80) === 0) return [v, p];
  }
};

/**
 * The layout is exact: the Remaining Length covers the rest of the bytes and
 * the Property Length the rest of the packet (no trailing bytes, which
 * mqtt-packet would skip silently). Returns the Property Length (-1: no section).
 */
function propertyLength(bytes: Buffer, fixed: number): number {
  const [rl, p] = readVbi(bytes, 1);
  expect(p + rl).toBe(bytes.length);
  if (rl <= fixed) return -1; // DISCONNECT may stop after the Reason Code, or before it (v5 §3.14.2.2.1)
  const [plen, q] = readVbi(bytes, p + fixed);
  expect(q + plen).toBe(bytes.length);
  return plen;
}

/** mqtt-packet's decoding of exactly one whole packet. */
function parseOne(bytes: Buffer, version: 4 | 5): Record<string, any> {
  const p = mqtt.parser({ protocolVersion: version });
  const got: Record<string, any>[] = [];
  const errors: Error[] = [];
  p.on("packet", (x) => got.push(x as unknown as Record<string, any>));
  p.on("error", (e) => errors.push(e));
  expect(p.parse(bytes)).toBe(0);
  expect(errors).toEqual([]);
  expect(got.length).toBe(1);
  return got[0]!;
}

const utf8Len = (s: string) => Buffer.byteLength(s, "utf8");

describe("v5 success CONNACK within every client Maximum Packet Size from 2 to 200 [MQTT-3.1.2-24]", () => {
  const limits = { receiveMaximum: 256, maximumPacketSize: 1048576, topicAliasMaximum: 64 };
  const e = new ConnackEncoder(limits);
  const full: Required<ConnackExtras> = {
    assignedClientIdentifier: "bunmq-0123456789abcdef",
    sessionExpiryInterval: 3600,
    serverKeepAlive: 30,
    responseInformation: "resp/é/x",
    authenticationMethod: "SCRAM-SHA-256",
    authenticationData: Buffer.alloc(20, 7),
  };
  /** mqtt-packet name → [the value sent, its whole property size], ours then the client's extras. */
  const candidates = (x: ConnackExtras | null): [string, unknown, number][] => {
    const c: [string, unknown, number][] = [
      ["receiveMaximum", 256, 3],
      ["maximumPacketSize", 1048576, 5],
      ["topicAliasMaximum", 64, 3],
      ["retainAvailable", true, 2],
      ["wildcardSubscriptionAvailable", true, 2],
      ["subscriptionIdentifiersAvailable", true, 2],
      ["sharedSubscriptionAvailable", true, 2],
    ];
    if (x?.assignedClientIdentifier !== undefined) c.push(["assignedClientIdentifier", x.assignedClientIdentifier, 3 + utf8Len(x.assignedClientIdentifier)]);
    if (x?.sessionExpiryInterval !== undefined) c.push(["sessionExpiryInterval", x.sessionExpiryInterval, 5]);
    if (x?.serverKeepAlive !== undefined) c.push(["serverKeepAlive", x.serverKeepAlive, 3]);
    if (x?.responseInformation !== undefined) c.push(["responseInformation", x.responseInformation, 3 + utf8Len(x.responseInformation)]);
    if (x?.authenticationMethod !== undefined) c.push(["authenticationMethod", x.authenticationMethod, 3 + utf8Len(x.authenticationMethod)]);
    if (x?.authenticationData !== undefined) c.push(["authenticationData", x.authenticationData, 3 + x.authenticationData.length]);
    return c;
  };
  // Every combination of the extras that change the size (auth method and data go together).
  const groups: (keyof ConnackExtras)[][] = [["assignedClientIdentifier"], ["sessionExpiryInterval"], ["serverKeepAlive"], ["responseInformation"], ["authenticationMethod", "authenticationData"]];
  const combos: (ConnackExtras | null)[] = [null];
  for (let m = 0; m < 1 << groups.length; m++) {
    const x: ConnackExtras = {};
    groups.forEach((g, i) => {
      if (m & (1 << i)) for (const k of g) (x as Record<string, unknown>)[k] = full[k];
    });
    combos.push(x);
  }

  test(`${combos.length} combinations × 199 sizes: parses, no trailing bytes, <= the maximum, every dropped property would not have fit, nothing written when 5 bytes do not fit`, () => {
    for (const x of combos) {
      const cands = candidates(x);
      for (let max = 2; max <= 200; max++) {
        const sp = max % 2 === 0;
        const out = new Output();
        out.append(Buffer.from([0xaa])); // a packet already waiting: must stay untouched
        const ok = e.writeV5(out, sp, x, max);
        if (max < 5) {
          expect(ok).toBe(false);
          expect(out.len).toBe(1);
          continue;
        }
        expect(ok).toBe(true);
        expect(out.buf[0]).toBe(0xaa);
        const bytes = Buffer.from(out.buf.subarray(1, out.len));
        expect(bytes.length).toBeLessThanOrEqual(max);
        const plen = propertyLength(bytes, 2);
        const p = parseOne(bytes, 5);
        expect([p.cmd, p.reasonCode, p.sessionPresent]).toEqual(["connack", 0, sp]);
        const props = (p.properties ?? {}) as Record<string, unknown>;
        for (const [name, value, size] of cands) {
          if (props[name] !== undefined) expect(props[name] as object).toEqual(value as object);
          else if (!(name === "authenticationData" && props.authenticationMethod === undefined)) {
            expect({ name, max, fits: sizeWith(2, plen + size) <= max }).toEqual({ name, max, fits: false });
          }
        }
        // Authentication Data never without its method (v5 §3.2.2.3.18).
        if (props.authenticationData !== undefined) expect(props.authenticationMethod).toBeDefined();
        // The Assigned Client Identifier comes first whenever it fits on its own [MQTT-3.2.2-16].
        if (x?.assignedClientIdentifier !== undefined && sizeWith(2, 3 + utf8Len(x.assignedClientIdentifier)) <= max) {
          expect(props.assignedClientIdentifier).toBe(x.assignedClientIdentifier);
        }
      }
    }
  });

  test("no extras: Receive Maximum kept from 8 bytes, Maximum Packet Size from 13, everything from 24; a smaller property skips past one that does not fit", () => {
    for (let max = 5; max <= 30; max++) {
      const out = new Output();
      expect(e.writeV5(out, false, null, max)).toBe(true);
      const props = (parseOne(Buffer.from(out.buf.subarray(0, out.len)), 5).properties ?? {}) as Record<string, unknown>;
      expect(props.receiveMaximum).toBe(max >= 8 ? 256 : undefined);
      expect(props.maximumPacketSize).toBe(max >= 13 ? 1048576 : undefined);
      // 11, 12: Receive Maximum + Topic Alias Maximum (the 5-byte Maximum Packet Size does not fit)
      expect(props.topicAliasMaximum).toBe(max === 11 || max === 12 || max >= 16 ? 64 : undefined);
      expect(props.sharedSubscriptionAvailable).toBe(max >= 24 ? true : undefined);
    }
  });

  test("a long Authentication Data that does not fit is dropped whole; its method stays", () => {
    const out = new Output();
    const x = { authenticationMethod: "M", authenticationData: Buffer.alloc(300, 1) };
    expect(e.writeV5(out, false, x, 100)).toBe(true);
    const props = parseOne(Buffer.from(out.buf.subarray(0, out.len)), 5).properties;
    expect(props.authenticationMethod).toBe("M");
    expect(props.authenticationData).toBeUndefined();
    expect(props.receiveMaximum).toBe(256);
  });
});

describe("encodeConnackRefusal: v5 Reason String / Server Reference only when they fit; 3.1.1 return codes", () => {
  const reasons = [undefined, "", "x", "not authorized", "é漢😀 – ünïcödé", "r".repeat(120), "long ".repeat(60)];
  const refs = [undefined, "other.example.com:1883"];
  const codes = [0x80, 0x81, 0x82, 0x85, 0x86, 0x87, 0x95, 0x9c, 0x9d];

  test("v5, every maxSize 2..200: parses, no trailing bytes, <= the maximum, Session Present 0 [MQTT-3.2.2-6], optional properties whole or absent [MQTT-3.2.2-19]", () => {
    for (const code of codes) {
      for (const why of reasons) {
        for (const ref of refs) {
          for (let max = 2; max <= 200; max++) {
            const bytes = encodeConnackRefusal(5, code, max, why, ref);
            if (max < 5) {
              expect(bytes).toBeNull();
              continue;
            }
            expect(bytes).not.toBeNull();
            expect(bytes!.length).toBeLessThanOrEqual(max);
            const plen = propertyLength(bytes!, 2);
            const p = parseOne(bytes!, 5);
            expect([p.cmd, p.reasonCode, p.sessionPresent]).toEqual(["connack", code, false]);
            const props = (p.properties ?? {}) as Record<string, unknown>;
            const refSize = ref === undefined ? 0 : 3 + utf8Len(ref);
            // Server Reference first: present exactly when given and it fits on its own.
            expect(props.serverReference).toBe(ref !== undefined && sizeWith(2, refSize) <= max ? ref : undefined);
            const withRef = props.serverReference === undefined ? 0 : refSize;
            const fitsWhy = why !== undefined && sizeWith(2, withRef + 3 + utf8Len(why)) <= max;
            expect(props.reasonString).toBe(fitsWhy ? why : undefined);
            expect(plen).toBe(withRef + (fitsWhy ? 3 + utf8Len(why!) : 0));
          }
        }
      }
    }
  });

  test("3.1 / 3.1.1: the v3ConnackCode return code in 20 02 00 rc, or null when no code fits [MQTT-3.2.2-6] 3.1.1", () => {
    const expected: Record<number, number | null> = { 0x80: null, 0x81: null, 0x84: 1, 0x85: 2, 0x86: 4, 0x87: 5, 0x88: 3, 0x89: 3, 0x8a: 5, 0x8c: 5, 0x95: null, 0x9c: 3, 0x9d: 3 };
    for (const version of [3, 4] as const) {
      for (const [code, rc] of Object.entries(expected)) {
        for (let max = 2; max <= 200; max++) {
          const bytes = encodeConnackRefusal(version, Number(code), max, "ignored reason", "ignored.example");
          if (rc === null || max < 4) {
            expect(bytes).toBeNull();
            continue;
          }
          expect(bytes!.toString("hex")).toBe(`20020000`.slice(0, 6) + rc.toString(16).padStart(2, "0"));
          const p = parseOne(bytes!, 4);
          expect([p.cmd, p.returnCode, p.sessionPresent]).toEqual(["connack", rc, false]);
        }
      }
    }
  });
});

describe("encodeDisconnect: the Reason String only when the DISCONNECT still fits [MQTT-3.14.2-3]", () => {
  const reasons = [undefined, "", "x", "keep alive timeout", "é漢😀 – ünïcödé", "r".repeat(120), "long ".repeat(60)];
  const codes = [0x00, 0x04, 0x80, 0x81, 0x82, 0x8d, 0x8e, 0x93, 0x94, 0x95, 0x9c];

  test("every maxSize 2..200: parses, no trailing bytes, <= the maximum, bare `e0 00` / `e0 01 rc` when the string does not fit", () => {
    for (const code of codes) {
      for (const why of reasons) {
        for (let max = 2; max <= 200; max++) {
          const bytes = encodeDisconnect(code, max, why);
          const bare = code === 0 ? 2 : 3;
          if (max < bare) {
            expect(bytes).toBeNull();
            continue;
          }
          expect(bytes).not.toBeNull();
          expect(bytes!.length).toBeLessThanOrEqual(max);
          const plen = propertyLength(bytes!, 1);
          const p = parseOne(bytes!, 5);
          expect(p.cmd).toBe("disconnect");
          expect(p.reasonCode ?? 0).toBe(code);
          const fitsWhy = why !== undefined && sizeWith(1, 3 + utf8Len(why)) <= max;
          expect(p.properties?.reasonString).toBe(fitsWhy ? why : undefined);
          if (!fitsWhy) expect(bytes!.toString("hex")).toBe(code === 0 ? "e000" : `e001${code.toString(16).padStart(2, "0")}`);
          else expect(plen).toBe(3 + utf8Len(why!));
        }
      }
    }
  });
});
