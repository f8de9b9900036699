// Readers for the value kinds of the config schema. Each takes the raw TOML value and returns
// the internal value or throws a ValueProblem whose message completes "<key>: …".
import { parseDuration } from "../../api/duration.ts";
import { parseSizeText } from "../../util/size.ts";
import { ListenAddressError, parseListenAddress } from "../listen.ts";

export class ValueProblem extends Error {}

export type ValueKind =
  | "string"
  | "boolean"
  | "integer"
  | "string-list"
  | "duration"
  | "size"
  | "socket-address"
  | "endpoint"
  | "url"
  | "database-url"
  | "enum"
  | "secret";

/** Bounds and choices a key may add to its kind. */
export interface ValueRules {
  min?: number;
  max?: number;
  values?: readonly string[];
}

const show = (raw: unknown): string => (typeof raw === "string" ? JSON.stringify(raw) : `${JSON.stringify(raw) ?? String(raw)}`);

function typeName(raw: unknown): string {
  if (Array.isArray(raw)) return "an array";
  if (raw === null) return "null";
  if (raw instanceof Date || (typeof raw === "object" && raw?.constructor?.name === "TomlDate")) return "a date";
  if (typeof raw === "object") return "a table";
  if (typeof raw === "number") return Number.isInteger(raw) ? "an integer" : "a float";
  return `a ${typeof raw}`;
}

function expectString(raw: unknown, what = "a string"): string {
  if (typeof raw !== "string") throw new ValueProblem(`expected ${what}, got ${typeName(raw)}`);
  return raw;
}

function readInteger(raw: unknown, rules: ValueRules): number {
  if (typeof raw !== "number" || !Number.isSafeInteger(raw)) throw new ValueProblem(`expected an integer, got ${typeName(raw)} ${show(raw)}`);
  if (rules.min !== undefined && raw < rules.min) throw new ValueProblem(`must be at least ${rules.min}, got ${raw}`);
  if (rules.max !== undefined && raw > rules.max) throw new ValueProblem(`must be at most ${rules.max}, got ${raw}`);
  return raw;
}

function readDuration(raw: unknown): number {
  const text = expectString(raw, 'a duration string such as "12 hours" or "3 months"');
  try {
    return parseDuration(text);
  } catch (error) {
    throw new ValueProblem((error as Error).message);
  }
}

/** Bytes as an integer, or a string like "500 GiB", "1.5 TB", "750M" (K/M/G/T alone are binary). */
export function parseSize(raw: unknown): number {
  if (typeof raw === "number") return readInteger(raw, { min: 0 });
  const text = expectString(raw, 'a size in bytes or a string such as "500 GiB"');
  // units up to TiB, fractions of a byte dropped
  const bytes = parseSizeText(text, { round: Math.floor, largestUnit: 1024 ** 4 });
  if (bytes === null) {
    throw new ValueProblem(`invalid size ${show(text)}: expected a number with an optional unit B, KB, KiB, MB, MiB, GB, GiB, TB or TiB`);
  }
  if (!Number.isSafeInteger(bytes)) throw new ValueProblem(`size ${show(text)} is too large`);
  return bytes;
}

/** A listen address: the rule and its message are listen.ts's, shared with `atticd -l`. */
function readSocketAddress(raw: unknown): string {
  const text = expectString(raw);
  try {
    parseListenAddress(text);
  } catch (error) {
    if (error instanceof ListenAddressError) throw new ValueProblem(error.message);
    throw error;
  }
  return text;
}

function readHttpUrl(raw: unknown): string {
  const text = expectString(raw);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ValueProblem(`expected an http(s) URL, got ${show(text)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ValueProblem(`expected an http(s) URL, got ${show(text)}`);
  return text;
}

function readEndpoint(raw: unknown): string {
  const text = readHttpUrl(raw);
  if (!text.endsWith("/")) throw new ValueProblem(`must end with "/" (for example ${show(`${text}/`)})`);
  return text;
}

function readDatabaseUrl(raw: unknown): string {
  const text = expectString(raw);
  if (!/^(sqlite|postgres|postgresql):/.test(text)) {
    throw new ValueProblem(`expected a sqlite:// or postgres:// URL, got ${show(text.replace(/:\/\/[^@/]*@/, "://…@"))}`);
  }
  return text;
}

export function readValue(kind: ValueKind, raw: unknown, rules: ValueRules = {}): unknown {
  switch (kind) {
    case "string":
      return expectString(raw);
    case "secret":
      return expectString(raw, "a base64 string");
    case "boolean":
      if (typeof raw !== "boolean") throw new ValueProblem(`expected true or false, got ${typeName(raw)} ${show(raw)}`);
      return raw;
    case "integer":
      return readInteger(raw, rules);
    case "string-list":
      if (!Array.isArray(raw) || !raw.every((v) => typeof v === "string")) {
        throw new ValueProblem(`expected an array of strings, got ${typeName(raw)}`);
      }
      return Object.freeze([...raw]);
    case "duration":
      return readDuration(raw);
    case "size": {
      const bytes = parseSize(raw);
      if (rules.min !== undefined && bytes < rules.min) throw new ValueProblem(`must be at least ${rules.min} bytes, got ${bytes}`);
      if (rules.max !== undefined && bytes > rules.max) throw new ValueProblem(`must be at most ${rules.max} bytes, got ${bytes}`);
      return bytes;
    }
    case "socket-address":
      return readSocketAddress(raw);
    case "endpoint":
      return readEndpoint(raw);
    case "url":
      return readHttpUrl(raw);
    case "database-url":
      return readDatabaseUrl(raw);
    case "enum": {
      const text = expectString(raw);
      if (!rules.values?.includes(text)) {
        throw new ValueProblem(`expected one of ${rules.values?.map((v) => JSON.stringify(v)).join(", ")}, got ${show(text)}`);
      }
      return text;
    }
  }
}
