// Who is calling and what may they do on a cache. Tokens are verified once per request; an
// invalid, expired or forged token silently makes the caller anonymous (as upstream). The
// permission check runs BEFORE anything about the cache is revealed (decision 1: outsiders get
// 401 everywhere, whether or not the cache or object exists).
import type { FastifyRequest } from "fastify";
import type { CacheRow } from "../db/schema.ts";
import type { Claims } from "../token/claims.ts";
import { CachePermission, getPermissionForCache } from "../token/permissions.ts";
import { parseAuthorizationHeader } from "../token/jwt.ts";
import { accessError, noSuchCache, unauthorized } from "./errors.ts";

export type PermissionFlag = Exclude<keyof CachePermission, "canDiscover">;

export function tokenFromRequest(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== "string") return null;
  return parseAuthorizationHeader(header);
}

/** Permissions of the caller on `cacheName`; public caches add pull (unless `grantPublic` is false). */
export function permissionFor(
  claims: Claims | null,
  cacheName: string,
  cache: Pick<CacheRow, "is_public"> | null,
  grantPublic = true,
): CachePermission {
  const perm = claims ? getPermissionForCache(claims, cacheName) : new CachePermission();
  if (grantPublic && cache && cache.is_public) perm.pull = true;
  return perm;
}

/**
 * upstream `auth_cache`: no discovery permission → 401 (hides existence), missing cache → 404
 * NoSuchCache, missing flag → 403. Returns the cache row.
 */
export function authorizeCache<C extends Pick<CacheRow, "is_public">>(
  claims: Claims | null,
  cacheName: string,
  cache: C | null,
  flags: PermissionFlag[],
  grantPublic = true,
): { cache: C; permission: CachePermission } {
  const permission = permissionFor(claims, cacheName, cache, grantPublic);
  if (!permission.canDiscover()) throw unauthorized();
  if (!cache) throw noSuchCache();
  for (const flag of flags) if (!permission[flag]) throw accessError();
  return { cache, permission };
}
