// The garbage collector room: retention, soft-deleted caches, quotas, orphans and crash leftovers.
export { runGarbageCollectionOnce } from "./collect.ts";
export type { GcConfig, GcDeps } from "./collect.ts";
export { formatGcReport } from "./report.ts";
export type { GcReport } from "./report.ts";
export { startGarbageCollectionLoop } from "./loop.ts";
export type { GcLog, GcLoop } from "./loop.ts";
