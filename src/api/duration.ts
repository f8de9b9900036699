// Durations in the style of Rust's `humantime` crate, which upstream uses for `--validity`,
// `--retention-period` and the `[garbage-collection]` keys: `12 hours`, `3 months`, `1h 30m`,
// `2y`. A duration is a sequence of `<integer><unit>` spans; units are case-sensitive (`M` is a
// month, `m` a minute). Results are whole seconds (sub-second parts are truncated, as upstream
// truncates to `as_secs()` / Unix seconds).

const NS_PER_SEC = 1_000_000_000n;

/** unit → length in nanoseconds; month = 30.44 days and year = 365.25 days, as humantime */
const UNITS: ReadonlyMap<string, bigint> = new Map(
  (
    [
      [["nanos", "nsec", "ns"], 1n],
      [["usec", "us"], 1_000n],
      [["millis", "msec", "ms"], 1_000_000n],
      [["seconds", "second", "secs", "sec", "s"], NS_PER_SEC],
      [["minutes", "minute", "mins", "min", "m"], 60n * NS_PER_SEC],
      [["hours", "hour", "hrs", "hr", "h"], 3_600n * NS_PER_SEC],
      [["days", "day", "d"], 86_400n * NS_PER_SEC],
      [["weeks", "week", "w"], 604_800n * NS_PER_SEC],
      [["months", "month", "M"], 2_630_016n * NS_PER_SEC],
      [["years", "year", "y"], 31_557_600n * NS_PER_SEC],
    ] as const
  ).flatMap(([names, ns]) => names.map((name) => [name, ns] as const)),
);

const MONTH_SECS = 2_630_016;
const YEAR_SECS = 31_557_600;
const U64_MAX = 2n ** 64n - 1n;

export class DurationParseError extends Error {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid duration ${JSON.stringify(input)}: ${reason}`);
    this.name = "DurationParseError";
    this.input = input;
  }
}

const isDigit = (c: string): boolean => c >= "0" && c <= "9";
const isLetter = (c: string): boolean => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
const isSpace = (c: string): boolean => /\s/u.test(c);

/**
 * Parse a humantime duration into whole seconds. Throws DurationParseError with humantime's
 * reasons (`expected number at 0`, `unknown time unit "x", …`, `value was empty`, …).
 * A bare `0` is accepted as zero (humantime itself wants a unit, but upstream documents
 * `default-retention-period = "0"`).
 */
export function parseDuration(input: string): number {
  if (/^\s*0+\s*$/u.test(input)) return 0;
  const chars = Array.from(input);
  // character offsets are reported like humantime's byte offsets (identical for ASCII input)
  let i = 0;
  let totalNs = 0n;
  let spans = 0;
  const fail = (reason: string): never => {
    throw new DurationParseError(input, reason);
  };

  for (;;) {
    while (i < chars.length && isSpace(chars[i]!)) i++;
    if (i >= chars.length) break;
    if (!isDigit(chars[i]!)) fail(`expected number at ${i}`);

    // the number: digits, where whitespace between digits is skipped (as humantime does)
    let value = 0n;
    while (i < chars.length) {
      const c = chars[i]!;
      if (isDigit(c)) {
        value = value * 10n + BigInt(c.charCodeAt(0) - 48);
        if (value > U64_MAX) fail("number is too large");
      } else if (isLetter(c)) {
        break;
      } else if (!isSpace(c)) {
        fail(`invalid character at ${i}`);
      }
      i++;
    }

    // the unit: letters up to whitespace, a digit (the next span) or the end
    const start = i;
    while (i < chars.length && isLetter(chars[i]!)) i++;
    if (i < chars.length && !isDigit(chars[i]!) && !isSpace(chars[i]!)) fail(`invalid character at ${i}`);
    const unit = chars.slice(start, i).join("");
    if (unit === "") fail(`time unit needed, for example ${value}sec or ${value}ms`);
    const unitNs = UNITS.get(unit);
    if (unitNs === undefined) {
      fail(
        `unknown time unit ${JSON.stringify(unit)}, supported units: ns, us, ms, sec, min, hours, days, weeks, months, years (and few variations)`,
      );
    }
    totalNs += value * unitNs!;
    spans++;
  }

  if (spans === 0) fail("value was empty");
  const seconds = totalNs / NS_PER_SEC;
  if (seconds > BigInt(Number.MAX_SAFE_INTEGER)) fail("number is too large");
  return Number(seconds);
}

/**
 * Format whole seconds the way humantime does: `1year 2months 3days 4h 5m 6s`, `12h`, `0s`.
 * The result parses back to the same value with parseDuration.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isSafeInteger(seconds) || seconds < 0) {
    throw new RangeError(`formatDuration: expected a non-negative whole number of seconds, got ${seconds}`);
  }
  if (seconds === 0) return "0s";
  const years = Math.floor(seconds / YEAR_SECS);
  const inYear = seconds % YEAR_SECS;
  const months = Math.floor(inYear / MONTH_SECS);
  const inMonth = inYear % MONTH_SECS;
  const parts: string[] = [];
  const plural = (n: number, name: string): void => {
    if (n > 0) parts.push(`${n}${name}${n > 1 ? "s" : ""}`);
  };
  const plain = (n: number, name: string): void => {
    if (n > 0) parts.push(`${n}${name}`);
  };
  plural(years, "year");
  plural(months, "month");
  plural(Math.floor(inMonth / 86_400), "day");
  const inDay = inMonth % 86_400;
  plain(Math.floor(inDay / 3_600), "h");
  plain(Math.floor((inDay % 3_600) / 60), "m");
  plain(inDay % 60, "s");
  return parts.join(" ");
}
