// XDG base directories as the `xdg` crate resolves them: a set, absolute XDG_* variable wins,
// otherwise the default under $HOME.
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

function base(env: NodeJS.ProcessEnv, variable: string, fallback: string): string {
  const value = env[variable];
  if (value && isAbsolute(value)) return value;
  return join(env.HOME || homedir(), fallback);
}

/** `$XDG_CONFIG_HOME/attic` (default `~/.config/attic`) */
export function configDir(env: NodeJS.ProcessEnv): string {
  return join(base(env, "XDG_CONFIG_HOME", ".config"), "attic");
}

/** `$XDG_DATA_HOME/attic` (default `~/.local/share/attic`) */
export function dataDir(env: NodeJS.ProcessEnv): string {
  return join(base(env, "XDG_DATA_HOME", join(".local", "share")), "attic");
}

/** `$XDG_CONFIG_HOME/attic/server.toml` */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "server.toml");
}
