// Content-defined cut points, bit-identical to upstream Attic's chunker: the `ronomon` module of the
// Rust `fastcdc` crate v4.0.1, itself a port of @ronomon/deduplication (a FastCDC-2016 variant with a
// right-shifting gear hash and two masks around a "center" size). Not the crate's v2016/v2020 modules.
import { GEAR_TABLE } from "./gear-table.ts";

export interface ChunkingParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
}

const MiB = 1024 * 1024;

/** Upstream's bounds (only `debug_assert!`s there; Attic itself never checks `[chunking]`). */
export const CHUNKING_LIMITS = {
  minSize: { min: 64, max: 64 * MiB },
  avgSize: { min: 256, max: 256 * MiB },
  maxSize: { min: 1024, max: 1024 * MiB },
} as const;

/** Throws a RangeError naming every problem. Upstream would silently chunk with nonsense values. */
export function validateChunkingParams(p: ChunkingParams): void {
  const problems: string[] = [];
  for (const key of ["minSize", "avgSize", "maxSize"] as const) {
    const value = p[key];
    const { min, max } = CHUNKING_LIMITS[key];
    if (!Number.isSafeInteger(value)) problems.push(`${key} must be an integer (got ${value})`);
    else if (value < min || value > max) problems.push(`${key} must be within ${min}..${max} (got ${value})`);
  }
  if (p.minSize > p.avgSize) problems.push(`minSize (${p.minSize}) must not exceed avgSize (${p.avgSize})`);
  if (p.avgSize > p.maxSize) problems.push(`avgSize (${p.avgSize}) must not exceed maxSize (${p.maxSize})`);
  if (problems.length > 0) throw new RangeError(`invalid chunking parameters: ${problems.join("; ")}`);
}

/** Validated parameters with the derived masks, computed once per stream rather than per cut. */
export interface CutParams {
  readonly minSize: number;
  readonly maxSize: number;
  /** Offset (from a chunk's start) where the strict mask gives way to the eager one, before capping. */
  readonly center: number;
  /** Strict mask (`bits + 1` ones), used before the center. */
  readonly maskS: number;
  /** Eager mask (`bits - 1` ones), used from the center to `maxSize`. */
  readonly maskL: number;
}

export function deriveCutParams(p: ChunkingParams): CutParams {
  validateChunkingParams(p);
  // fastcdc 4.0.1 rounds log2 (4.0.0 floored it, which picks different masks for non-powers of two).
  const bits = Math.round(Math.log2(p.avgSize));
  return Object.freeze({
    minSize: p.minSize,
    maxSize: p.maxSize,
    center: p.avgSize - Math.min(p.avgSize, p.minSize + Math.ceil(p.minSize / 2)),
    maskS: 2 ** (bits + 1) - 1,
    maskL: 2 ** (bits - 1) - 1,
  });
}

/**
 * Length of the chunk starting at `start` within `buf[start, end)`, or 0 when more data is needed
 * to decide (only when `eof` is false: the remaining bytes do not reach `maxSize` and hold no cut).
 * With `eof` the remainder always ends as a chunk, however short.
 */
export function findCutPoint(buf: Uint8Array, start: number, end: number, cut: CutParams, eof: boolean): number {
  let size = end - start;
  if (size <= cut.minSize) return eof ? size : 0;
  if (size > cut.maxSize) size = cut.maxSize;
  const strictEnd = start + Math.min(cut.center, size);
  const eagerEnd = start + size;
  const maskS = cut.maskS;
  const maskL = cut.maskL;
  const table = GEAR_TABLE;
  // The sum never exceeds 2^32 - 1; `| 0` keeps it an int32 for V8 and `>>> 1` reads it back unsigned.
  let hash = 0;
  let i = start + cut.minSize;
  while (i < strictEnd) {
    hash = ((hash >>> 1) + table[buf[i]!]!) | 0;
    i++;
    if ((hash & maskS) === 0) return i - start;
  }
  while (i < eagerEnd) {
    hash = ((hash >>> 1) + table[buf[i]!]!) | 0;
    i++;
    if ((hash & maskL) === 0) return i - start;
  }
  // A non-final buffer may still hold a longer chunk, unless this one already reached maxSize.
  if (!eof && size < cut.maxSize) return 0;
  return size;
}
