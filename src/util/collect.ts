// Dead buffers go back to the system on a thread's schedule, not V8's (the workers per NAR byte
// taken in, the main thread per pack byte written: storage/packs.ts). A worker's garbage is
// mostly ArrayBuffers (pieces of the NAR, copies for the partner, frames): their bytes live
// outside the heap, their wrappers are tiny, so the young generation rarely fills and V8 lets
// some 64 MiB of dead external memory pile up per thread before it collects. Each worker
// collects after every COLLECT_EVERY bytes it has taken in: a full collection of a small worker
// heap costs about a millisecond. A worker cannot be started with --expose-gc (a per-process
// flag), so the collector is taken from a fresh context once the flag is set: the usual way,
// which only exposes `gc` to that context.
const COLLECT_EVERY = 32 * 1024 * 1024;

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

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
