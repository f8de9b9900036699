// `attic use CACHE`: configure Nix to substitute from a cache: substituter and trusted key
// in nix.conf, and with a token, a netrc entry plus `netrc-file` (upstream command/use.rs).
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";
import { loadNixConfig, nixConfPath, saveNixConfig } from "../nix-config.ts";
import { addToken, loadNetrc, netrcPath, saveNetrc } from "../nix-netrc.ts";

export type UseOptions = { cache: string };

export async function run(options: UseOptions, ctx: Ctx): Promise<void> {
  const { serverName, cache, api, token } = await connect(ctx, options.cache);
  const config = await api.getCacheConfig(cache);
  const substituter = config.substituter_endpoint;
  if (substituter === undefined) throw new UserError("The server did not tell us where the binary cache endpoint is.");
  const publicKey = config.public_key;
  if (publicKey === undefined) {
    throw new UserError("The server did not tell us which public key it uses. Is signing managed by the client?");
  }

  say(ctx, `Configuring Nix to use "${cache}" on "${serverName}":`);
  say(ctx, `+ Substituter: ${substituter}`);
  say(ctx, `+ Trusted Public Key: ${publicKey}`);

  const nixConfFile = nixConfPath(ctx.env);
  const nixConf = await loadNixConfig(nixConfFile);
  nixConf.addSubstituter(substituter);
  nixConf.addTrustedPublicKey(publicKey);

  if (token !== null) {
    say(ctx, "+ Access Token");
    let host: string;
    try {
      host = new URL(substituter).hostname;
    } catch {
      throw new UserError(`The server returned an invalid binary cache endpoint: ${substituter}`);
    }
    const netrcFile = netrcPath(ctx.env);
    const netrc = await loadNetrc(netrcFile);
    addToken(netrc, host, token);
    await saveNetrc(netrcFile, netrc);
    nixConf.setNetrcFile(netrcFile);
  }

  await saveNixConfig(nixConfFile, nixConf);
}
