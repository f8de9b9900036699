// The Nix binary cache protocol: /{cache}/nix-cache-info, /{cache}/{hash}.narinfo,
// /{cache}/nar/{hash}.nar. Permission is checked before anything about the cache or the object
// is revealed (decision 1).
import type { FastifyInstance, FastifyRequest } from "fastify";
import { HEADER_CACHE_VISIBILITY } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { bumpLastAccessed, findCacheAndObject, findServedChunks, narChunkSummary, type CacheObjectLookup } from "../../db/queries/objects.ts";
import type { CacheRow } from "../../db/schema.ts";
import { renderNixCacheInfo } from "../../nix/cache-info.ts";
import { authorizeCache, isTrue } from "../auth.ts";
import { incompleteNar, internalError, noSuchObject } from "../errors.ts";
import { cachedNarInfo } from "../narinfo.ts";
import { ChunkFileLostError, narResponseStream, type ChunkPager } from "../download/nar-stream.ts";
import { missingChunkFiles } from "../download/preflight.ts";
import { markChunksLost } from "../../db/queries/repair.ts";
import { recordDownload } from "../../db/queries/stats.ts";
import { presignedRedirectGuard } from "../download/redirect-policy.ts";
import { cacheNameParam, storePathHashParam } from "../params.ts";

export async function binaryCacheRoutes(app: FastifyInstance): Promise<void> {
  const { db, storage, config } = app.deps;

  async function pullableCache(request: FastifyRequest): Promise<CacheRow> {
    const name = cacheNameParam(request.params);
    const row = await getCacheByName(db, name);
    const { cache } = authorizeCache(request.attic.claims, name, row, ["pull"]);
    return cache;
  }

  /** The cache (permission checked first) and the object, in one query. */
  async function pullableObject(request: FastifyRequest, hash: string): Promise<CacheObjectLookup> {
    const name = cacheNameParam(request.params);
    const found = await findCacheAndObject(db, name, hash);
    authorizeCache(request.attic.claims, name, found?.cache ?? null, ["pull"]);
    return found!;
  }

  async function recordLostChunks(chunkIds: number[], request: FastifyRequest): Promise<void> {
    const marked = await markChunksLost(db, chunkIds);
    app.metrics.inc("attic_lost_chunks_total", marked);
    request.log.warn({ chunkIds }, "chunk files missing from storage: marked lost; their paths are reported missing until pushed again");
  }

  app.get("/:cache/nix-cache-info", async (request, reply) => {
    const cache = await pullableCache(request);
    if (isTrue(cache.is_public)) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply
      .type("text/x-nix-cache-info")
      .send(renderNixCacheInfo({ wantMassQuery: true, storeDir: cache.store_dir, priority: cache.priority }));
  });

  app.get("/:cache/:file", async (request, reply) => {
    const hash = storePathHashParam((request.params as { file: string }).file, "narinfo");
    const { cache, match: found } = await pullableObject(request, hash);
    // a path with a lost chunk is missing, so Nix falls back to another substituter or builds it
    if (!found || found.incomplete) {
      app.metrics.inc("attic_narinfo_requests_total", 1, { result: "miss" });
      throw noSuchObject();
    }
    app.metrics.inc("attic_narinfo_requests_total", 1, { result: "hit" });
    if (isTrue(cache.is_public)) reply.header(HEADER_CACHE_VISIBILITY, "public");
    const text = cachedNarInfo(found.object, found.nar, cache.keypair, cache.store_dir);
    return reply.type("text/x-nix-narinfo").send(text);
  });

  app.get("/:cache/nar/:file", async (request, reply) => {
    const hash = storePathHashParam((request.params as { file: string }).file, "nar");
    const { cache, match: found } = await pullableObject(request, hash);
    if (!found) throw noSuchObject();
    const summary = await narChunkSummary(db, found.nar.id);
    if (summary.refs !== found.nar.num_chunks) {
      throw internalError(new Error(`NAR ${found.nar.id} has ${summary.refs} chunk refs, expected ${found.nar.num_chunks}`));
    }
    if (summary.present !== summary.refs) throw incompleteNar();
    const narId = found.nar.id;
    const pager: ChunkPager = (afterSeq, limit) => findServedChunks(db, narId, afterSeq, limit);
    // a chunk file lost behind our back: 503 before any byte, and the path is reported missing
    const lost = await missingChunkFiles(storage, pager);
    if (lost.length > 0) {
      await recordLostChunks(lost, request);
      throw incompleteNar();
    }
    await Promise.all([bumpLastAccessed(db, found.object.id), recordDownload(db, cache.id, found.nar.nar_size)]);
    if (isTrue(cache.is_public)) reply.header(HEADER_CACHE_VISIBILITY, "public");
    app.metrics.inc("attic_nar_downloads_total");

    const response = await narResponseStream(storage, found.nar, pager, {
      presign: presignedRedirectGuard(config.presignedRedirects, request, isTrue(cache.is_public)),
      method: request.method,
      fileSize: summary.fileSize,
    });
    if (response.kind === "redirect") return reply.redirect(response.url, 307);
    reply.type("application/x-nix-nar");
    if (response.contentLength !== undefined) reply.header("content-length", response.contentLength);
    if (request.method === "HEAD") {
      response.stream.destroy();
      return reply.send();
    }
    response.stream.on("data", (b: Buffer) => app.metrics.inc("attic_nar_download_bytes_total", b.length));
    // mid-stream the response can only be aborted (the client sees a broken transfer); the loss
    // is recorded all the same
    response.stream.on("error", (err) => {
      if (err instanceof ChunkFileLostError) void recordLostChunks([err.chunkId], request).catch((e: unknown) => request.log.error({ err: e }, "could not record a lost chunk"));
    });
    return reply.send(response.stream);
  });
}
