// The Nix binary cache protocol: /{cache}/nix-cache-info, /{cache}/{hash}.narinfo,
// /{cache}/nar/{hash}.nar, and the NAR files `nix copy` uploaded (nar/{filehash}.nar.{ext}). Permission is checked before anything about the cache or the object
// is revealed (decision 1).
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { decompressBuffer } from "../../compression/index.ts";
import { findNixFile, getNarListing } from "../../db/queries/nix-files.ts";
import { HEADER_CACHE_VISIBILITY } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { bumpLastAccessed, findCacheAndObject, findRepeatedChunks, narChunkSummary, narStorageSummary, servedChunkPager, type CacheObjectLookup } from "../../db/queries/objects.ts";
import type { CacheRow } from "../../db/schema.ts";
import type { Readable } from "node:stream";
import { renderNixCacheInfo } from "../../nix/cache-info.ts";
import { authorizeCache } from "../auth.ts";
import { incompleteNar, internalError, noSuchObject, rangeNotSatisfiable, replyNoSuchObject } from "../errors.ts";
import { cachedNarInfo } from "../narinfo.ts";
import { ChunkFileLostError, narResponseStream, type ChunkPager } from "../download/nar-stream.ts";
import { missingChunkFiles } from "../download/preflight.ts";
import { markChunksLost } from "../../db/queries/repair.ts";
import { chunksInPack } from "../../db/queries/packs.ts";
import { recordDownload } from "../../db/queries/stats.ts";
import { presignedRedirectGuard } from "../download/redirect-policy.ts";
import { cacheNameParam, storePathHashParam } from "../params.ts";
import { STAGED_NAR_RE } from "../../storage/staging.ts";
import { encodedNar, nixFileForm, nixFileFormat, type NixFileForm } from "../nix-protocol/served-files.ts";
import { CommittedLookups } from "../committed-lookups.ts";
import type { PullThrough } from "../pull-through/service.ts";

const HIT = { result: "hit" };
const MISS = { result: "miss" };

function lookupWeight(v: NarInfoLookup): number {
  const m = v.found?.match;
  if (!m) return 256;
  // strings count twice (UTF-16), the rendered narinfo included
  return 2 * (v.found!.cache.keypair.length + m.object.store_path.length + m.object.references.length + m.object.sigs.length) * 2 + 1024;
}

/** Rows kept while nothing is committed (committed-lookups.ts): a few thousand narinfo lookups. */
const LOOKUP_CACHE_BYTES = 8 * 2 ** 20;

/** A narinfo lookup as kept between requests, with its text rendered on first use. */
interface NarInfoLookup {
  found: CacheObjectLookup | null;
  narinfo?: string;
}

type Found = NonNullable<CacheObjectLookup["match"]>;
type ServedCache = CacheObjectLookup["cache"];

export async function binaryCacheRoutes(app: FastifyInstance, opts: { pullThrough: PullThrough }): Promise<void> {
  const routes = new BinaryCacheRoutes(app, opts.pullThrough);
  app.get("/:cache/nix-cache-info", (request, reply) => routes.nixCacheInfo(request, reply));
  app.get("/:cache/:file", (request, reply) => routes.narInfoOrListing(request, reply));
  app.get("/:cache/nar/:file", (request, reply) => routes.nar(request, reply));
}

/** One named handler per route, and the steps they share. */
class BinaryCacheRoutes {
  private readonly app: FastifyInstance;
  private readonly pullThrough: PullThrough;
  private readonly caches: CommittedLookups<CacheRow | null>;
  private readonly narinfos: CommittedLookups<NarInfoLookup>;

  constructor(app: FastifyInstance, pullThrough: PullThrough) {
    this.app = app;
    this.pullThrough = pullThrough;
    const { db } = app.deps;
    this.caches = new CommittedLookups<CacheRow | null>(db, LOOKUP_CACHE_BYTES / 8, (key, row) => 2 * key.length + (row ? 2 * row.keypair.length + 512 : 64));
    this.narinfos = new CommittedLookups<NarInfoLookup>(db, LOOKUP_CACHE_BYTES, (key, v) => 2 * key.length + lookupWeight(v));
  }

