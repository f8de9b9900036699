// CPU time from /proc: what a process (or its waited-for children) spent, user + system. On a
// shared, noisy machine the CPU a run costs is steadier than its wall time.
import { readdirSync, readFileSync } from "node:fs";

const TICK = 100; // USER_HZ on Linux

function statFields(pid: number | "self"): string[] {
  return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
}

/** CPU seconds used so far by these processes (a process already gone counts 0). */
export function cpuSeconds(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const f = statFields(pid);
      total += (Number(f[11]) + Number(f[12])) / TICK;
    } catch {
      // gone
    }
  }
  return total;
}

/** CPU seconds of this process's children that have exited and been waited for. */
export function childrenCpuSeconds(): number {
  const f = statFields("self");
  return (Number(f[13]) + Number(f[14])) / TICK;
}

/** A process and its children (found through /proc by parent): nginx's workers, PostgreSQL's backends. */
export function withChildren(pid: number): number[] {
  const out = [pid];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(Number(entry))[1]) === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}
