// Pins (ours): GET /_api/v1/pins/{cache} lists them (pull), PUT /_api/v1/pins/{cache}/{name}
// sets or moves one, DELETE removes it (both `cq`: a pin overrides the retention and quota
// policy that `cq` governs; see docs/decisions.md). A pinned path and its closure in the cache
// are skipped by retention and quota GC; `attic delete` and destroying the cache still remove them.
import type { FastifyInstance } from "fastify";
import { isValidCacheName, type ListPinsResponse, type PinInfo } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { getObject } from "../../db/queries/objects.ts";
import { closureInCache, deletePin, listPins, setPin } from "../../db/queries/pins.ts";
import { isValidStorePathHash, STORE_PATH_HASH_LENGTH } from "../../nix/store-path.ts";
import { authorizeCache } from "../auth.ts";
import { noSuchObject, noSuchPin, PlainRejection } from "../errors.ts";
import { asObject, field, isString, requireJsonContentType, shapeError } from "../json-body.ts";
import { cacheNameParam } from "../params.ts";

function pinNameParam(params: unknown): string {
  const name = (params as { name?: unknown }).name;
  if (typeof name !== "string" || !isValidCacheName(name)) {
    throw new PlainRejection(400, `Invalid URL: Cannot parse \`${String(name)}\` as a pin name`);
  }
  return name;
}

/** A store path (`/nix/store/<hash>-name`), its base name, or its hash alone → the hash. */
function storePathHashOf(value: string): string {
  const base = value.slice(value.lastIndexOf("/") + 1);
  const hash = base.slice(0, STORE_PATH_HASH_LENGTH);
  if (!isValidStorePathHash(hash) || (base.length > STORE_PATH_HASH_LENGTH && base[STORE_PATH_HASH_LENGTH] !== "-")) {
    throw shapeError(`store_path: not a store path or store path hash "${value.slice(0, 100)}"`);
  }
  return hash;
}

export async function pinRoutes(app: FastifyInstance): Promise<void> {
  const { db } = app.deps;

  app.get("/_api/v1/pins/:cache", async (request, reply) => {
    const name = cacheNameParam(request.params);
    const { cache } = authorizeCache(request.attic.claims, name, await getCacheByName(db, name), ["pull"]);
    const pins: PinInfo[] = (await listPins(db, cache.id)).map((p) => ({
      name: p.name,
      store_path: p.storePath,
      created_at: p.createdAt.toISOString(),
      created_by: p.createdBy,
      paths: p.paths,
    }));
    const res: ListPinsResponse = { pins };
    return reply.type("application/json").send(res);
  });

  app.put("/_api/v1/pins/:cache/:name", { preValidation: requireJsonContentType }, async (request, reply) => {
    const cacheName = cacheNameParam(request.params);
    const pinName = pinNameParam(request.params);
    const hash = storePathHashOf(field(asObject(request.body), "store_path", isString, "a store path", true));
    const { cache } = authorizeCache(request.attic.claims, cacheName, await getCacheByName(db, cacheName), ["configureCacheRetention"]);
    const closure = await closureInCache(db, cache.id, hash);
    if (!closure) throw noSuchObject();
    const root = await getObject(db, cache.id, hash);
    if (!root) throw noSuchObject();
    await setPin(db, { cacheId: cache.id, name: pinName, storePath: root.store_path, hashes: closure, createdBy: request.attic.claims?.sub ?? null });
    const pin: PinInfo = { name: pinName, store_path: root.store_path, created_at: new Date().toISOString(), created_by: request.attic.claims?.sub ?? null, paths: closure.length };
    return reply.type("application/json").send(pin);
  });

  app.delete("/_api/v1/pins/:cache/:name", async (request, reply) => {
    const cacheName = cacheNameParam(request.params);
    const pinName = pinNameParam(request.params);
    const { cache } = authorizeCache(request.attic.claims, cacheName, await getCacheByName(db, cacheName), ["configureCacheRetention"]);
    if (!(await deletePin(db, cache.id, pinName))) throw noSuchPin();
    return reply.code(200).send();
  });
}
