// The server's folders under the XDG base directories (util/xdg.ts): its config and, on a first
// start, its SQLite database, storage and token secret.
import { join } from "node:path";
import { configHome, dataHome } from "../../util/xdg.ts";

/** `$XDG_CONFIG_HOME/attic` (default `~/.config/attic`) */
export function configDir(env: NodeJS.ProcessEnv): string {
  return join(configHome(env), "attic");
}

/** `$XDG_DATA_HOME/attic` (default `~/.local/share/attic`) */
export function dataDir(env: NodeJS.ProcessEnv): string {
  return join(dataHome(env), "attic");
}

/** `$XDG_CONFIG_HOME/attic/server.toml` */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "server.toml");
}
