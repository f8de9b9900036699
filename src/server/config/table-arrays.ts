// Arrays of tables (`[[oidc.issuers]]`, `[[caches]]`; ours), which the flat key reader of
// parse.ts does not walk: each entry is checked against the schema's keys for its table, with
// the same value readers and defaults, and its problems are named with the entry's index.
import type { ConfigReader } from "./reader.ts";
import { KEYS, splitKey } from "./schema.ts";
import { readValue, ValueProblem } from "./values.ts";

export const isTable = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** Read one entry of an array of tables against the schema keys of `table`; undefined values had problems. */
export function readEntry(r: ConfigReader, table: string, where: string, body: Record<string, unknown>, nested: readonly string[]): Map<string, unknown> {
  const specs = KEYS.filter((k) => splitKey(k.key).table === table);
  const values = new Map<string, unknown>();
  for (const name of Object.keys(body)) {
    if (!specs.some((k) => splitKey(k.key).name === name) && !nested.includes(name)) r.warn(`${where}.${name}`, "unknown key, ignored");
  }
  for (const spec of specs) {
    const name = splitKey(spec.key).name;
    const raw = body[name] ?? spec.default;
    if (raw === undefined) {
      if (spec.required) r.problem(`${where}.${name}`, "missing (required)");
      continue;
    }
    try {
      values.set(name, readValue(spec.kind, raw, spec));
    } catch (error) {
      if (!(error instanceof ValueProblem)) throw error;
      r.problem(`${where}.${name}`, error.message);
    }
  }
  return values;
}