  /** GET /<cache>/nix-cache-info */
  async nixCacheInfo(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const cache = await this.pullableCache(request);
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply
      .type("text/x-nix-cache-info")
      .send(renderNixCacheInfo({ wantMassQuery: true, storeDir: cache.store_dir, priority: cache.priority }));
  }

  /** GET /<cache>/<hash>.narinfo, and /<cache>/<hash>.ls */
  async narInfoOrListing(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const file = (request.params as { file: string }).file;
    if (file.endsWith(".ls")) return this.listing(request, reply, storePathHashParam(file, "ls"));
    const hash = storePathHashParam(file, "narinfo");
    const { cache, lookup } = await this.pullableNarInfo(request, hash);
    const match = lookup.found?.match;
    // a path with a lost chunk is missing, so Nix falls back to another substituter or builds it
    if (!match || match.incomplete) return this.narInfoMiss(request, reply, cache, hash, match !== null && match !== undefined, lookup.found!.hasUpstreams);
    return this.narInfoHit(reply, cache, lookup, match);
  }

  /** The narinfo of a path the cache serves: its text, rendered and signed once per version of its rows. */
  private narInfoHit(reply: FastifyReply, cache: ServedCache, lookup: NarInfoLookup, match: Found): FastifyReply {
    this.app.metrics.inc("attic_narinfo_requests_total", 1, HIT);
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    lookup.narinfo ??= cachedNarInfo(match.object, match.nar, cache.keypair, cache.store_dir);
    return reply.type("text/x-nix-narinfo").send(lookup.narinfo);
  }

  /** Not here (or incomplete): the cache's upstreams, if it has any, may have a path it never had (pull-through, issue 27). */
  private async narInfoMiss(request: FastifyRequest, reply: FastifyReply, cache: ServedCache, hash: string, incomplete: boolean, hasUpstreams: boolean): Promise<FastifyReply> {
    this.app.metrics.inc("attic_narinfo_requests_total", 1, MISS);
    const pulled = incomplete || !hasUpstreams ? null : await this.pullThrough.narinfo(cache, hash, request.log);
    if (pulled === null) return replyNoSuchObject(request, reply);
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("text/x-nix-narinfo").send(pulled);
  }

  /** GET /<cache>/<hash>.ls: the listing computed when the NAR was stored (NARs stored before have none) */
  private async listing(request: FastifyRequest, reply: FastifyReply, hash: string): Promise<FastifyReply> {
    const { cache, match: found } = await this.pullableObject(request, hash);
    if (!found || found.incomplete) throw noSuchObject();
    const data = await getNarListing(this.app.deps.db, found.nar.id);
    if (!data) throw noSuchObject();
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("application/json").send(await decompressBuffer("zstd", data));
  }

  /** GET and HEAD /<cache>/nar/<file>: find what the URL names, check it can be served whole, send it. */
  async nar(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const file = (request.params as { file: string }).file;
    const { lookup, form } = await this.narTarget(request, file);
    const { cache } = lookup;
    let found = lookup.match;
    if (!found && !STAGED_NAR_RE.test(file)) {
      const pulled = await this.pullThroughNar(request, reply, cache, storePathHashParam(file, "nar"));
      if (pulled.kind === "stream") return this.sendPulled(reply, cache, pulled.stream);
      found = pulled.found;
    }
    if (!found) throw noSuchObject();
    const { pager, fileSize } = await this.wholeNar(found);
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return this.sendNar(request, reply, cache, found, pager, fileSize, form);
  }

  /**
   * The object a NAR URL names, and how its bytes are made: ours (`nar/<store path hash>.nar`), or
   * a file `nix copy` uploaded (`nar/<file hash>.nar.<ext>`, served-files.ts).
   */
  private async narTarget(request: FastifyRequest, file: string): Promise<{ lookup: CacheObjectLookup; form: NixFileForm | null }> {
    if (!STAGED_NAR_RE.test(file)) return { lookup: await this.pullableObject(request, storePathHashParam(file, "nar")), form: null };
    const format = nixFileFormat(file);
    const uploaded = format ? await findNixFile(this.app.deps.db, cacheNameParam(request.params), file) : null;
    // permission first, whether or not the file is known (an unknown one is a 404, as Nix expects)
    const lookup = await this.pullableObject(request, uploaded?.storePathHash ?? "");
    if (!uploaded || !lookup.match || lookup.match.nar.id !== uploaded.narId) return { lookup: { ...lookup, match: null }, form: null };
    return { lookup, form: nixFileForm(format!, lookup.match.nar) };
  }

