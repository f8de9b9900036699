// A batch of whole-file reads on a CPU worker of the pool (storage/local-reader.ts sends them):
// each file opened, read and closed with synchronous calls, so a cold page cache blocks this
// worker, never the event loop, and the three thread-pool round trips a read costs through libuv
// become one message per batch. A batch is short (at most a few MiB of small files): an upload's
// pass sharing this worker waits for it between two of its own messages.
import { accessSync, closeSync, openSync, readSync } from "node:fs";
import type { FileRead, FileReadAnswer } from "./protocol.ts";

/** One file's bytes (exactly `size` of them), or whether it exists (`size` -1). */
function readOne(path: string, size: number): FileReadAnswer {
  let fd = -1;
  try {
    if (size < 0) {
      accessSync(path);
      return {};
    }
    fd = openSync(path, "r");
    // one byte more than expected, so a file that grew is noticed without a second read
    const buffer = new Uint8Array(size + 1);
    let filled = 0;
    for (;;) {
      const n = readSync(fd, buffer, filled, buffer.length - filled, filled);
      filled += n;
      if (n === 0 || filled >= size) break;
    }
    if (filled > size) return { error: `${path}: larger than its recorded size ${size}` };
    if (filled < size) return { error: `${path}: ${filled} bytes, recorded size ${size}` };
    return { bytes: buffer };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    return { error: String((err as Error | null)?.message ?? err), ...(code ? { code } : {}) };
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The batch's answers in its order, and the buffers to move (not copy) back with them. */
export function readFiles(files: readonly FileRead[]): { results: FileReadAnswer[]; transfer: ArrayBuffer[] } {
  const results: FileReadAnswer[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const { path, size } of files) {
    const answer = readOne(path, size);
    if (answer.bytes) transfer.push(answer.bytes.buffer as ArrayBuffer);
    results.push(answer);
  }
  return { results, transfer };
}
