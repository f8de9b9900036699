// XDG base directories, as the `xdg` crate upstream uses resolves them: a set, absolute XDG_*
// variable wins, otherwise the default under $HOME (or the account's home when HOME is unset or
// empty). Shared by the client (config.toml, nix.conf, netrc) and the server (first-run files).
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

function base(env: NodeJS.ProcessEnv, variable: string, fallback: string): string {
  const value = env[variable];
  if (value && isAbsolute(value)) return value;
  return join(env.HOME || homedir(), fallback);
}

/** `$XDG_CONFIG_HOME`, default `~/.config` */
export function configHome(env: NodeJS.ProcessEnv): string {
  return base(env, "XDG_CONFIG_HOME", ".config");
}

/** `$XDG_DATA_HOME`, default `~/.local/share` */
export function dataHome(env: NodeJS.ProcessEnv): string {
  return base(env, "XDG_DATA_HOME", join(".local", "share"));
}

/** `$XDG_STATE_HOME`, default `~/.local/state` */
export function stateHome(env: NodeJS.ProcessEnv): string {
  return base(env, "XDG_STATE_HOME", join(".local", "state"));
}
