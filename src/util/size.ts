// Byte sizes as people write and read them: parsed from "500 GiB", "1.5G", "750 MB" (the client's
// --max-size, the server's size keys) and printed as indicatif's `HumanBytes` (binary prefixes,
// two decimals), which upstream's client uses. Each caller words its own error.

/** IEC units and bare letters are powers of 1024, SI units powers of 1000. */
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

export interface SizeTextOptions {
  /** how a fraction of a byte becomes whole (default Math.round) */
  round?: (bytes: number) => number;
  /** the largest unit accepted, as its factor (default: every unit above, up to PiB) */
  largestUnit?: number;
}

/** The bytes `text` stands for, or null when it is not a number with a known unit. May exceed 2^53: callers check. */
export function parseSizeText(text: string, opts: SizeTextOptions = {}): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  const factor = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || factor === undefined || factor > (opts.largestUnit ?? Infinity)) return null;
  return (opts.round ?? Math.round)(Number(match[1]) * factor);
}

const PREFIXES = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];

/** `1.50 GiB`, `512 B` (indicatif's HumanBytes). */
export function humanBytes(n: number): string {
  if (!(n >= 1024)) return `${Math.max(0, Math.round(n))} B`;
  let value = n;
  let i = -1;
  while (value >= 1024 && i < PREFIXES.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(2)} ${PREFIXES[i]}B`;
}
