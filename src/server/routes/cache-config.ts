// Cache management: GET/POST/PATCH/DELETE /_api/v1/cache-config/{cache}, and the
// /{cache}/attic-cache-info alias of GET (spec section 1.3).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { CacheConfig, RetentionPeriodConfig } from "../../api/v1.ts";
import { createCache, getCacheByName, hardDeleteCache, softDeleteCache, updateCache } from "../../db/queries/caches.ts";
import type { CacheRow } from "../../db/schema.ts";
import { SigningKeypair } from "../../nix/signing.ts";
import { apiEndpoint, substituterEndpoint } from "../endpoints.ts";
import { authorizeCache, permissionFor, type PermissionFlag } from "../auth.ts";
import { isKeypairConfig, keypairFromConfig } from "../cache-keys.ts";
import { accessError, cacheAlreadyExists, noSuchCache, requestError, unauthorized } from "../errors.ts";
import { asObject, field, isBool, isI32, isInt, isString, isStringArray, requireJsonContentType, shapeError } from "../json-body.ts";
import { cacheNameParam } from "../params.ts";
import { listUpstreams, setUpstreams } from "../../db/queries/upstreams.ts";
import { checkUpstreams } from "../pull-through/allowlist.ts";

export async function cacheConfigRoutes(app: FastifyInstance): Promise<void> {
  const json = { preValidation: requireJsonContentType };
  app.get("/_api/v1/cache-config/:cache", getCacheConfig);
  app.get("/:cache/attic-cache-info", getCacheConfig);
  app.post("/_api/v1/cache-config/:cache", json, createCacheConfig);
  app.patch("/_api/v1/cache-config/:cache", json, configureCache);
  app.delete("/_api/v1/cache-config/:cache", destroyCache);
}

/** GET: the cache's configuration (pull permission, or a public cache). */
async function getCacheConfig(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { db } = this.deps;
  const name = cacheNameParam(request.params);
  const row = await getCacheByName(db, name);
  const { cache } = authorizeCache(request.attic.claims, name, row, ["pull"]);
  const upstreams = await listUpstreams(db, cache.id);
  return reply.type("application/json").send({ ...cacheConfigOf(this, request, cache), ...(upstreams.length > 0 && { upstreams }) });
}

function cacheConfigOf(app: FastifyInstance, request: FastifyRequest, cache: CacheRow): CacheConfig {
  const { config } = app.deps;
  return {
    substituter_endpoint: substituterEndpoint(request, config, cache.name),
    api_endpoint: apiEndpoint(request, config),
    public_key: SigningKeypair.parse(cache.keypair).publicKey().toString(),
    is_public: cache.is_public,
    store_dir: cache.store_dir,
    priority: cache.priority,
    upstream_cache_key_names: JSON.parse(cache.upstream_cache_key_names) as string[],
    retention_period: cache.retention_period === null ? "Global" : { Period: cache.retention_period },
    max_size: cache.max_size ?? null,
    ...(config.upload.maxChunkSize !== null && { upload_chunking: { max_chunk_size: config.upload.maxChunkSize } }),
  };
}

/** POST: create the cache (`cc` on the name; public caches grant nothing here, as upstream). The body is checked first. */
async function createCacheConfig(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const name = cacheNameParam(request.params);
  const wanted = readCreateBody(asObject(request.body));
  const perm = permissionFor(request.attic.claims, name, null, false);
  if (!perm.canDiscover()) throw unauthorized();
  if (!perm.createCache) throw accessError();
  const created = await createCache(this.deps.db, {
    name,
    keypair: keypairFromConfig(wanted.keypair, name).toString(),
    is_public: wanted.isPublic,
    store_dir: wanted.storeDir,
    priority: wanted.priority,
    upstream_cache_key_names: JSON.stringify(wanted.upstreamKeyNames),
    retention_period: null,
  });
  if (!created) throw cacheAlreadyExists();
  return reply.code(200).send();
}

function readCreateBody(body: Record<string, unknown>) {
  const keypair = body.keypair;
  if (keypair === undefined) throw shapeError("missing field `keypair`");
  if (!isKeypairConfig(keypair)) throw shapeError(KEYPAIR_SHAPE);
  const isPublic = field(body, "is_public", isBool, "a boolean", true);
  const storeDir = field(body, "store_dir", isString, "a string", true);
  // PostgreSQL refuses a NUL in text: a 400, not a 500
  if (storeDir.includes("\0")) throw requestError("store_dir must not contain a NUL byte");
  const priority = field(body, "priority", isI32, "i32", true);
  const upstreamKeyNames = field(body, "upstream_cache_key_names", isStringArray, "a sequence of strings", true);
  return { keypair, isPublic, storeDir, priority, upstreamKeyNames };
}

