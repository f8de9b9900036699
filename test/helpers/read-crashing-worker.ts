// A pool worker for tests that does the real work, then crashes on its second batch of whole-file
// reads (existence probes aside): in a download of chunk files read whole, after the first batch's
// bytes were sent (docs/architecture.md, "The life of a download").
import { parentPort } from "node:worker_threads";
import { handle } from "../../src/workers/jobs.ts";
import type { ToWorker } from "../../src/workers/protocol.ts";

let reads = 0;
parentPort!.on("message", (msg: ToWorker) => {
  if (msg.kind === "read-files" && msg.files.some((f) => f.size >= 0) && ++reads === 2) throw new Error("scripted crash");
  handle(msg);
});
