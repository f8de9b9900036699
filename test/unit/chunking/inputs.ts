// Fixed inputs shared by the chunking tests.
import { existsSync, readFileSync } from "node:fs";
import type { ChunkingParams } from "../../../src/chunking/fastcdc.ts";
import { fileNar } from "../../helpers/nar.ts";
import { seededBytes } from "./oracle.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The OOBE template's values (16K/64K/256K), the integration test's, and a small set. */
export const PARAM_SETS: readonly ChunkingParams[] = [
  { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 256 * KiB },
  { minSize: 64 * KiB, avgSize: 128 * KiB, maxSize: 256 * KiB },
  { minSize: 8 * KiB, avgSize: 16 * KiB, maxSize: 32 * KiB },
];

export function seededSizes(p: ChunkingParams): number[] {
  return [0, 1, p.minSize - 1, p.minSize, p.minSize + 1, p.maxSize - 1, p.maxSize, p.maxSize + 1, 2 * p.maxSize, MiB, 8 * MiB];
}

/** Random data with a long zero run in the middle: forces max-size cuts that straddle windows. */
export function zeroRunInput(): Buffer {
  return Buffer.concat([seededBytes(300 * KiB + 7, 11), Buffer.alloc(MiB + 13), seededBytes(500 * KiB, 12)]);
}

/**
 * A NAR of real executables (some of /usr/bin plus the start of the node binary running the test),
 * since machine code and symbol tables chunk differently from uniform noise.
 */
export function realNar(): Buffer {
  const parts: Buffer[] = [];
  for (const path of ["/usr/bin/bash", "/usr/bin/ls", "/usr/bin/tar", "/usr/bin/gpg"]) {
    if (existsSync(path)) parts.push(readFileSync(path));
  }
  parts.push(readFileSync(process.execPath).subarray(0, 2 * MiB));
  return fileNar(Buffer.concat(parts), true);
}
