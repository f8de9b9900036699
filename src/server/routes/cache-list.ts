// GET /_api/v1/cache-config (ours; the route and `caches` field of upstream's open PR #367): the
// live caches the caller can see, that is where its token grants any permission or the cache is
// public. Other caches are never named: the answer is the same whether they exist or not.
import type { FastifyInstance } from "fastify";
import type { ListCachesResponse } from "../../api/v1.ts";
import { cacheStats, listCaches } from "../../db/queries/caches.ts";
import { permissionFor } from "../auth.ts";

export async function cacheListRoutes(app: FastifyInstance): Promise<void> {
  const { db } = app.deps;
  app.get("/_api/v1/cache-config", async (request, reply) => {
    const visible = (await listCaches(db)).filter((c) => permissionFor(request.attic.claims, c.name, c).canDiscover());
    const stats = await cacheStats(db, visible.map((c) => c.id));
    const res: ListCachesResponse = {
      caches: visible.map((c) => c.name),
      cache_info: visible.map((c) => ({
        name: c.name,
        is_public: c.is_public,
        size: stats.get(c.id)?.size ?? 0,
        object_count: stats.get(c.id)?.objects ?? 0,
      })),
    };
    return reply.type("application/json").send(res);
  });
}
