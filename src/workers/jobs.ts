// What a CPU worker of the pool (pool.ts, worker.ts) does with each message: one-shot
// compressions, batches of file reads (read-files.ts), NAR passes (nar-pass.ts) and SHA-256s
// (sha256.ts), any number of jobs at once, each keyed by its id.
// Every failure is answered on its job; a crash of the thread itself is the pool's to report (it
// fails this worker's jobs, and only those).
import { createHash, type Hash } from "node:crypto";
import { open } from "node:fs/promises";
import { parentPort, type MessagePort } from "node:worker_threads";
import { NarError } from "../nix/nar/parser.ts";
import { tookIn } from "./collect.ts";
import { compressBatch, frameCompressor } from "./frames.ts";
import { hashBatch, NarPass, type HashDelegate } from "./nar-pass.ts";
import { readFiles } from "./read-files.ts";
import { ringBuffer } from "./ring.ts";
import type { FromWorker, NarPassOptions, ToPartner, ToWorker, WireRing } from "./protocol.ts";

const port = parentPort!;
const passes = new Map<number, NarPass>();
/** the partner port of a pass that has one: its new chunks are compressed there */
const partners = new Map<number, MessagePort>();
/** per pass with a partner: the jobs sent to it not yet done (shared with it) */
const counters = new Map<number, Int32Array>();
/** running SHA-256s (sha256.ts) and their byte counts */
const hashes = new Map<number, { hash: Hash; size: number }>();

/** A file's hash is read in pieces of this size, each awaited: the worker's other jobs run between them. */
const FILE_PIECE = 1024 * 1024;

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
  // a ring is collected with the last wrapper of it: count it like the bytes moved in
  const ring = passes.get(id)?.ring;
  if (ring) tookIn(ring.byteLength);
  passes.delete(id);
  hashes.delete(id);
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

/**
 * The cutting worker compresses a batch itself when this many jobs already wait at the partner:
 * with new data the partner (zstd, 2.2-2.5 CPU-s per 587 MB) is the slower of the two (parse,
 * hash and cut: 1.1-1.4), so both cores compress rather than one waiting on the other.
 */
const COMPRESS_HERE_FROM = 3;

/** Compress (or hash) what pass `id`'s worker sends through `port`; the results go to the main thread. */
function partner(id: number, port: MessagePort, codec: NarPassOptions["codec"], busy: Int32Array | undefined, wire: WireRing | undefined): void {
  const ring = wire ? ringBuffer(wire.shared) : undefined;
  const compressor = frameCompressor(codec.raw ? "none" : codec.type, codec.level);
  port.on("message", (msg: ToPartner) => {
    try {
      const chunks: Uint8Array[] = [];
      if (msg.offsets) {
        // views of the ring: the main thread overwrites none of them before the batch is released
        if (!ring) throw new Error("chunks in a ring this partner was not given");
        for (const [i, n] of msg.sizes.entries()) chunks.push(new Uint8Array(ring, msg.offsets[i]!, n));
      } else {
        let at = 0;
        for (const n of msg.sizes) {
          chunks.push(msg.data!.subarray(at, at + n));
          at += n;
        }
      }
      if (msg.kind === "hash") {
        send({ kind: "nar-batch", id, batch: hashBatch(msg.batch, chunks) });
        return;
      }
      const { data, lengths, fileHashes } = compressBatch(compressor, chunks);
      send({ kind: "nar-frames", id, batch: msg.batch, ask: msg.ask ?? -1, data, lengths, fileHashes }, [data.buffer as ArrayBuffer]);
      if (msg.data) tookIn(msg.data.byteLength);
    } catch (err) {
      fail(id, err);
      port.close();
    } finally {
      if (busy) Atomics.sub(busy, 0, 1);
    }
  });
  // the pass's worker closes its end when the pass is over (or dies)
  port.on("close", () => {
    port.removeAllListeners();
    if (ring) tookIn(ring.byteLength);
  });
}

/**
 * Chunks for the partner: where they lie in the ring the partner shares, or (no ring, or a chunk
 * outside it) in one buffer of their own to move there (a copy: they view pieces other chunks
 * share; copying costs a fraction of hashing or compressing them there).
 */
