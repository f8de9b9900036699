// buildApp(deps) returns the HTTP application; the atticd modes call it. Route logic lives in
// routes/<group>.ts, the request pipeline of upstream (host restriction, request state, auth) in
// request-state.ts, the error path in errors.ts. The app owns its database and storage: closing
// the app closes them.
import Fastify, { LogController, type FastifyInstance } from "fastify";
import type { Db } from "../db/connect.ts";
import type { StorageDriver } from "../storage/types.ts";
import type { Config } from "./config/types.ts";
import { clientErrorHandler } from "./client-errors.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { errorHandler, frameworkErrors, notFoundHandler } from "./errors.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { addRequestState } from "./request-state.ts";
import { binaryCacheRoutes } from "./routes/binary-cache.ts";
import { cacheConfigRoutes } from "./routes/cache-config.ts";
import { healthRoutes } from "./routes/health.ts";
import { missingPathsRoutes } from "./routes/missing-paths.ts";
import { uploadPathRoutes } from "./routes/upload-path.ts";
import { cacheListRoutes } from "./routes/cache-list.ts";
import { deletePathsRoutes } from "./routes/delete-paths.ts";
import { pinRoutes } from "./routes/pins.ts";
import { oidcRoutes } from "./routes/oidc.ts";
import { nixPushRoutes } from "./routes/nix-push.ts";
import { NixPush } from "./nix-protocol/push.ts";
import { Uploader } from "./upload/pipeline.ts";
import { PullThrough } from "./pull-through/service.ts";

export interface AppDeps {
  config: Config;
  /** closed when the app closes */
  db: Db;
  /** closed when the app closes */
  storage: StorageDriver;
  /** fastify logger options; false in tests */
  logger?: boolean | object;
}

declare module "fastify" {
  interface FastifyInstance {
    deps: AppDeps;
    metrics: Metrics;
  }
}

/** JSON bodies are limited to 2 MiB as upstream (axum's default). */
export const JSON_BODY_LIMIT = 2 * 1024 * 1024;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: JSON_BODY_LIMIT,
    exposeHeadRoutes: true,
    return503OnClosing: true,
    // at close: idle keep-alive sockets are closed, in-flight requests finish (see closeGracefully)
    forceCloseConnections: "idle",
    // one access line per request at debug (below): at info, two lines per narinfo request cost
    // more than answering it, and Nix asks for hundreds of narinfo per closure
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 500 },
    clientErrorHandler,
    frameworkErrors,
  });
  app.decorate("deps", deps);
  app.decorate("metrics", createMetrics());
  // onClose hooks run last-registered first: this one, registered first, runs after any a mode adds
  app.addHook("onClose", async () => {
    await deps.storage.close?.();
    await deps.db.close();
  });
  closeGracefully(app);
  addRequestState(app, deps.config, deps.db);
  // a callback hook, not an async one: no promise and no extra turn per request on the hot path
  app.addHook("onResponse", (request, reply, done) => {
    const ms = reply.elapsedTime;
    // the route pattern (`/:cache/:file`), never the URL: a bounded set of label values
    app.metrics.observeRequest(request.routeOptions.url ?? "unmatched", request.method, reply.statusCode, ms / 1000);
    const level = request.log.level;
    if (level === "debug" || level === "trace") request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms }, "request");
    done();
  });
  app.setErrorHandler(errorHandler(deps.config.database.url));
  app.setNotFoundHandler(notFoundHandler);

  await app.register(healthRoutes);
  await app.register(dashboardRoutes);
  await app.register(cacheConfigRoutes);
  await app.register(cacheListRoutes);
  await app.register(deletePathsRoutes);
  await app.register(pinRoutes);
  await app.register(oidcRoutes);
  await app.register(missingPathsRoutes);
  // one upload pipeline for `attic push` and `nix copy`: in-process dedup of a NAR spans both
  const uploader = new Uploader(deps.db, deps.storage, deps.config, app.metrics);
  app.addHook("onClose", async () => uploader.close());
  await app.register(uploadPathRoutes, { uploader });
  await app.register(nixPushRoutes, { push: new NixPush(uploader, deps.config, deps.db, deps.storage) });
  await app.register(binaryCacheRoutes, { pullThrough: new PullThrough(deps.db, deps.config, app.metrics, uploader) });
  return app;
}

/**
 * Graceful shutdown: a socket whose response finishes after close() began would otherwise
 * linger for the whole keep-alive timeout; sweep idle sockets until the server is closed.
 */
function closeGracefully(app: FastifyInstance): void {
  let sweeper: NodeJS.Timeout | undefined;
  app.addHook("preClose", async () => {
    sweeper = setInterval(() => app.server.closeIdleConnections(), 50);
    sweeper.unref();
  });
  app.addHook("onClose", async () => clearInterval(sweeper));
}
