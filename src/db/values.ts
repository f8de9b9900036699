// Values as the engines store them. PostgreSQL has timestamptz and bool; SQLite stores text and
// integers, in the shapes upstream's sqlx writes, so that either server can read the other's rows.
//
// SQLite timestamps: sqlx 0.8 (SeaORM 1.x) binds DateTime<Utc> as RFC 3339 with a `T`, a variable
// fraction (0/3/6/9 digits) and `+00:00`, e.g. `2026-08-24T15:37:02.437013178+00:00`. We write
// the same shape with a fixed nine-digit fraction. All such strings compare correctly as text
// (the `+` after the seconds or fraction sorts below `.` and the digits), which is what the
// cutoff comparisons in GC rely on; ours sort correctly among upstream's.

const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00` (UTC, fixed width, 35 characters). */
export function formatSqliteTimestamp(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new RangeError("invalid Date");
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}` +
    `.${pad(d.getUTCMilliseconds(), 3)}000000+00:00`
  );
}

// Every text form sqlx's decoder accepts: `T` or space, optional fraction, `Z`, `±HH:MM` or no
// offset (then UTC), and minutes-only times.
const TIMESTAMP_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$/;

export function parseTimestamp(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === "number") return new Date(value * 1000);
  if (typeof value !== "string") throw new TypeError(`not a timestamp: ${String(value)}`);
  const m = TIMESTAMP_RE.exec(value);
  if (!m) throw new TypeError(`not a timestamp: ${value}`);
  const [, y, mo, d, h, mi, s = "0", frac = "", zone] = m;
  const ms = Number((frac + "000").slice(0, 3));
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (zone && zone !== "Z" && zone !== "z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    t -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return new Date(t);
}

export function parseNullableTimestamp(value: unknown): Date | null {
  return value === null || value === undefined ? null : parseTimestamp(value);
}

export function toBool(value: unknown): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "number" || typeof value === "bigint") return value !== 0 && value !== 0n;
  if (typeof value === "string") return value === "1" || value === "t" || value === "true";
  throw new TypeError(`not a boolean: ${String(value)}`);
}

/** Integers arrive as number (SQLite, PG int4, PG int8 via our parser), bigint, or numeric text (PG SUM). */
export function toInt(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint" || typeof value === "string") {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new RangeError(`integer out of range: ${String(value)}`);
    return n;
  }
  throw new TypeError(`not an integer: ${String(value)}`);
}

export function toNullableInt(value: unknown): number | null {
  return value === null || value === undefined ? null : toInt(value);
}
