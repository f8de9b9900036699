// Test oracle: Joran Greef's pure-JS @ronomon/deduplication (binding.js), the algorithm that the
// Rust `fastcdc::ronomon` module used by upstream Attic translates. Expected cut points are never
// typed in by hand: they come from running this reference code on the same bytes.
//
// Two ways of asking it:
// - `oracleLengths`: its public `deduplicate()` over the whole input with flags = 1 (source ends).
// - `oracleAtticWindows`: upstream Attic's windowing (attic/src/chunking/mod.rs) re-stated around the
//   oracle's own `cut()`. Attic reads into a buffer of exactly max-size bytes; the tail it carries over
//   is the input from the first unconsumed byte on and new reads append contiguously, so window k is
//   simply input[pos, pos + max) where pos is the end of the last chunk emitted. It is cut with
//   eof = (window shorter than max). `deduplicate()` refuses a non-final source of <= max bytes
//   ("sourceSize <= maximum"), which is exactly the window Attic feeds, so `cut()` is lifted out of
//   binding.js with node:vm instead (the file is evaluated unchanged).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { runInNewContext } from "node:vm";
import type { ChunkingParams } from "../../../src/chunking/fastcdc.ts";

const require = createRequire(import.meta.url);

type Deduplicate = (
  average: number, minimum: number, maximum: number,
  source: Uint8Array, sourceOffset: number, sourceSize: number,
  target: Buffer, targetOffset: number, flags: number,
  callback: (error: Error | undefined, sourceOffset: number, targetOffset: number) => void,
) => void;
type Cut = (
  average: number, minimum: number, maximum: number, mask1: number, mask2: number,
  source: Uint8Array, sourceOffset: number, sourceSize: number, flags: number,
) => number;
interface Internals {
  cut: Cut;
  logarithm2: (n: number) => number;
  mask: (bits: number) => number;
}

const bindingPath = require.resolve("@ronomon/deduplication/binding.js");
const binding = require(bindingPath) as { deduplicate: Deduplicate; targetSize: (min: number, size: number) => number };
const internals = runInNewContext(
  `${readFileSync(bindingPath, "utf8")}\n;({ cut, logarithm2, mask });`,
  { require, module: { exports: {} }, setImmediate, Buffer },
) as Internals;

/** Chunk lengths from the oracle's `deduplicate()` over the whole of `data`, as the final source. */
export function oracleLengths(data: Uint8Array, p: ChunkingParams): Promise<number[]> {
  if (data.length === 0) return Promise.resolve([]);
  const target = Buffer.alloc(binding.targetSize(p.minSize, data.length));
  return new Promise((resolve, reject) => {
    binding.deduplicate(p.avgSize, p.minSize, p.maxSize, data, 0, data.length, target, 0, 1, (error, sourceOffset, targetOffset) => {
      if (error) return reject(error);
      if (sourceOffset !== data.length) return reject(new Error(`oracle stopped at ${sourceOffset}`));
      const lengths: number[] = [];
      for (let o = 0; o < targetOffset; o += 36) lengths.push(target.readUInt32BE(o + 32));
      resolve(lengths);
    });
  });
}

/** One call of the oracle's `cut()`: length of the chunk at `offset`, 0 when it needs more data. */
export function oracleCut(data: Uint8Array, offset: number, end: number, p: ChunkingParams, eof: boolean): number {
  const bits = internals.logarithm2(p.avgSize);
  const mask1 = internals.mask(bits + 1);
  const mask2 = internals.mask(bits - 1);
  return internals.cut(p.avgSize, p.minSize, p.maxSize, mask1, mask2, data, offset, end - offset, eof ? 1 : 0);
}

/** Chunks as upstream Attic's windowed loop produces them, each tagged with the window it came from. */
export function oracleAtticWindows(data: Uint8Array, p: ChunkingParams): { length: number; window: number }[] {
  const out: { length: number; window: number }[] = [];
  let pos = 0;
  for (let window = 0; ; window++) {
    const end = Math.min(pos + p.maxSize, data.length);
    if (end === pos) break;
    const eof = end - pos < p.maxSize;
    let offset = pos;
    while (offset < end) {
      const n = oracleCut(data, offset, end, p, eof);
      if (n === 0) break;
      out.push({ length: n, window });
      offset += n;
    }
    if (eof) break;
    pos = offset;
  }
  return out;
}

/** Deterministic pseudo-random bytes, shared with the other tests. */
export { seededBytes } from "../../helpers/nar.ts";
