// POST /_api/v1/delete-paths (ours): remove store paths from one cache, with the `d` (delete)
// permission that upstream's tokens already carry but no upstream route uses. Only the cache's
// objects go; the NAR and chunks are freed by GC once no object of any cache uses them.
import type { FastifyInstance } from "fastify";
import type { DeletePathsResponse } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { deleteObjectsByHash } from "../../db/queries/objects.ts";
import { authorizeCache } from "../auth.ts";
import { cacheAndHashes, requireJsonContentType } from "../json-body.ts";

export async function deletePathsRoutes(app: FastifyInstance): Promise<void> {
  const { db } = app.deps;
  app.post("/_api/v1/delete-paths", { preValidation: requireJsonContentType }, async (request, reply) => {
    const { cacheName, hashes } = cacheAndHashes(request.body);

    const row = await getCacheByName(db, cacheName);
    const { cache } = authorizeCache(request.attic.claims, cacheName, row, ["delete"]);
    const deleted = await deleteObjectsByHash(db, cache.id, hashes);
    request.log.info({ cache: cacheName, sub: request.attic.claims?.sub, deleted: deleted.length }, "paths deleted");
    const res: DeletePathsResponse = { deleted_paths: deleted };
    return reply.type("application/json").send(res);
  });
}
