// A pool worker for tests, scripted by the first byte of each compress job: 0 answers (an echo)
// after a while, 1 throws (the thread crashes), 2 exits; and by the file names of a read-files
// job: a file named `crash` crashes the thread, one named `exit` exits. Anything else is the real
// worker's.
import { basename } from "node:path";
import { parentPort } from "node:worker_threads";
import { handle } from "../../src/workers/jobs.ts";
import type { ToWorker } from "../../src/workers/protocol.ts";

parentPort!.on("message", (msg: ToWorker) => {
  if (msg.kind === "read-files") {
    const names = msg.files.map((f) => basename(f.path));
    if (names.includes("crash")) throw new Error("scripted crash");
    if (names.includes("exit")) process.exit(3);
  }
  if (msg.kind !== "compress") return handle(msg);
  const data = msg.data;
  if (data[0] === 1) throw new Error("scripted crash");
  if (data[0] === 2) process.exit(3);
  setTimeout(() => parentPort!.postMessage({ kind: "compressed", id: msg.id, out: Uint8Array.from(data) }), 200);
});
