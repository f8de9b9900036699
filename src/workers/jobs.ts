// What a CPU worker of the pool (pool.ts, worker.ts) does with each message: one-shot
// compressions and NAR passes (nar-pass.ts), any number of jobs at once, each keyed by its id.
// Every failure is answered on its job; a crash of the thread itself is the pool's to report (it
// fails this worker's jobs, and only those).
import { createHash } from "node:crypto";
import { parentPort, type MessagePort } from "node:worker_threads";
import { NarError } from "../nix/nar/parser.ts";
import { tookIn } from "./collect.ts";
import { compressBatch, frameCompressor } from "./frames.ts";
import { hashBatch, NarPass, type HashDelegate } from "./nar-pass.ts";
import type { FromWorker, NarPassOptions, ToPartner, ToWorker } from "./protocol.ts";

const port = parentPort!;
const passes = new Map<number, NarPass>();
/** the partner port of a pass that has one: its new chunks are compressed there */
const partners = new Map<number, MessagePort>();
/** per pass with a partner: the jobs sent to it not yet done (shared with it) */
const counters = new Map<number, Int32Array>();

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
  counters.delete(id);
}

/**
 * A pass's worker hands a batch's chunks to its partner to hash while fewer than this many jobs
 * wait there: a partner busy compressing (new data) leaves the hashing to the cutting worker, an
 * idle one (a new version of a path: few new chunks) takes it, so both cores work either way.
 */
const DELEGATE_BELOW = 2;

/** Compress (or hash) what pass `id`'s worker sends through `port`; the results go to the main thread. */
function partner(id: number, port: MessagePort, codec: NarPassOptions["codec"], busy: Int32Array | undefined): void {
  const compressor = frameCompressor(codec.raw ? "none" : codec.type, codec.level);
  port.on("message", (msg: ToPartner) => {
    try {
      const chunks: Uint8Array[] = [];
      let at = 0;
      for (const n of msg.sizes) {
        chunks.push(msg.data.subarray(at, at + n));
        at += n;
      }
      if (msg.kind === "hash") {
        send({ kind: "nar-batch", id, batch: hashBatch(msg.batch, chunks) });
        return;
      }
      const { data, lengths, fileHashes } = compressBatch(compressor, chunks);
      send({ kind: "nar-frames", id, batch: msg.batch, data, lengths, fileHashes }, [data.buffer as ArrayBuffer]);
      tookIn(msg.data.byteLength);
    } catch (err) {
      fail(id, err);
      port.close();
    } finally {
      if (busy) Atomics.sub(busy, 0, 1);
    }
  });
  // the pass's worker closes its end when the pass is over (or dies)
  port.on("close", () => port.removeAllListeners());
}

/**
 * Chunks for the partner, in one buffer of their own (a copy: they view pieces other chunks
 * share; copying costs a fraction of hashing or compressing them there).
 */
function joined(chunks: readonly Uint8Array[]): { data: Uint8Array; sizes: number[] } {
  const data = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.byteLength;
  }
  return { data, sizes: chunks.map((c) => c.byteLength) };
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
      case "nar-open": {
        const { port, busy } = msg;
        const delegate: HashDelegate | null =
          port && busy
            ? (batch, chunks) => {
                if (Atomics.load(busy, 0) >= DELEGATE_BELOW) return false;
                Atomics.add(busy, 0, 1);
                const out: ToPartner = { kind: "hash", batch, ...joined(chunks) };
                port.postMessage(out, [out.data.buffer as ArrayBuffer]);
                return true;
              }
            : null;
        passes.set(msg.id, new NarPass(msg.options, delegate));
        if (port) partners.set(msg.id, port);
        if (busy) counters.set(msg.id, busy);
        return;
      }
      case "frames-open":
        partner(msg.id, msg.port, msg.codec, msg.busy);
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
        send({ kind: "nar-progress", id: msg.id, batches, out, sealed: pass.sealed }, buffers(out));
        return;
      }
      case "nar-end": {
        const { batches, out, result } = pass.end();
        // the session stays until closed: the last batches' frames may still be asked for
        send({ kind: "nar-progress", id: msg.id, batches, out, result, sealed: pass.sealed }, buffers(out));
        return;
      }
      case "nar-compress": {
        const port = partners.get(msg.id);
        if (port) {
          const out: ToPartner = { kind: "compress", batch: msg.batch, ...joined(pass.chunks(msg.batch, msg.indexes)) };
          const busy = counters.get(msg.id);
          if (busy) Atomics.add(busy, 0, 1);
          port.postMessage(out, [out.data.buffer as ArrayBuffer]);
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
