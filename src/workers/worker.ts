// The entry of a CPU worker thread of the pool (pool.ts); the work is in jobs.ts.
import { parentPort } from "node:worker_threads";
import { handle } from "./jobs.ts";

parentPort!.on("message", handle);
