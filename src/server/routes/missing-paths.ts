// POST /_api/v1/get-missing-paths: which of these store-path hashes the cache lacks. Needs push
// (as upstream): probing a cache's contents is a pusher's business.
import type { FastifyInstance } from "fastify";
import { CACHE_NAME_RE, type GetMissingPathsResponse } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { getMissingPaths } from "../../db/queries/objects.ts";
import { isValidStorePathHash } from "../../nix/store-path.ts";
import { authorizeCache } from "../auth.ts";
import { asObject, field, isString, isStringArray, requireJsonContentType, shapeError } from "../json-body.ts";

export async function missingPathsRoutes(app: FastifyInstance): Promise<void> {
  const { db } = app.deps;
  app.post("/_api/v1/get-missing-paths", { preValidation: requireJsonContentType }, async (request, reply) => {
    const body = asObject(request.body);
    const cacheName = field(body, "cache", isString, "a cache name", true);
    if (!CACHE_NAME_RE.test(cacheName)) throw shapeError(`cache: invalid cache name "${cacheName.slice(0, 64)}"`);
    const hashes = field(body, "store_path_hashes", isStringArray, "a sequence of store path hashes", true);
    for (const h of hashes) if (!isValidStorePathHash(h)) throw shapeError(`store_path_hashes: invalid store path hash "${h.slice(0, 64)}"`);

    const row = await getCacheByName(db, cacheName);
    authorizeCache(request.attic.claims, cacheName, row, ["push"]);
    const missing = await getMissingPaths(db, cacheName, [...new Set(hashes)]);
    const res: GetMissingPathsResponse = { missing_paths: missing };
    return reply.type("application/json").send(res);
  });
}
