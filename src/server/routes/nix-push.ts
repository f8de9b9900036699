// Nix's own binary-cache protocol, the writing half (ours, issue 17): what `nix copy --to
// http://HOST/CACHE` and `nix store copy-log --to` PUT, with the netrc token as HTTP Basic
// password and the same push permission as the API. Registered in its own context so its
// pass-through body parser does not apply to the JSON routes. The reading half of the new files
// (logs, realisations) is here too; `.ls` is answered beside narinfo (binary-cache.ts).
import type { FastifyInstance, FastifyRequest } from "fastify";
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
  const { db, config } = app.deps;
  const { push } = opts;

  async function cacheFor(request: FastifyRequest, flag: PermissionFlag): Promise<CacheRow> {
    const name = cacheNameParam(request.params);
    const row = await getCacheByName(db, name);
    return authorizeCache(request.attic.claims, name, row, [flag]).cache;
  }
  const sub = (request: FastifyRequest) => request.attic.claims?.sub ?? null;

  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    const unlimited = { bodyLimit: Number.MAX_SAFE_INTEGER };

    scope.put("/:cache/nar/:file", unlimited, async (request, reply) => {
      const cache = await cacheFor(request, "push");
      const length = request.headers["content-length"];
      await push.stageNar(cache, (request.params as { file: string }).file, request.raw, length === undefined ? null : Number(length));
      return reply.code(200).send();
    });

    scope.put("/:cache/:file", unlimited, async (request, reply) => {
      const file = (request.params as { file: string }).file;
      if (file === "nix-cache-info") {
        // Nix writes one when it cannot read it (a push-only token): ours is derived from the cache
        await cacheFor(request, "push");
        return reply.code(200).send();
      }
      const kind = file.endsWith(".narinfo") ? "narinfo" : file.endsWith(".ls") ? "ls" : null;
      if (!kind) throw notFound();
      const hash = storePathHashParam(file, kind);
      const cache = await cacheFor(request, "push");
      if (kind === "narinfo") {
        const text = (await readSmallBody(request.raw, config.maxNarInfoSize, "narinfo")).toString("utf8");
        await push.commitNarInfo(cache, hash, text, sub(request));
      } else {
        // the listing is computed from the NAR when it is stored; a pushed one is checked and not kept
        const text = (await readSmallBody(request.raw, SMALL_JSON_LIMIT, "listing")).toString("utf8");
        if (!isJsonObject(text)) throw requestError("A listing must be a JSON object");
      }
      return reply.code(200).send();
    });

    scope.put("/:cache/log/:drv", unlimited, async (request, reply) => {
      const drv = drvParam((request.params as { drv: string }).drv);
      const cache = await cacheFor(request, "push");
      const log = await readSmallBody(request.raw, config.nixProtocol.maxLogSize, "build log");
      const size = log.length;
      await putBuildLog(db, { cacheId: cache.id, drv, size, data: await compressBuffer("zstd", 3, log) });
      return reply.code(200).send();
    });

    scope.put("/:cache/realisations/:file", unlimited, async (request, reply) => {
      const id = realisationParam((request.params as { file: string }).file);
      const cache = await cacheFor(request, "push");
      const text = (await readSmallBody(request.raw, SMALL_JSON_LIMIT, "realisation")).toString("utf8");
      checkRealisation(id, text);
      await putRealisation(db, { cacheId: cache.id, outputId: id, content: text });
      return reply.code(200).send();
    });
  });

  app.get("/:cache/log/:drv", async (request, reply) => {
    const drv = drvParam((request.params as { drv: string }).drv);
    const cache = await cacheFor(request, "pull");
    const data = await getBuildLog(db, cache.id, drv);
    if (!data) throw noSuchObject();
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("text/plain; charset=utf-8").send(await decompressBuffer("zstd", data));
  });

  app.get("/:cache/realisations/:file", async (request, reply) => {
    const id = realisationParam((request.params as { file: string }).file);
    const cache = await cacheFor(request, "pull");
    const content = await getRealisation(db, cache.id, id);
    if (content === null) throw noSuchObject();
    if (cache.is_public) reply.header(HEADER_CACHE_VISIBILITY, "public");
    return reply.type("application/json").send(content);
  });
}

function isJsonObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}
