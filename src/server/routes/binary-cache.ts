// The Nix binary cache protocol: /{cache}/nix-cache-info, /{cache}/{hash}.narinfo,
// /{cache}/nar/{hash}.nar. Permission is checked before anything about the cache or the object
// is revealed (decision 1).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { decompressBuffer } from "../../compression/index.ts";
import { getNarListing } from "../../db/queries/nix-files.ts";
import { HEADER_CACHE_VISIBILITY } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { bumpLastAccessed, findCacheAndObject, findServedChunks, narChunkSummary, type CacheObjectLookup } from "../../db/queries/objects.ts";
import type { CacheRow } from "../../db/schema.ts";
import { renderNixCacheInfo } from "../../nix/cache-info.ts";
import { authorizeCache, isTrue } from "../auth.ts";
import { incompleteNar, internalError, noSuchObject, rangeNotSatisfiable } from "../errors.ts";
import { cachedNarInfo } from "../narinfo.ts";
import { ChunkFileLostError, narResponseStream, type ChunkPager } from "../download/nar-stream.ts";
import { missingChunkFiles } from "../download/preflight.ts";
import { markChunksLost } from "../../db/queries/repair.ts";
import { chunksInPack } from "../../db/queries/packs.ts";
import { recordDownload } from "../../db/queries/stats.ts";
import { presignedRedirectGuard } from "../download/redirect-policy.ts";
import { cacheNameParam, storePathHashParam } from "../params.ts";
import { STAGED_NAR_RE } from "../../storage/staging.ts";

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

  /** Chunks lost, and packs lost (every valid chunk stored in them: docs/packs.md). */
  async function recordLostChunks(chunkIds: number[], request: FastifyRequest, packIds: number[] = []): Promise<void> {
    for (const packId of packIds) chunkIds = [...chunkIds, ...(await chunksInPack(db, packId))];
    if (packIds.length > 0) request.log.warn({ packIds }, "packs missing or short in storage: every chunk in them is marked lost");
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
    const file = (request.params as { file: string }).file;
    if (file.endsWith(".ls")) return listing(request, reply, storePathHashParam(file, "ls"));
    const hash = storePathHashParam(file, "narinfo");
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

  /** GET /<cache>/<hash>.ls: the listing computed when the NAR was stored (NARs stored before have none) */
  async function listing(request: FastifyRequest, reply: FastifyReply, hash: string): Promise<FastifyReply> {
    const { cache, match: found } = await pullableObject(request, hash);
    if (!found || found.incomplete) throw noSuchObject();
    const data = await getNarListing(db, found.nar.id);
    if (!data) throw noSuchObject();
    if (isTrue(cache.is_public)) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("application/json").send(await decompressBuffer("zstd", data));
  }

  app.get("/:cache/nar/:file", async (request, reply) => {
    const file = (request.params as { file: string }).file;
    if (STAGED_NAR_RE.test(file)) {
      // `nix copy` asks whether a NAR is there by its file hash before it sends it: never, since
      // NARs are served by store path hash (only 404 and 403 mean "absent" to Nix)
      await pullableCache(request);
      throw noSuchObject();
    }
    const hash = storePathHashParam(file, "nar");
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
    if (lost.chunks.length > 0 || lost.packs.length > 0) {
      await recordLostChunks(lost.chunks, request, lost.packs);
      throw incompleteNar();
    }
    await Promise.all([bumpLastAccessed(db, found.object.id), recordDownload(db, cache.id, found.nar.nar_size)]);
    if (isTrue(cache.is_public)) reply.header(HEADER_CACHE_VISIBILITY, "public");
    app.metrics.inc("attic_nar_downloads_total");

    const response = await narResponseStream(storage, found.nar, pager, {
      presign: presignedRedirectGuard(config.presignedRedirects, request, isTrue(cache.is_public)),
      method: request.method,
      fileSize: summary.fileSize,
      // If-Range names a version we cannot compare (no ETag): the whole body, as RFC 9110 says
      range: request.headers["if-range"] === undefined ? request.headers.range : undefined,
    });
    if (response.kind === "redirect") return reply.redirect(response.url, 307);
    if (response.kind === "unsatisfiable") {
      // answered here: the error handler does not keep headers set before a throw
      const err = rangeNotSatisfiable(`the NAR is ${response.total} bytes`);
      return reply.code(err.status).header("content-range", `bytes */${response.total}`).type("application/json").send(err.toJSON());
    }
    reply.type("application/x-nix-nar");
    if (response.contentLength !== undefined) {
      reply.header("content-length", response.contentLength);
      reply.header("accept-ranges", "bytes");
    }
    if (response.range) {
      reply.code(206).header("content-range", `bytes ${response.range.start}-${response.range.end}/${response.range.total}`);
    }
    if (request.method === "HEAD") {
      response.stream.destroy();
      return reply.send();
    }
    response.stream.on("data", (b: Buffer) => app.metrics.inc("attic_nar_download_bytes_total", b.length));
    // mid-stream the response can only be aborted (the client sees a broken transfer); the loss
    // is recorded all the same
    response.stream.on("error", (err) => {
      if (err instanceof ChunkFileLostError) void recordLostChunks([err.chunkId], request, err.packId === null ? [] : [err.packId]).catch((e: unknown) => request.log.error({ err: e }, "could not record a lost chunk"));
    });
    return reply.send(response.stream);
  });
}
