// A pool worker for tests that does the real work, then crashes on its first request for a
// batch's frames (mid-upload: the NAR passed, its first chunks claimed, nothing stored yet).
import { parentPort } from "node:worker_threads";
import { handle } from "../../src/workers/jobs.ts";
import type { ToWorker } from "../../src/workers/protocol.ts";

let asked = 0;
parentPort!.on("message", (msg: ToWorker) => {
  if (msg.kind === "nar-compress" && ++asked === 1) throw new Error("scripted crash");
  handle(msg);
});
