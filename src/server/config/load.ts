// Where the configuration comes from, in upstream's order: `-f PATH`, else the whole TOML in
// ATTIC_SERVER_CONFIG_BASE64, else $XDG_CONFIG_HOME/attic/server.toml. Writing a first-run
// config when none exists is the caller's decision (atticd in monolithic mode), never ours.
import { readFile } from "node:fs/promises";
import { reasonOf } from "../../cli/report.ts";
import { ConfigError, ConfigNotFoundError } from "./errors.ts";
import { parseConfig } from "./parse.ts";
import { ENV_CONFIG_BASE64 } from "./schema.ts";
import type { ParsedConfig } from "./parse.ts";
import { defaultConfigPath } from "./xdg.ts";

export { parseConfig, type ParsedConfig } from "./parse.ts";
export { ConfigError, ConfigNotFoundError } from "./errors.ts";
export { defaultConfigPath } from "./xdg.ts";

export interface LoadOptions {
  /** `-f PATH` */
  path?: string;
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig extends ParsedConfig {
  source: "file" | "env" | "xdg";
  /** the file read; null for ATTIC_SERVER_CONFIG_BASE64 */
  path: string | null;
}

async function readConfigFile(path: string, missing: () => Error): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw missing();
    throw new ConfigError([{ source: path, key: "", message: `cannot read the file: ${reasonOf(error as NodeJS.ErrnoException)}` }]);
  }
}

function decodeBase64Config(value: string): string {
  const compact = value.replace(/\s+/g, "");
  const invalid = (why: string) => new ConfigError([{ source: ENV_CONFIG_BASE64, key: "", message: why }]);
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw invalid("not valid base64");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(compact, "base64"));
  } catch {
    throw invalid("the decoded configuration is not UTF-8 text");
  }
}

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;

  if (options.path !== undefined) {
    const path = options.path;
    const text = await readConfigFile(path, () => new ConfigError([{ source: path, key: "", message: "no such file" }]));
    return { ...parseConfig(text, { source: path, env }), source: "file", path };
  }
  const base64 = env[ENV_CONFIG_BASE64];
  if (base64) {
    const text = decodeBase64Config(base64);
    return { ...parseConfig(text, { source: ENV_CONFIG_BASE64, env }), source: "env", path: null };
  }
  const path = defaultConfigPath(env);
  const text = await readConfigFile(path, () => new ConfigNotFoundError(path));
  return { ...parseConfig(text, { source: path, env }), source: "xdg", path };
}
