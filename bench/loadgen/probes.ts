/**
 * @module loadgen/probes
 * CPU and memory readings: this process's CPU time, and with --broker-pid the
 * broker's CPU time and RSS from /proc. `U` keeps the readings at the edges
 * of the measured window (and the RSS samples of the conn hold) for the
 * report. A broker that cannot be read gives -1, which the report passes on.
 */
import { readFileSync } from "node:fs";
import { O } from "./options.ts";

export const U = {
  /** Window edges (Bun.nanoseconds()); t1 = 0 until the window has ended. */
  t0: 0,
  t1: 0,
  self0: 0,
  self1: 0,
  broker0: -1,
  broker1: -1,
  rssBaseKb: -1,
  rssMaxKb: -1,
  rssEndKb: -1,
  /** Broker RSS while the conn scenario holds its connections idle. */
  rssSamples: [] as number[],
};

function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function brokerCpu(): number {
  if (!O.brokerPid) return -1;
  try {
    const s = readFileSync(`/proc/${O.brokerPid}/stat`, "latin1");
    // split after the command name, which may contain spaces: f[11] is utime, f[12] stime
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return -1;
  }
}

/** Broker VmRSS in kB, or -1. */
export function brokerRss(): number {
  if (!O.brokerPid) return -1;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${O.brokerPid}/status`, "latin1"));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

export function cpuBegin(): void {
  U.t0 = Bun.nanoseconds();
  U.self0 = selfCpu();
  U.broker0 = brokerCpu();
}

export function cpuEnd(): void {
  U.t1 = Bun.nanoseconds();
  U.self1 = selfCpu();
  U.broker1 = brokerCpu();
}
