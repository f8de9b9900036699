// `attic login NAME ENDPOINT [TOKEN] [--set-default]`: add or update a server in the config.
// Ours: `--oidc` gets the token by exchanging the CI job's OIDC ID token with the server.
// As upstream, the arguments may also come from ATTIC_LOGIN_NAME, ATTIC_LOGIN_ENDPOINT,
// ATTIC_LOGIN_TOKEN and ATTIC_LOGIN_FORCE_DEFAULT.
import { ApiClient } from "../api.ts";
import { parseServerName } from "../cache-ref.ts";
import { readIdToken } from "../oidc.ts";
import { configPath, loadConfig, saveConfig } from "../config.ts";
import { say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";

export type LoginOptions = {
  name?: string;
  endpoint?: string;
  token?: string;
  setDefault?: boolean;
  /** ours: exchange the CI job's OIDC ID token for a token (client/oidc.ts) */
  oidc?: boolean;
  idTokenFile?: string;
  idTokenEnv?: string;
  audience?: string;
};

/** clap's boolean env parsing: these mean false, anything else true. */
const FALSEY = new Set(["", "0", "false", "no", "off", "n", "f"]);

export async function run(options: LoginOptions, ctx: Ctx): Promise<void> {
  const rawName = options.name ?? ctx.env.ATTIC_LOGIN_NAME;
  const endpoint = options.endpoint ?? ctx.env.ATTIC_LOGIN_ENDPOINT;
  let token = options.token ?? ctx.env.ATTIC_LOGIN_TOKEN;
  const forceDefault = ctx.env.ATTIC_LOGIN_FORCE_DEFAULT;
  const setDefault = options.setDefault === true || (forceDefault !== undefined && !FALSEY.has(forceDefault.toLowerCase()));
  if (rawName === undefined) throw new UserError("Missing the server name: attic login NAME ENDPOINT [TOKEN]");
  if (endpoint === undefined) throw new UserError("Missing the endpoint: attic login NAME ENDPOINT [TOKEN]");
  const name = parseServerName(rawName);
  if (options.oidc === true) {
    if (options.token !== undefined) throw new UserError("Give either TOKEN or --oidc, not both");
    const idToken = await readIdToken({ idTokenFile: options.idTokenFile, idTokenEnv: options.idTokenEnv, audience: options.audience ?? endpoint }, ctx);
    const exchanged = await new ApiClient(endpoint, null).oidcExchange(idToken.token);
    token = exchanged.token;
    say(ctx, `🔑 Exchanged the ID token from ${idToken.from} for a token valid until ${new Date(exchanged.expires_at * 1000).toISOString()}`);
  } else if (options.idTokenFile !== undefined || options.idTokenEnv !== undefined || options.audience !== undefined) {
    throw new UserError("--id-token-file, --id-token-env and --audience go with --oidc");
  }

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
