// The workers' collector (src/util/collect.ts: shared with the main thread's pack writer).
export { tookIn } from "../util/collect.ts";
