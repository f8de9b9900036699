// The client configuration, `$XDG_CONFIG_HOME/attic/config.toml`, in upstream's format:
//
//   default-server = "local"
//   [servers.local]
//   endpoint = "http://localhost:8080"
//   token = "eyJ..."            # or: token-file = "/path" (contents trimmed)
//
// Written back (mode 0600) when a command changes it, in place (config-edit.ts).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse, stringify } from "smol-toml";
import { isValidCacheName } from "../api/v1.ts";
import { writeFileAtomic, PRIVATE_FILE_MODE } from "./atomic-write.ts";
import type { CacheRef } from "./cache-ref.ts";
import { setDefaultServer, setServer } from "./config-edit.ts";
import { UserError } from "./errors.ts";
import { configHome } from "../util/xdg.ts";

export interface ServerConfig {
  endpoint: string;
  token?: string;
  tokenFile?: string;
}

export interface ClientConfig {
  defaultServer: string | null;
  /** in file order; the first one is used when no default is set */
  servers: Map<string, ServerConfig>;
}

export interface ResolvedCache {
  serverName: string;
  server: ServerConfig;
  cache: string;
}

export function configPath(env: NodeJS.ProcessEnv): string {
  return join(configHome(env), "attic", "config.toml");
}

async function readConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw new UserError(`Failed to read ${path}: ${(err as Error).message}`);
  }
}

export async function loadConfig(path: string): Promise<ClientConfig> {
  return parseConfig(await readConfigText(path), path);
}

export function parseConfig(text: string, path: string): ClientConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new UserError(`Failed to parse ${path}: ${(err as Error).message}`);
  }
  const bad = (what: string): UserError => new UserError(`Invalid configuration in ${path}: ${what}`);

  const defaultServer = doc["default-server"];
  if (defaultServer !== undefined && typeof defaultServer !== "string") throw bad("`default-server` must be a string");
  const servers = new Map<string, ServerConfig>();
  const table = doc.servers ?? {};
  if (typeof table !== "object" || table === null || Array.isArray(table)) throw bad("`servers` must be a table");
  for (const [name, raw] of Object.entries(table)) {
    if (!isValidCacheName(name)) throw bad(`invalid server name "${name}"`);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad(`servers.${name} must be a table`);
    const entry = raw as Record<string, unknown>;
    if (typeof entry.endpoint !== "string") throw bad(`servers.${name}.endpoint must be a string`);
    const server: ServerConfig = { endpoint: entry.endpoint };
    // As upstream's untagged enum: an inline `token` wins over `token-file`.
    if (typeof entry.token === "string") server.token = entry.token;
    else if (typeof entry["token-file"] === "string") server.tokenFile = entry["token-file"];
    else if (entry.token !== undefined || entry["token-file"] !== undefined) throw bad(`servers.${name}.token must be a string`);
    servers.set(name, server);
  }
  return { defaultServer: defaultServer ?? null, servers };
}

export function serializeConfig(config: ClientConfig): string {
  const doc: Record<string, unknown> = {};
  if (config.defaultServer !== null) doc["default-server"] = config.defaultServer;
  if (config.servers.size > 0) {
    const servers: Record<string, Record<string, string>> = {};
    for (const [name, s] of config.servers) {
      const entry: Record<string, string> = { endpoint: s.endpoint };
      if (s.token !== undefined) entry.token = s.token;
      else if (s.tokenFile !== undefined) entry["token-file"] = s.tokenFile;
      servers[name] = entry;
    }
    doc.servers = servers;
  }
  return stringify(doc);
}

/** `text` edited to hold `config`: changed servers and `default-server` in place, keeping the
 * user's comments and layout; what cannot be done in place (a removed server, a server written
 * as an inline table, a multi-line string) rewrites the whole file from `config`. */
export function editConfig(text: string, config: ClientConfig): string {
  let before: ClientConfig;
  try {
    before = parseConfig(text, "");
  } catch {
    return serializeConfig(config);
  }
  let out: string | null = text;
  for (const [name, server] of config.servers) {
    if (out !== null && !isDeepStrictEqual(before.servers.get(name), server)) out = setServer(out, name, server);
  }
  if (out !== null && config.defaultServer !== null && config.defaultServer !== before.defaultServer) {
    out = setDefaultServer(out, config.defaultServer);
  }
  if (out !== null) {
    try {
      if (isDeepStrictEqual(parseConfig(out, ""), config)) return out;
    } catch {
      // not valid TOML after all (a server that was an inline table): the rewrite below
    }
  }
  return serializeConfig(config);
}

export async function saveConfig(path: string, config: ClientConfig): Promise<void> {
  await writeFileAtomic(path, editConfig(await readConfigText(path), config), PRIVATE_FILE_MODE);
}

export function defaultServer(config: ClientConfig): [string, ServerConfig] {
  if (config.defaultServer !== null) {
    const server = config.servers.get(config.defaultServer);
    if (server === undefined) throw new UserError(`Configured default server "${config.defaultServer}" does not exist`);
    return [config.defaultServer, server];
  }
  const first = config.servers.entries().next();
  if (first.done === true) throw new UserError("No servers are available.");
  return first.value;
}

export function resolveCache(config: ClientConfig, ref: CacheRef): ResolvedCache {
  if (ref.server === null) {
    const [serverName, server] = defaultServer(config);
    return { serverName, server, cache: ref.cache };
  }
  const server = config.servers.get(ref.server);
  if (server === undefined) throw new UserError(`Server "${ref.server}" does not exist`);
  return { serverName: ref.server, server, cache: ref.cache };
}

/** The token to send, reading `token-file` (trimmed) when that is how it is configured. */
export async function serverToken(server: ServerConfig): Promise<string | null> {
  if (server.token !== undefined) return server.token;
  if (server.tokenFile === undefined) return null;
  try {
    return (await readFile(server.tokenFile, "utf8")).trim();
  } catch (err) {
    throw new UserError(`Failed to read token from ${server.tokenFile}: ${(err as Error).message}`);
  }
}
