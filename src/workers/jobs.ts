// What a CPU worker of the pool (pool.ts, worker.ts) does with each message: one-shot
// compressions and NAR passes (nar-pass.ts), any number of jobs at once, each keyed by its id.
// Every failure is answered on its job; a crash of the thread itself is the pool's to report (it
// fails this worker's jobs, and only those).
import { createHash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { NarError } from "../nix/nar/parser.ts";
import { frameCompressor } from "./frames.ts";
import { NarPass } from "./nar-pass.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

const port = parentPort!;
const passes = new Map<number, NarPass>();

function send(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function buffers(list: readonly Uint8Array[]): ArrayBuffer[] {
  return list.map((b) => b.buffer as ArrayBuffer);
}

function fail(id: number, err: unknown): void {
  passes.delete(id);
  if (err instanceof NarError) send({ kind: "error", id, message: err.message, narOffset: err.offset });
  else send({ kind: "error", id, message: String((err as Error)?.message ?? err) });
}

export function handle(msg: ToWorker): void {
  try {
    switch (msg.kind) {
      case "compress": {
        const out = frameCompressor(msg.type, msg.level).compress(msg.data);
        const sha256 = msg.hash ? createHash("sha256").update(out).digest("hex") : undefined;
        send({ kind: "compressed", id: msg.id, out, ...(sha256 ? { sha256 } : {}) }, [out.buffer as ArrayBuffer]);
        return;
      }
      case "nar-open":
        passes.set(msg.id, new NarPass(msg.options));
        return;
      case "nar-close":
        passes.delete(msg.id);
        return;
    }
    const pass = passes.get(msg.id);
    if (!pass) return;
    switch (msg.kind) {
      case "nar-data": {
        const { batches, out } = pass.update(msg.piece);
        send({ kind: "nar-progress", id: msg.id, batches, out }, buffers(out));
        return;
      }
      case "nar-end": {
        const { batches, out, result } = pass.end();
        // the session stays until closed: the last batches' frames may still be asked for
        send({ kind: "nar-progress", id: msg.id, batches, out, result }, buffers(out));
        return;
      }
      case "nar-compress": {
        const { frames, fileHashes } = pass.frames(msg.batch, msg.indexes);
        send({ kind: "nar-frames", id: msg.id, batch: msg.batch, frames, fileHashes }, buffers(frames));
        return;
      }
      case "nar-release":
        pass.release(msg.batch);
        return;
    }
  } catch (err) {
    fail(msg.id, err);
  }
}