/** PATCH: change what the body sets (`cq` too when it sets retention or a size limit). The body is checked first. */
async function configureCache(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { db, config } = this.deps;
  const name = cacheNameParam(request.params);
  const { patchOf, upstreams, needsRetention } = readPatchBody(asObject(request.body), config.pullThrough.allowedUpstreams);
  const flags: PermissionFlag[] = needsRetention ? ["configureCache", "configureCacheRetention"] : ["configureCache"];
  const row = await getCacheByName(db, name);
  const { cache } = authorizeCache(request.attic.claims, name, row, flags);
  const patch = patchOf(name);
  if (Object.keys(patch).length === 0 && upstreams === undefined) throw requestError("No modifiable fields were set.");
  if (Object.keys(patch).length > 0) await updateCache(db, cache.id, patch);
  if (upstreams !== undefined) await setUpstreams(db, cache.id, upstreams);
  return reply.code(200).send();
}

function readPatchBody(body: Record<string, unknown>, allowedUpstreams: readonly string[]) {
  const keypairCfg = body.keypair;
  if (keypairCfg !== undefined && keypairCfg !== null && !isKeypairConfig(keypairCfg)) throw shapeError(KEYPAIR_SHAPE);
  const isPublic = field(body, "is_public", isBool, "a boolean or null", false);
  const storeDir = field(body, "store_dir", isString, "a string or null", false);
  if (storeDir?.includes("\0")) throw requestError("store_dir must not contain a NUL byte");
  const priority = field(body, "priority", isI32, "i32 or null", false);
  const upstream = field(body, "upstream_cache_key_names", isStringArray, "a sequence of strings or null", false);
  const retention = body.retention_period;
  if (retention !== undefined && retention !== null && !isRetention(retention)) {
    throw shapeError("retention_period: expected \"Global\" or {\"Period\": u32}");
  }
  const maxSize = body.max_size;
  if (maxSize !== undefined && maxSize !== null && !(isInt(maxSize) && maxSize >= 0)) {
    throw shapeError("max_size: expected a non-negative integer or null");
  }
  const upstreams = body.upstreams === undefined || body.upstreams === null ? undefined : readUpstreams(body.upstreams, allowedUpstreams);
  /** the row's changes, once the caller may make them (a new keypair is generated only then) */
  const patchOf = (name: string): Partial<Omit<CacheRow, "id">> => {
    const patch: Partial<Omit<CacheRow, "id">> = {};
    if (keypairCfg !== undefined && keypairCfg !== null) patch.keypair = keypairFromConfig(keypairCfg, name).toString();
    if (isPublic !== undefined && isPublic !== null) patch.is_public = isPublic;
    if (storeDir !== undefined && storeDir !== null) patch.store_dir = storeDir;
    if (priority !== undefined && priority !== null) patch.priority = priority;
    if (upstream !== undefined && upstream !== null) patch.upstream_cache_key_names = JSON.stringify(upstream);
    if (retention !== undefined && retention !== null) {
      if (retention === "Global") patch.retention_period = null;
      else {
        if (retention.Period > 2 ** 31 - 1) throw requestError("Invalid retention period");
        patch.retention_period = retention.Period;
      }
    }
    if (maxSize !== undefined) patch.max_size = maxSize as number | null;
    return patch;
  };
  return { patchOf, upstreams, needsRetention: (retention !== undefined && retention !== null) || maxSize !== undefined };
}

/** DELETE: the cache goes (soft-deleted when `soft-delete-caches` is on). */
async function destroyCache(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { db, config } = this.deps;
  const name = cacheNameParam(request.params);
  const row = await getCacheByName(db, name);
  const { cache } = authorizeCache(request.attic.claims, name, row, ["destroyCache"]);
  const deleted = config.softDeleteCaches ? await softDeleteCache(db, cache.id) : await hardDeleteCache(db, cache.id);
  if (!deleted) throw noSuchCache();
  return reply.code(200).send();
}

const KEYPAIR_SHAPE = 'keypair: expected "Generate" or {"Keypair": string}';

function isRetention(v: unknown): v is RetentionPeriodConfig {
  if (v === "Global") return true;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const p = (v as { Period?: unknown }).Period;
  return Object.keys(v).length === 1 && typeof p === "number" && Number.isSafeInteger(p) && p >= 0 && p < 2 ** 32;
}

/** `upstreams`: [{ url, keys }]; each URL must pass the allowlist (nothing is fetched to check). */
function readUpstreams(v: unknown, allowed: readonly string[]): ReturnType<typeof checkUpstreams> {
  const shape = 'upstreams: expected [{"url": string, "keys": [string]}]';
  if (!Array.isArray(v)) throw shapeError(shape);
  const list = v.map((u: unknown) => {
    if (typeof u !== "object" || u === null || Array.isArray(u)) throw shapeError(shape);
    const { url, keys } = u as { url?: unknown; keys?: unknown };
    if (typeof url !== "string" || !isStringArray(keys)) throw shapeError(shape);
    return { url, keys };
  });
  return checkUpstreams(list, allowed);
}
