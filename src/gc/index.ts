// The garbage collector room: retention, soft-deleted caches, quotas, orphans and crash leftovers.
export { runGarbageCollectionOnce, formatGcReport } from "./collect.ts";
export type { GcConfig, GcDeps, GcReport } from "./collect.ts";
export { startGarbageCollectionLoop } from "./loop.ts";
export type { GcLog, GcLoop } from "./loop.ts";
