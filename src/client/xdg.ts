// XDG base directories, as the `xdg` crate upstream uses: $XDG_CONFIG_HOME if absolute,
// else ~/.config.
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

export function configHome(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return xdg;
  return join(env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir(), ".config");
}