function forPartner(kind: ToPartner["kind"], batch: number, chunks: readonly Uint8Array[], ring: SharedArrayBuffer | null): { msg: ToPartner; transfer: ArrayBuffer[] } {
  if (ring && chunks.every((c) => c.buffer === ring)) {
    return { msg: { kind, batch, offsets: chunks.map((c) => c.byteOffset), sizes: chunks.map((c) => c.byteLength) }, transfer: [] };
  }
  const { data, sizes } = joined(chunks);
  return { msg: { kind, batch, data, sizes }, transfer: [data.buffer as ArrayBuffer] };
}

function joined(chunks: readonly Uint8Array[]): { data: Uint8Array; sizes: number[] } {
  const data = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.byteLength;
  }
  return { data, sizes: chunks.map((c) => c.byteLength) };
}

async function hashFile(id: number, path: string): Promise<void> {
  const file = await open(path, "r");
  try {
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafeSlow(FILE_PIECE);
    let size = 0;
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, FILE_PIECE, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    send({ kind: "sha256", id, digest: hash.digest("hex"), size });
  } finally {
    await file.close();
  }
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
      case "read-files": {
        const { results, transfer } = readFiles(msg.files);
        send({ kind: "files", id: msg.id, results }, transfer);
        return;
      }
      case "nar-open": {
        const { port, busy } = msg;
        const wire = msg.ring ?? null;
        let ring: SharedArrayBuffer | null = null;
        const delegate: HashDelegate | null =
          port && busy
            ? (batch, chunks) => {
                if (Atomics.load(busy, 0) >= DELEGATE_BELOW) return false;
                Atomics.add(busy, 0, 1);
                const out = forPartner("hash", batch, chunks, ring);
                port.postMessage(out.msg, out.transfer);
                return true;
              }
            : null;
        const pass = new NarPass(msg.options, delegate, wire);
        ring = pass.ring;
        passes.set(msg.id, pass);
        if (port) partners.set(msg.id, port);
        if (busy) counters.set(msg.id, busy);
        return;
      }
      case "frames-open":
        partner(msg.id, msg.port, msg.codec, msg.busy, msg.ring);
        return;
      case "nar-close":
      case "sha256-close":
        forget(msg.id);
        return;
      case "sha256-data": {
        let h = hashes.get(msg.id);
        if (!h) hashes.set(msg.id, (h = { hash: createHash("sha256"), size: 0 }));
        h.hash.update(msg.piece);
        h.size += msg.piece.byteLength;
        // back to the main thread, which fills it again (no allocation, no page faults per piece)
        send({ kind: "sha256-took", id: msg.id, piece: msg.piece }, [msg.piece.buffer as ArrayBuffer]);
        return;
      }
      case "sha256-digest": {
        const h = hashes.get(msg.id) ?? { hash: createHash("sha256"), size: 0 };
        if (msg.final) hashes.delete(msg.id);
        send({ kind: "sha256", id: msg.id, digest: (msg.final ? h.hash : h.hash.copy()).digest("hex"), size: h.size });
        return;
      }
      case "sha256-file":
        hashFile(msg.id, msg.path).catch((err: unknown) => fail(msg.id, err));
        return;
    }
    const pass = passes.get(msg.id);
    if (!pass) return;
    if ("released" in msg && msg.released) for (const b of msg.released) pass.release(b);
    switch (msg.kind) {
      case "nar-data": {
        const { batches, out } = pass.update(msg.piece);
        send({ kind: "nar-progress", id: msg.id, batches, out, sealed: pass.sealed }, buffers(out));
        return;
      }
      case "nar-ring": {
        const { batches, out } = pass.updateRing(msg.at, msg.length, msg.wrapped);
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
        const busy = counters.get(msg.id);
        // the partner compresses, unless it is backed up: then this worker takes the batch
        // (its own parsing and cutting wait meanwhile, but the partner is the slower of the two)
        if (port && !(busy && Atomics.load(busy, 0) >= COMPRESS_HERE_FROM)) {
          const out = forPartner("compress", msg.batch, pass.chunks(msg.batch, msg.indexes), pass.ring);
          out.msg.ask = msg.ask;
          if (busy) Atomics.add(busy, 0, 1);
          port.postMessage(out.msg, out.transfer);
          return;
        }
        const { data, lengths, fileHashes } = pass.frames(msg.batch, msg.indexes);
        send({ kind: "nar-frames", id: msg.id, batch: msg.batch, ask: msg.ask, data, lengths, fileHashes, ...(port ? { byCutter: true as const } : {}) }, [data.buffer as ArrayBuffer]);
        return;
      }
    }
  } catch (err) {
    fail(msg.id, err);
  }
}
