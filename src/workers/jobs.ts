// What a CPU worker of the pool (pool.ts, worker.ts) does with each message: one-shot
// compressions and NAR passes (nar-pass.ts), any number of jobs at once, each keyed by its id.
// Every failure is answered on its job; a crash of the thread itself is the pool's to report (it
// fails this worker's jobs, and only those).
import { createHash } from "node:crypto";
import { parentPort, type MessagePort } from "node:worker_threads";
import { NarError } from "../nix/nar/parser.ts";
import { tookIn } from "./collect.ts";
import { compressBatch, frameCompressor } from "./frames.ts";
import { NarPass } from "./nar-pass.ts";
import type { FromWorker, NarPassOptions, ToPartner, ToWorker } from "./protocol.ts";

const port = parentPort!;
const passes = new Map<number, NarPass>();
/** the partner port of a pass that has one: its new chunks are compressed there */
const partners = new Map<number, MessagePort>();

function send(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function buffers(list: readonly Uint8Array[]): ArrayBuffer[] {
  return list.map((b) => b.buffer as ArrayBuffer);
}

function fail(id: number, err: unknown): void {
  forget(id);
  if (err instanceof NarError) send({ kind: "error", id, message: err.message, narOffset: err.offset });
  else send({ kind: "error", id, message: String((err as Error)?.message ?? err) });
}

function forget(id: number): void {
  passes.delete(id);
  partners.get(id)?.close();
  partners.delete(id);
}

/** Compress what pass `id`'s worker sends through `port`; the frames go to the main thread. */
function partner(id: number, port: MessagePort, codec: NarPassOptions["codec"]): void {
  const compressor = frameCompressor(codec.raw ? "none" : codec.type, codec.level);
  port.on("message", (msg: ToPartner) => {
    try {
      const chunks: Uint8Array[] = [];
      let at = 0;
      for (const n of msg.sizes) {
        chunks.push(msg.data.subarray(at, at + n));
        at += n;
      }
      const { data, lengths, fileHashes } = compressBatch(compressor, chunks);
      send({ kind: "nar-frames", id, batch: msg.batch, data, lengths, fileHashes }, [data.buffer as ArrayBuffer]);
      tookIn(msg.data.byteLength);
    } catch (err) {
      fail(id, err);
      port.close();
    }
  });
  // the pass's worker closes its end when the pass is over (or dies)
  port.on("close", () => port.removeAllListeners());
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
        if (msg.port) partners.set(msg.id, msg.port);
        return;
      case "frames-open":
        partner(msg.id, msg.port, msg.codec);
        return;
      case "nar-close":
        forget(msg.id);
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
        const port = partners.get(msg.id);
        if (port) {
          // the chunks go to the partner in one buffer of their own (a copy: they view shared pieces)
          const chunks = pass.chunks(msg.batch, msg.indexes);
          const data = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
          let at = 0;
          for (const c of chunks) {
            data.set(c, at);
            at += c.byteLength;
          }
          const out: ToPartner = { batch: msg.batch, data, sizes: chunks.map((c) => c.byteLength) };
          port.postMessage(out, [data.buffer]);
          return;
        }
        const { data, lengths, fileHashes } = pass.frames(msg.batch, msg.indexes);
        send({ kind: "nar-frames", id: msg.id, batch: msg.batch, data, lengths, fileHashes }, [data.buffer as ArrayBuffer]);
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
