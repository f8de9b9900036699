// A pool worker for tests that does the real work, then crashes on the first bytes it is given
// to hash outside a NAR's pass (an upload session's part: workers/sha256.ts).
import { parentPort } from "node:worker_threads";
import { handle } from "../../src/workers/jobs.ts";
import type { ToWorker } from "../../src/workers/protocol.ts";

let crashed = false;
parentPort!.on("message", (msg: ToWorker) => {
  if (msg.kind === "sha256-data" && !crashed) {
    crashed = true;
    throw new Error("scripted crash");
  }
  handle(msg);
});
