// The state of one validation pass: raw values found in the file, the tables present, and the
// problems and warnings collected so far. `read` applies the schema: file value, else env var,
// else default, through the kind's reader; a bad value becomes a problem, never an exception.
import type { ConfigProblem } from "./errors.ts";
import { keySpec } from "./schema.ts";
import { readValue, ValueProblem } from "./values.ts";

export interface ConfigReader {
  /** the file path or ATTIC_SERVER_CONFIG_BASE64 */
  readonly source: string;
  readonly env: NodeJS.ProcessEnv;
  /** raw TOML values by dotted key */
  readonly raw: ReadonlyMap<string, unknown>;
  /** dotted paths of the tables present ("" is the top level) */
  readonly tables: ReadonlySet<string>;
  readonly problems: ConfigProblem[];
  readonly warnings: string[];
  problem(key: string, message: string, from?: string): void;
  warn(key: string, message: string): void;
  hasProblem(key: string): boolean;
  read<T>(key: string, options?: { required?: boolean }): T | undefined;
}

export function createReader(source: string, env: NodeJS.ProcessEnv, raw: ReadonlyMap<string, unknown>, tables: ReadonlySet<string>, problems: ConfigProblem[], warnings: string[]): ConfigReader {
  const reader: ConfigReader = {
    source,
    env,
    raw,
    tables,
    problems,
    warnings,
    problem(key, message, from = source) {
      problems.push({ source: from, key, message });
    },
    warn(key, message) {
      warnings.push(`${source}: ${key}: ${message}`);
    },
    hasProblem(key) {
      return problems.some((p) => p.key === key);
    },
    read<T>(key: string, options: { required?: boolean } = {}): T | undefined {
      const spec = keySpec(key);
      let value = raw.get(key);
      let from = source;
      if (value === undefined && spec.env && env[spec.env]) {
        value = env[spec.env];
        from = spec.env;
      }
      if (value === undefined && options.required) {
        reader.problem(key, "missing (required)");
        return undefined;
      }
      value ??= spec.default;
      if (value === undefined) return undefined;
      try {
        return readValue(spec.kind, value, spec) as T;
      } catch (error) {
        if (!(error instanceof ValueProblem)) throw error;
        reader.problem(key, error.message, from);
        return undefined;
      }
    },
  };
  return reader;
}
