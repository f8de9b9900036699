// One-shot zstd/brotli compression off the main thread, on the process's CPU worker pool
// (src/workers/pool.ts, shared with uploads' NAR passes): each worker keeps one compressor per
// codec and level, reused across calls.
import type { FromWorker } from "../workers/protocol.ts";
import { workerPool } from "../workers/pool.ts";

function answer(msg: FromWorker): { out: Buffer; sha256?: string } {
  if (msg.kind === "compressed") return { out: Buffer.from(msg.out.buffer, msg.out.byteOffset, msg.out.byteLength), ...(msg.sha256 ? { sha256: msg.sha256 } : {}) };
  throw new Error(`compression failed: ${msg.kind === "error" ? msg.message : "unexpected answer"}`);
}

async function run(type: "zstd" | "brotli", level: number, data: Uint8Array, hash: boolean): Promise<{ out: Buffer; sha256?: string }> {
  // a buffer that owns its whole ArrayBuffer (every chunk above 4 KiB) is moved, not copied
  const owned = data.byteOffset === 0 && data.buffer instanceof ArrayBuffer && data.byteLength === data.buffer.byteLength;
  const msg = await workerPool().request((id) => ({ kind: "compress", id, type, level, data, hash }), owned ? [data.buffer as ArrayBuffer] : []);
  return answer(msg);
}

/** Compress `data`, which is consumed: when it owns its memory, that memory moves to the worker. */
export async function compressOnWorker(type: "zstd" | "brotli", level: number, data: Uint8Array): Promise<Buffer> {
  return (await run(type, level, data, false)).out;
}

/** Compress `data` (consumed, as `compressOnWorker`) and hash the result in the worker too. */
export async function compressHashedOnWorker(type: "zstd" | "brotli", level: number, data: Uint8Array): Promise<{ out: Buffer; sha256: string }> {
  const { out, sha256 } = await run(type, level, data, true);
  return { out, sha256: sha256! };
}
