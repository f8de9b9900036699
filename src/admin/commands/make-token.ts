// `atticadm make-token`: mint a token with the server's key (upstream make_token.rs). Claims are
// exp = now + validity, nbf = now, sub, then the permission map, filled flag group by flag group
// (all --pull patterns, then --push, …); a pattern keeps the position of its first insertion.
// Ours: a random `jti`, the handle of `atticadm revoke-token`.
import { randomUUID } from "node:crypto";
import type { PermissionName } from "../../token/permissions.ts";
import { grant, serializeClaims, type Claims } from "../../token/claims.ts";
import { signToken } from "../../token/jwt.ts";
import { loadConfig } from "../../server/config/load.ts";
import type { AdminCtx } from "../context.ts";
import { UserError } from "../errors.ts";

export interface MakeTokenOptions {
  sub: string;
  /** seconds */
  validity: number;
  dumpClaims: boolean;
  pull: string[];
  push: string[];
  delete: string[];
  createCache: string[];
  configureCache: string[];
  configureCacheRetention: string[];
  destroyCache: string[];
}

/** Flag groups in the order upstream grants them. */
const GROUPS: readonly PermissionName[] = ["pull", "push", "delete", "createCache", "configureCache", "configureCacheRetention", "destroyCache"];

/** The claims make-token signs, before iss/aud are added. */
export function makeTokenClaims(options: MakeTokenOptions, now: number = Date.now()): Claims {
  const exp = Math.floor((now + options.validity * 1000) / 1000);
  if (!Number.isSafeInteger(exp)) throw new UserError("Expiry timestamp overflowed");
  // jti (ours): a random id, so that `atticadm revoke-token` can revoke this token alone
  const claims: Claims = { exp, nbf: Math.floor(now / 1000), sub: options.sub, jti: randomUUID(), caches: new Map() };
  for (const group of GROUPS) for (const pattern of options[group]) grant(claims, pattern, group);
  return claims;
}

export async function run(options: MakeTokenOptions, ctx: AdminCtx): Promise<void> {
  // the whole server config is loaded, as upstream does, even for --dump-claims
  const { config, warnings } = await loadConfig({ path: ctx.configPath, env: ctx.env });
  for (const warning of warnings) ctx.stderr.write(`Warning: ${warning}\n`);

  const claims = makeTokenClaims(options);
  if (options.dumpClaims) {
    ctx.stdout.write(`${serializeClaims(claims)}\n`);
    return;
  }
  const token = await signToken(claims, config.jwt.signing, {
    issuer: config.jwt.tokenBoundIssuer,
    audiences: config.jwt.tokenBoundAudiences,
  });
  ctx.stdout.write(`${token}\n`);
}
