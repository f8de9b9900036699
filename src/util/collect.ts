// Dead buffers go back to the system on a thread's schedule, not V8's (the workers per NAR byte
// moved in, the main thread per pack byte written: storage/packs.ts). Such garbage is mostly
// ArrayBuffers (pieces of a whole NAR moved in, frames moved out): their bytes live outside the
// heap, their wrappers are tiny, so the young generation rarely fills and V8 lets some 64 MiB of
// dead external memory pile up per thread before it collects. A worker collects after every
// 32 MiB it has taken in: a full collection of a small worker heap costs about a millisecond
// (a chunked pass takes its NAR through a shared ring and leaves no such garbage: workers/ring.ts).
// The main thread's heap is larger and its full collections cost more (marked on V8's helper
// threads too: measured, one per 32 MiB of pack bytes cost 1.2-1.6 CPU-s per 587 MB push), so
// it collects once per 128 MiB, which kept the 2 GiB push's peak where 32 MiB did (229-233 MiB
// on SQLite + local). A worker cannot be started with --expose-gc (a per-process flag), so the
// collector is taken from a fresh context once the flag is set: the usual way, which only
// exposes `gc` to that context.
const COLLECT_EVERY = isMainThread ? 128 * 1024 * 1024 : 32 * 1024 * 1024;

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { isMainThread } from "node:worker_threads";

let taken = 0;
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as (() => void) | undefined;

/** Count `bytes` taken in (and now garbage, or soon); collect when enough has passed. */
export function tookIn(bytes: number): void {
  taken += bytes;
  if (taken < COLLECT_EVERY) return;
  taken = 0;
  gc?.();
}
