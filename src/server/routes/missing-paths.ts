// POST /_api/v1/get-missing-paths: which of these store-path hashes the cache lacks. Needs push
// (as upstream): probing a cache's contents is a pusher's business.
import type { FastifyInstance } from "fastify";
import type { GetMissingPathsResponse } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { getMissingPaths } from "../../db/queries/objects.ts";
import { authorizeCache } from "../auth.ts";
import { cacheAndHashes, requireJsonContentType } from "../json-body.ts";

export async function missingPathsRoutes(app: FastifyInstance): Promise<void> {
  const { db } = app.deps;
  app.post("/_api/v1/get-missing-paths", { preValidation: requireJsonContentType }, async (request, reply) => {
    const { cacheName, hashes } = cacheAndHashes(request.body);

    const row = await getCacheByName(db, cacheName);
    authorizeCache(request.attic.claims, cacheName, row, ["push"]);
    const missing = await getMissingPaths(db, cacheName, [...new Set(hashes)]);
    const res: GetMissingPathsResponse = { missing_paths: missing };
    return reply.type("application/json").send(res);
  });
}