  /** A NAR the cache does not hold: fetched from the upstream that gave its narinfo (pull-through, issue 27), or stored meanwhile. */
  private async pullThroughNar(request: FastifyRequest, reply: FastifyReply, cache: ServedCache, hash: string): Promise<{ kind: "stream"; stream: Readable } | { kind: "found"; found: Found | null }> {
    const pulled = request.method === "GET" ? await this.pullThrough.nar(cache, hash, request.log, abortSignalOf(reply)) : { kind: "absent" as const };
    if (pulled.kind === "stream") return pulled;
    return { kind: "found", found: pulled.kind === "stored" ? (await this.pullableObject(request, hash)).match : null };
  }

  private sendPulled(reply: FastifyReply, cache: ServedCache, stream: Readable): FastifyReply {
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    this.app.metrics.inc("attic_nar_downloads_total");
    return reply.type("application/x-nix-nar").send(stream);
  }

  /** The NAR's chunks, known to the database as all present (else a 503 `IncompleteNar`). */
  private async wholeNar(found: Found): Promise<{ pager: ChunkPager; fileSize: number | null }> {
    const { db } = this.app.deps;
    const summary = await narChunkSummary(db, found.nar.id);
    if (summary.refs !== found.nar.num_chunks) {
      throw internalError(new Error(`NAR ${found.nar.id} has ${summary.refs} chunk refs, expected ${found.nar.num_chunks}`));
    }
    if (summary.present !== summary.refs) throw incompleteNar();
    const narId = found.nar.id;
    return { pager: servedChunkPager(db, narId), fileSize: summary.fileSize };
  }

  /** Before a download's first byte: every chunk file and pack is there (else 503, recorded), and the download is counted. */
  private async beforeDownload(request: FastifyRequest, cache: ServedCache, found: Found, pager: ChunkPager, covered: { packId: number; end: number } | null): Promise<void> {
    const lost = await missingChunkFiles(this.app.deps.storage, pager, () => narStorageSummary(this.app.deps.db, found.nar.id), covered);
    if (lost.chunks.length > 0 || lost.packs.length > 0) {
      await this.recordLostChunks(lost.chunks, request.log, lost.packs);
      throw incompleteNar();
    }
    await Promise.all([bumpLastAccessed(this.app.deps.db, found.object.id), recordDownload(this.app.deps.db, cache.id, found.nar.nar_size)]);
    this.app.metrics.inc("attic_nar_downloads_total");
  }

