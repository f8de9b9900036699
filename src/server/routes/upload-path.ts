// PUT /_api/v1/upload-path (and, sharing its pipeline, the upload sessions): the body is the raw NAR (header mode) or a JSON preamble followed by
// the NAR; it is streamed, never buffered. Registered in its own context so its catch-all body
// parser (pass the stream through untouched) does not apply to the JSON routes.
import type { FastifyInstance } from "fastify";
import { getCacheByName } from "../../db/queries/caches.ts";
import { authorizeCache } from "../auth.ts";
import { BodyReader } from "../upload/body.ts";
import { readUploadInfo } from "../upload/info.ts";
import type { Uploader } from "../upload/pipeline.ts";
import { uploadSessionRoutes } from "./upload-sessions.ts";

export async function uploadPathRoutes(app: FastifyInstance, opts: { uploader: Uploader }): Promise<void> {
  const { db, config } = app.deps;
  const { uploader } = opts;
  await uploadSessionRoutes(app, uploader);

  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    scope.put("/_api/v1/upload-path", { bodyLimit: Number.MAX_SAFE_INTEGER }, async (request, reply) => {
      const body = new BodyReader(request.raw);
      const info = await readUploadInfo(request.headers, body, config.maxNarInfoSize);
      const row = await getCacheByName(db, info.cache);
      const { cache } = authorizeCache(request.attic.claims, info.cache, row, ["push"]);
      const result = await uploader.upload(info, cache, body, request.attic.claims?.sub ?? null);
      return reply.type("application/json").send(result);
    });
  });
}
