/**
 * @module run/variants
 * What one scenario is run against in a round: a variant is a side (A =
 * bunmq or --target, B = the --vs broker) on one transport, and for a
 * managed Mosquitto with or without `set_tcp_nodelay true`. Their order is
 * the order of the runs (per transport: A, then each B), their ids name the
 * log files and results, and skipReason() says which variant cannot run a
 * row (the persist rows need loadgen.ts, which speaks TCP only; Mosquitto
 * without websockets cannot run ws/wss rows).
 */
import type { ScenarioDef } from "./matrix.ts";
import type { Options } from "./options.ts";
import { isWs, type Transport } from "./transports.ts";

export interface Variant {
  /** "A", "B" over tcp; else e.g. "A.tls", "B.wss", "B.tls.nodelay": unique in a run. */
  id: string;
  side: "A" | "B";
  transport: Transport;
  /** Managed Mosquitto with `set_tcp_nodelay true`. */
  nodelay: boolean;
  /** Column label: the side's name, the transport (unless the run is tcp only), "nodelay". */
  name: string;
}

/** The B variants' nodelay settings for --mosquitto-nodelay off|on|both (only --vs mosquitto has any). */
export function nodelaySettings(o: Options): boolean[] {
  if (o.vs !== "mosquitto") return [false];
  return o.mosquittoNodelay === "both" ? [false, true] : [o.mosquittoNodelay === "on"];
}

export function variantsOf(o: Options): Variant[] {
  const showTransport = o.transports.length > 1 || o.transports[0] !== "tcp";
  const out: Variant[] = [];
  const make = (side: "A" | "B", t: Transport, nodelay: boolean): Variant => ({
    id: [side, t === "tcp" ? "" : t, nodelay ? "nodelay" : ""].filter(Boolean).join("."),
    side,
    transport: t,
    nodelay,
    name: [o.names[side === "A" ? 0 : 1], showTransport ? t : "", nodelay ? "nodelay" : ""].filter(Boolean).join(" "),
  });
  for (const t of o.transports) {
    out.push(make("A", t, false));
    if (o.vs) for (const nd of nodelaySettings(o)) out.push(make("B", t, nd));
  }
  return out;
}

/**
 * Why `v` cannot run `s` ("" = it can). `mosquittoWs` is the reason this
 * Mosquitto has no websockets ("" = it has them).
 */
export function skipReason(o: Options, s: ScenarioDef, v: Variant, mosquittoWs: string): string {
  if (s.tsOnly && v.transport !== "tcp") return "the persist rows run on loadgen.ts, which speaks plain TCP only";
  if (v.side === "B" && o.vs === "mosquitto" && isWs(v.transport) && mosquittoWs) return mosquittoWs;
  return "";
}
