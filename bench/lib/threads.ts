// CPU per thread of a running process, from /proc/<pid>/task/<tid>/stat (utime + stime) and
// .../comm (the thread's name). Node names its threads: the main thread is the process's own
// id ("MainThread"), worker_threads are "WorkerThread" unless given a `name` (our pool names
// its workers "attic-worker-N"), "libuv-worker" runs the threadpool (fs calls, crypto.pbkdf2,
// zlib streams), "V8Worker" is V8's platform pool (concurrent GC, compilation), plus a few
// mostly idle ones (DelayedTaskScheduler, SignalInspector). A thread that exits between two
// snapshots loses what it spent since the first: the benches' pools keep theirs alive.
import { readdirSync, readFileSync } from "node:fs";

const TICK = 100; // USER_HZ on Linux

export interface ThreadCpu {
  tid: number;
  name: string;
  /** CPU seconds so far (user + system) */
  seconds: number;
}

export function threadCpu(pid: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim();
      const f = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8").split(") ")[1]!.split(" ");
      out.push({ tid: Number(t), name, seconds: (Number(f[11]) + Number(f[12])) / TICK });
    } catch {
      // gone
    }
  }
  return out;
}

/** The thread's role: main, a worker (by name), libuv threadpool, V8 helpers, or other. */
function role(pid: number, t: ThreadCpu): string {
  if (t.tid === pid) return "main";
  if (t.name === "libuv-worker") return "libuv";
  if (t.name === "V8Worker") return "v8";
  if (t.name === "WorkerThread" || t.name.startsWith("attic-")) return `worker ${t.name}/${t.tid}`;
  return "other";
}

/**
 * What each thread spent between two snapshots, grouped: "main", each worker on its own,
 * "libuv" and "v8" summed, "other" summed; and the total.
 */
export function threadCpuDelta(pid: number, before: ThreadCpu[], after: ThreadCpu[]): { total: number; parts: [string, number][] } {
  const was = new Map(before.map((t) => [t.tid, t.seconds]));
  const sums = new Map<string, number>();
  let total = 0;
  for (const t of after) {
    const d = t.seconds - (was.get(t.tid) ?? 0);
    if (d <= 0) continue;
    const r = role(pid, t);
    sums.set(r, (sums.get(r) ?? 0) + d);
    total += d;
  }
  const order = (k: string) => (k === "main" ? 0 : k.startsWith("worker") ? 1 : k === "libuv" ? 2 : k === "v8" ? 3 : 4);
  const parts = [...sums].sort((a, b) => order(a[0]) - order(b[0]) || a[0].localeCompare(b[0]));
  return { total, parts };
}

/** "main 1.23 · worker WorkerThread/123 2.34 · libuv 0.12 · v8 0.40" */
export function formatThreadCpu(parts: [string, number][]): string {
  return parts.map(([k, s]) => `${k} ${s.toFixed(2)}`).join(" · ");
}
