// `atticadm revoke-token TOKEN|JTI` and `atticadm revoke-token --sub SUBJECT` (ours, issue 18):
// add a revocation to the database, which every replica reads within seconds (see
// server/revocations.ts). A token given whole is revoked by its `jti` until it expires (then GC
// drops the row); a bare jti or a subject stays revoked until `--keep` runs out, or for good.
// Tokens without a jti (upstream's make-token sets none) can only be revoked by subject.
import { openDatabase } from "../../db/connect.ts";
import { insertRevocation } from "../../db/queries/revocations.ts";
import { parseClaims } from "../../token/claims.ts";
import { loadConfig } from "../../server/config/load.ts";
import type { AdminCtx } from "../context.ts";
import { UserError } from "../errors.ts";

export interface RevokeTokenOptions {
  /** a whole token, or the jti of one */
  token?: string;
  sub?: string;
  reason?: string;
  /** seconds to keep the revocation; default: until the token expires (whole token), else forever */
  keep?: number;
}

function claimsOfToken(token: string): { jti?: string; sub?: string; exp?: number } {
  const payload = token.split(".")[1] ?? "";
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new UserError("the token cannot be decoded (expected a JWT: three base64url parts separated by dots)");
  }
  const claims = parseClaims(json);
  if (!claims) throw new UserError("the token's claims are not an Attic token's");
  return claims;
}

export async function run(options: RevokeTokenOptions, ctx: AdminCtx): Promise<void> {
  if ((options.token === undefined) === (options.sub === undefined)) {
    throw new UserError("give either a token (or its jti) or --sub SUBJECT, not both");
  }
  const { config } = await loadConfig({ path: ctx.configPath, env: ctx.env });
  const now = new Date();
  const keepUntil = options.keep === undefined ? null : new Date(now.getTime() + options.keep * 1000);
  let row: { jti?: string; sub?: string; issuedBefore?: Date; expiresAt: Date | null };
  let what: string;
  if (options.sub !== undefined) {
    row = { sub: options.sub, issuedBefore: now, expiresAt: keepUntil };
    what = `every token of subject "${options.sub}" issued until ${now.toISOString()}`;
  } else if (options.token!.includes(".")) {
    const claims = claimsOfToken(options.token!);
    if (claims.jti === undefined) {
      throw new UserError(
        `the token has no jti (made by upstream's atticadm or before attic-ts set one); revoke its subject instead: atticadm revoke-token --sub ${JSON.stringify(claims.sub ?? "SUBJECT")}`,
      );
    }
    // the server accepts a token until exp plus the clock-skew tolerance
    const expiresAt = claims.exp === undefined ? null : new Date((claims.exp + config.jwt.timeTolerance) * 1000);
    row = { jti: claims.jti, sub: claims.sub, expiresAt: keepUntil ?? expiresAt };
    what = `the token ${claims.jti}${claims.sub === undefined ? "" : ` of subject "${claims.sub}"`}`;
  } else {
    if (!/^[\x21-\x7e]{1,200}$/.test(options.token!)) throw new UserError("a jti is 1 to 200 printable characters");
    row = { jti: options.token!, expiresAt: keepUntil };
    what = `the token ${options.token!}`;
  }

  const db = await openDatabase(config.database.url, { poolSize: 1 });
  try {
    const id = await insertRevocation(db, { ...row, reason: options.reason ?? null, createdAt: now });
    const until = row.expiresAt === null ? "for good" : `until ${row.expiresAt.toISOString()}`;
    ctx.stdout.write(`Revoked ${what} (revocation ${id}, kept ${until}). Every atticd on this database refuses it within seconds.\n`);
  } finally {
    await db.close();
  }
}
