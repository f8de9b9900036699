// Nix's own binary-cache protocol, the writing half (ours, issue 17): what `nix copy --to
// http://HOST/CACHE` and `nix store copy-log --to` PUT, with the netrc token as HTTP Basic
// password and the same push permission as the API. Registered in its own context so its
// pass-through body parser does not apply to the JSON routes. The reading half of the new files
// (logs, realisations) is here too; `.ls` is answered beside narinfo (binary-cache.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { compressBuffer, decompressBuffer } from "../../compression/index.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { getBuildLog, getRealisation, putBuildLog, putRealisation } from "../../db/queries/nix-files.ts";
import type { CacheRow } from "../../db/schema.ts";
import { authorizeCache, type PermissionFlag } from "../auth.ts";
import { HEADER_CACHE_VISIBILITY } from "../../api/v1.ts";
import { noSuchObject, notFound, requestError } from "../errors.ts";
import { checkRealisation, drvParam, readSmallBody, realisationParam } from "../nix-protocol/files.ts";
import type { NixPush } from "../nix-protocol/push.ts";
import { cacheNameParam, storePathHashParam } from "../params.ts";

/** listings and realisations are small JSON documents */
const SMALL_JSON_LIMIT = 16 * 1024 * 1024;

export async function nixPushRoutes(app: FastifyInstance, opts: { push: NixPush }): Promise<void> {
  const routes = new NixPushRoutes(app, opts.push);
  app.register(async (scope) => {
    // bodies are read by the handlers themselves (a NAR streams to staging; the rest has a size limit)
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    const unlimited = { bodyLimit: Number.MAX_SAFE_INTEGER };
    scope.put("/:cache/nar/:file", unlimited, (request, reply) => routes.putNar(request, reply));
    scope.put("/:cache/:file", unlimited, (request, reply) => routes.putFile(request, reply));
    scope.put("/:cache/log/:drv", unlimited, (request, reply) => routes.putLog(request, reply));
    scope.put("/:cache/realisations/:file", unlimited, (request, reply) => routes.putRealisation(request, reply));
  });
  app.get("/:cache/log/:drv", (request, reply) => routes.getLog(request, reply));
  app.get("/:cache/realisations/:file", (request, reply) => routes.getRealisation(request, reply));
}

/** One named handler per route. */
class NixPushRoutes {
  private readonly app: FastifyInstance;
  private readonly push: NixPush;

  constructor(app: FastifyInstance, push: NixPush) {
    this.app = app;
    this.push = push;
  }

  /** PUT nar/<file>: the NAR file, staged until its narinfo comes. */
  async putNar(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const cache = await this.cacheFor(request, "push");
    const length = request.headers["content-length"];
    await this.push.stageNar(cache, (request.params as { file: string }).file, request.raw, length === undefined ? null : Number(length));
    return reply.code(200).send();
  }

  /** PUT <hash>.narinfo (commits the path), <hash>.ls (checked, not kept), nix-cache-info (accepted, ours is derived). */
  async putFile(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const file = (request.params as { file: string }).file;
    if (file === "nix-cache-info") {
      // Nix writes one when it cannot read it (a push-only token): ours is derived from the cache
      await this.cacheFor(request, "push");
      return reply.code(200).send();
    }
    const kind = file.endsWith(".narinfo") ? "narinfo" : file.endsWith(".ls") ? "ls" : null;
    if (!kind) throw notFound();
    const hash = storePathHashParam(file, kind);
    const cache = await this.cacheFor(request, "push");
    if (kind === "narinfo") {
      const text = (await readSmallBody(request.raw, this.app.deps.config.maxNarInfoSize, "narinfo")).toString("utf8");
      await this.push.commitNarInfo(cache, hash, text, request.attic.claims?.sub ?? null);
    } else {
      // the listing is computed from the NAR when it is stored; a pushed one is checked and not kept
      const text = (await readSmallBody(request.raw, SMALL_JSON_LIMIT, "listing")).toString("utf8");
      if (!isJsonObject(text)) throw requestError("A listing must be a JSON object");
    }
    return reply.code(200).send();
  }

  /** PUT log/<drv>: a build log, stored compressed. */
  async putLog(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { db, config } = this.app.deps;
    const drv = drvParam((request.params as { drv: string }).drv);
    const cache = await this.cacheFor(request, "push");
    const log = await readSmallBody(request.raw, config.nixProtocol.maxLogSize, "build log");
    await putBuildLog(db, { cacheId: cache.id, drv, size: log.length, data: await compressBuffer("zstd", 3, log) });
    return reply.code(200).send();
  }

  /** PUT realisations/<id>.doi */
  async putRealisation(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const id = realisationParam((request.params as { file: string }).file);
    const cache = await this.cacheFor(request, "push");
    const text = (await readSmallBody(request.raw, SMALL_JSON_LIMIT, "realisation")).toString("utf8");
    checkRealisation(id, text);
    await putRealisation(this.app.deps.db, { cacheId: cache.id, outputId: id, content: text });
    return reply.code(200).send();
  }

  /** GET log/<drv> */
  async getLog(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const drv = drvParam((request.params as { drv: string }).drv);
    const cache = await this.cacheFor(request, "pull");
    const data = await getBuildLog(this.app.deps.db, cache.id, drv);
    if (!data) throw noSuchObject();
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("text/plain; charset=utf-8").send(await decompressBuffer("zstd", data));
  }

  /** GET realisations/<id>.doi */
  async getRealisation(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const id = realisationParam((request.params as { file: string }).file);
    const cache = await this.cacheFor(request, "pull");
    const content = await getRealisation(this.app.deps.db, cache.id, id);
    if (content === null) throw noSuchObject();
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("application/json").send(content);
  }

  private async cacheFor(request: FastifyRequest, flag: PermissionFlag): Promise<CacheRow> {
    const name = cacheNameParam(request.params);
    const row = await getCacheByName(this.app.deps.db, name);
    return authorizeCache(request.attic.claims, name, row, [flag]).cache;
  }
}

function isJsonObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}
