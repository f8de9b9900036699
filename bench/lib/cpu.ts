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

/** Thread kinds of a Node process, by thread name (/proc/<pid>/task/<tid>/comm). */
function threadKind(comm: string): string {
  if (comm === "MainThread") return "main";
  // the pool's workers are named attic-worker-N (workers/pool.ts); an unnamed worker is WorkerThread
  if (comm.startsWith("attic-worker") || comm === "WorkerThread") return "workers";
  if (comm.startsWith("libuv-worker")) return "libuv";
  if (comm.startsWith("V8") || comm.startsWith("DelayedTask")) return "V8";
  return "other";
}

/** CPU seconds so far of a process's live threads, summed by kind: main, workers, libuv (thread pool), V8 (GC helpers), other. */
export function threadCpuSeconds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ");
      const kind = threadKind(comm);
      out[kind] = (out[kind] ?? 0) + (Number(f[11]) + Number(f[12])) / TICK;
    } catch {
      // gone
    }
  }
  return out;
}
