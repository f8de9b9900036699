// `attic login NAME ENDPOINT [TOKEN] [--set-default]`: add or update a server in the config.
// As upstream, the arguments may also come from ATTIC_LOGIN_NAME, ATTIC_LOGIN_ENDPOINT,
// ATTIC_LOGIN_TOKEN and ATTIC_LOGIN_FORCE_DEFAULT.
import { parseServerName } from "../cache-ref.ts";
import { configPath, loadConfig, saveConfig } from "../config.ts";
import { say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";

export type LoginOptions = { name?: string; endpoint?: string; token?: string; setDefault?: boolean };

/** clap's boolean env parsing: these mean false, anything else true. */
const FALSEY = new Set(["", "0", "false", "no", "off", "n", "f"]);

export async function run(options: LoginOptions, ctx: Ctx): Promise<void> {
  const rawName = options.name ?? ctx.env.ATTIC_LOGIN_NAME;
  const endpoint = options.endpoint ?? ctx.env.ATTIC_LOGIN_ENDPOINT;
  const token = options.token ?? ctx.env.ATTIC_LOGIN_TOKEN;
  const forceDefault = ctx.env.ATTIC_LOGIN_FORCE_DEFAULT;
  const setDefault = options.setDefault === true || (forceDefault !== undefined && !FALSEY.has(forceDefault.toLowerCase()));
  if (rawName === undefined) throw new UserError("Missing the server name: attic login NAME ENDPOINT [TOKEN]");
  if (endpoint === undefined) throw new UserError("Missing the endpoint: attic login NAME ENDPOINT [TOKEN]");
  const name = parseServerName(rawName);

  const path = configPath(ctx.env);
  const config = await loadConfig(path);
  const existing = config.servers.get(name);
  if (existing !== undefined) {
    say(ctx, `✍️ Overwriting server "${name}"`);
    existing.endpoint = endpoint;
    if (token !== undefined) {
      existing.token = token;
      delete existing.tokenFile;
    }
  } else {
    say(ctx, `✍️ Configuring server "${name}"`);
    config.servers.set(name, token === undefined ? { endpoint } : { endpoint, token });
  }
  if (setDefault || config.servers.size === 1) config.defaultServer = name;
  await saveConfig(path, config);
}