  /** The NAR's bytes (or a redirect, a range, a HEAD's headers), as stored or in the form a `nix copy` URL names. */
  private async sendNar(request: FastifyRequest, reply: FastifyReply, cache: ServedCache, found: Found, pager: ChunkPager, fileSize: number | null, form: NixFileForm | null): Promise<FastifyReply> {
    const { storage, config } = this.app.deps;
    const encode = form?.encode ?? null;
    const response = await narResponseStream(storage, found.nar, pager, {
      presign: encode ? null : presignedRedirectGuard(config.presignedRedirects, request, cache.is_public),
      method: request.method,
      fileSize,
      decompress: form?.decompress,
      repeats: () => findRepeatedChunks(this.app.deps.db, found.nar.id),
      // If-Range names a version we cannot compare (no ETag): the whole body, as RFC 9110 says;
      // a re-encoded body is made anew each time, so it has no ranges
      range: request.headers["if-range"] === undefined && !encode ? request.headers.range : undefined,
    });
    // HEAD reads and changes nothing: no check of every chunk file, no download, no access. A GET
    // starts its body's first read before the checks (a pack range it opens needs no check of its own)
    if (request.method !== "HEAD") {
      try {
        const covered = response.kind === "stream" && response.ready ? await response.ready() : null;
        await this.beforeDownload(request, cache, found, pager, covered);
      } catch (err) {
        if (response.kind === "stream") response.stream.destroy();
        if (!(err instanceof ChunkFileLostError)) throw err;
        await this.recordLostChunks([err.chunkId], request.log, err.packId === null ? [] : [err.packId]);
        throw incompleteNar();
      }
    }
    if (response.kind === "redirect") return reply.redirect(response.url, 307);
    if (response.kind === "unsatisfiable") {
      // answered here: the error handler does not keep headers set before a throw
      const err = rangeNotSatisfiable(`the NAR is ${response.total} bytes`);
      return reply.code(err.status).header("content-range", `bytes */${response.total}`).type("application/json").send(err.toJSON());
    }
    reply.type("application/x-nix-nar");
    if (response.contentLength !== undefined && !encode) {
      reply.header("content-length", response.contentLength);
      reply.header("accept-ranges", "bytes");
    }
    if (response.range) {
      reply.code(206).header("content-range", `bytes ${response.range.start}-${response.range.end}/${response.range.total}`);
    }
    // HEAD: the empty stream of narResponseStream, so that a length that is not known (a body
    // re-encoded as it is sent) is not announced as 0
    if (request.method === "HEAD") return reply.send(response.stream);
    const body = encode ? await encodedNar(response.stream, encode) : response.stream;
    body.on("data", (b: Buffer) => this.app.metrics.inc("attic_nar_download_bytes_total", b.length));
    // mid-stream the response can only be aborted (the client sees a broken transfer); the loss
    // is recorded all the same
    response.stream.on("error", (err) => {
      if (err instanceof ChunkFileLostError) {
        void this.recordLostChunks([err.chunkId], request.log, err.packId === null ? [] : [err.packId]).catch((e: unknown) => request.log.error({ err: e }, "could not record a lost chunk"));
      }
    });
    return reply.send(body);
  }

  /** Chunks lost, and packs lost (every valid chunk stored in them: docs/packs.md). */
  private async recordLostChunks(chunkIds: number[], log: FastifyBaseLogger, packIds: number[] = []): Promise<void> {
    const { db } = this.app.deps;
    for (const packId of packIds) chunkIds = [...chunkIds, ...(await chunksInPack(db, packId))];
    if (packIds.length > 0) log.warn({ packIds }, "packs missing or short in storage: every chunk in them is marked lost");
    const marked = await markChunksLost(db, chunkIds);
    this.app.metrics.inc("attic_lost_chunks_total", marked);
    log.warn({ chunkIds }, "chunk files missing from storage: marked lost; their paths are reported missing until pushed again");
  }

  private async pullableCache(request: FastifyRequest): Promise<CacheRow> {
    const name = cacheNameParam(request.params);
    const row = await this.caches.get(name, () => getCacheByName(this.app.deps.db, name));
    const { cache } = authorizeCache(request.attic.claims, name, row, ["pull"]);
    return cache;
  }

  /** The cache (permission checked first) and the object, in one query (or none: see committed-lookups.ts). */
  private async pullableNarInfo(request: FastifyRequest, hash: string): Promise<{ cache: ServedCache; lookup: NarInfoLookup }> {
    const name = cacheNameParam(request.params);
    const lookup = await this.narinfos.get(`${name}/${hash}`, async () => ({ found: await findCacheAndObject(this.app.deps.db, name, hash) }));
    authorizeCache(request.attic.claims, name, lookup.found?.cache ?? null, ["pull"]);
    return { cache: lookup.found!.cache, lookup };
  }

  /** The cache (permission checked first) and the object, read now. */
  private async pullableObject(request: FastifyRequest, hash: string): Promise<CacheObjectLookup> {
    const name = cacheNameParam(request.params);
    const found = await findCacheAndObject(this.app.deps.db, name, hash);
    authorizeCache(request.attic.claims, name, found?.cache ?? null, ["pull"]);
    return found!;
  }
}

/** Aborted when the client goes away (a request waiting for another's fetch stops waiting). */
function abortSignalOf(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => controller.abort());
  return controller.signal;
}
