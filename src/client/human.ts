// Human-readable sizes: printed as indicatif's `HumanBytes` (src/cli/human-bytes.ts), and parsed
// for `--max-size 10 GiB`.
import { UserError } from "./errors.ts";

export { humanBytes } from "../cli/human-bytes.ts";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
  p: 1024 ** 5,
  pib: 1024 ** 5,
  pb: 1000 ** 5,
};

/** `1073741824`, `10 GiB`, `1.5G`, `500 MB` → bytes. IEC and single letters are powers of 1024. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(s);
  const unit = m === null ? undefined : UNITS[m[2]!.toLowerCase()];
  if (m === null || unit === undefined) {
    throw new UserError(`Invalid size "${s}": expected a number of bytes, optionally with a unit such as "10 GiB" or "500 MB"`);
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UserError(`Invalid size "${s}": too large`);
  return bytes;
}
