// buildApp(deps) returns the HTTP application; the atticd modes call it. Route logic lives in
// routes/<group>.ts; this file wires the cross-cutting pipeline of upstream (host restriction,
// request state, auth) and the one error handler.
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Db } from "../db/connect.ts";
import type { StorageDriver } from "../storage/types.ts";
import type { Claims } from "../token/claims.ts";
import { VerifiedTokenCache } from "./verified-tokens.ts";
import type { Config } from "./config/types.ts";
import { PlainRejection, ServerError, requestError, notFound, storageFull, storageRefusalHint, unavailableReason } from "./errors.ts";
import { redact } from "../db/url.ts";
import { tokenFromRequest } from "./auth.ts";
import { clientErrorHandler } from "./client-errors.ts";
import { dashboardRoutes } from "./dashboard/routes.ts";
import { binaryCacheRoutes } from "./routes/binary-cache.ts";
import { cacheConfigRoutes } from "./routes/cache-config.ts";
import { missingPathsRoutes } from "./routes/missing-paths.ts";
import { uploadPathRoutes } from "./routes/upload-path.ts";
import { healthRoutes } from "./routes/health.ts";
import type { Metrics } from "./metrics.ts";
import { createMetrics } from "./metrics.ts";

export interface AppDeps {
  config: Config;
  db: Db;
  storage: StorageDriver;
  /** fastify logger options; false in tests */
  logger?: boolean | object;
}

export interface RequestState {
  claims: Claims | null;
  host: string;
  /** the client claims https through X-Forwarded-Proto (untrusted, as upstream) */
  https: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    attic: RequestState;
  }
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
    // at close: idle keep-alive sockets are closed, in-flight requests finish (see preClose below)
    forceCloseConnections: "idle",
    // one access line per request at debug (below): at info, two lines per narinfo request cost
    // more than answering it, and Nix asks for hundreds of narinfo per closure
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 500 },
    clientErrorHandler,
    // a path fastify cannot decode (`%zz`, invalid UTF-8) or whose segment is over
    // maxParamLength: upstream's Path extractor rejects such URLs in plain text
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).type("text/plain; charset=utf-8").send(`Invalid URL: ${error.message}`);
    },
  });
  app.decorate("deps", deps);
  app.decorate("metrics", createMetrics());
  app.decorateRequest("attic", null as unknown as RequestState);

  // Graceful shutdown: a socket whose response finishes after close() began would otherwise
  // linger for the whole keep-alive timeout; sweep idle sockets until the server is closed.
  let sweeper: NodeJS.Timeout | undefined;
  app.addHook("preClose", async () => {
    sweeper = setInterval(() => app.server.closeIdleConnections(), 50);
    sweeper.unref();
  });
  app.addHook("onClose", async () => clearInterval(sweeper));

  const tokens = new VerifiedTokenCache(deps.config.jwt.signing, {
    boundIssuer: deps.config.jwt.tokenBoundIssuer ?? undefined,
    boundAudiences: deps.config.jwt.tokenBoundAudiences ?? undefined,
  });
  app.addHook("onRequest", async (request) => {
    const host = request.headers.host;
    if (!host) throw requestError("Missing Host header");
    const allowed = deps.config.allowedHosts;
    // /healthz (ours) answers any Host: load balancers and container health checks probe by IP or service name
    if (allowed.length > 0 && !allowed.includes(host) && request.url !== "/healthz") throw requestError("Bad Host");
    request.attic = {
      claims: await claimsOf(request, tokens),
      host,
      https: request.headers["x-forwarded-proto"] === "https",
    };
  });

  app.addHook("onResponse", async (request, reply) => {
    const ms = reply.elapsedTime;
    // the route pattern (`/:cache/:file`), never the URL: a bounded set of label values
    app.metrics.observeRequest(request.routeOptions.url ?? "unmatched", request.method, reply.statusCode, ms / 1000);
    request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms }, "request");
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof ServerError) {
      if (error.status >= 500) request.log.error({ err: error.cause ?? error }, error.message);
      // a missing path is Nix's everyday question, not news
      else if (error.kind === "NoSuchObject") request.log.debug(`${error.kind}: ${error.message}`);
      else request.log.info(`${error.kind}: ${error.message}`);
      return reply.code(error.status).type("application/json").send(error.toJSON());
    }
    if (error instanceof PlainRejection) {
      return reply.code(error.status).type("text/plain; charset=utf-8").send(error.message);
    }
    const e = error as { statusCode?: number; code?: string; message: string };
    // fastify's own rejections of JSON bodies: plain text, like upstream's extractors
    if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.code(413).type("text/plain; charset=utf-8").send("Failed to buffer the request body: length limit exceeded");
    }
    if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return reply.code(415).type("text/plain; charset=utf-8").send("Expected request with `Content-Type: application/json`");
    }
    // fastify 5 reports malformed JSON as FST_ERR_CTP_INVALID_JSON_BODY (older ones as a SyntaxError)
    if (e.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || e.code === "FST_ERR_CTP_INVALID_JSON_BODY" || (e.statusCode === 400 && error instanceof SyntaxError)) {
      return reply.code(400).type("text/plain; charset=utf-8").send(`Failed to parse the request body as JSON: ${e.message}`);
    }
    if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(e.statusCode).type("text/plain; charset=utf-8").send(e.message);
    }
    // before the 5xx test below: a 507 from the object store is not a passing outage
    const full = storageFull(error);
    if (full) {
      // one line, without the cause's stack: the where and why is all there is to say
      const where = full.storage ?? `the database ${redact(deps.config.database.url)}`;
      request.log.error({ storage: where, reason: full.reason }, `storage full: ${where} has no room left (${full.reason}); the request was refused with 507`);
      return reply.code(507).type("application/json").send(new ServerError("StorageFull", { cause: error }).toJSON());
    }
    const unavailable = unavailableReason(error);
    if (unavailable) {
      request.log.warn({ err: error }, "backend unavailable");
      return reply.code(503).type("application/json").send(new ServerError("ServiceUnavailable", { detail: unavailable }).toJSON());
    }
    const wrapped = new ServerError("InternalServerError", { cause: error });
    request.log.error({ err: error }, storageRefusalHint(error) ?? "internal error");
    return reply.code(500).type("application/json").send(wrapped.toJSON());
  });

  app.setNotFoundHandler((_request, reply) => {
    const err = notFound();
    return reply.code(err.status).type("application/json").send(err.toJSON());
  });

  await app.register(healthRoutes);
  await app.register(dashboardRoutes);
  await app.register(cacheConfigRoutes);
  await app.register(missingPathsRoutes);
  await app.register(uploadPathRoutes);
  await app.register(binaryCacheRoutes);
  return app;
}

async function claimsOf(request: FastifyRequest, tokens: VerifiedTokenCache): Promise<Claims | null> {
  const token = tokenFromRequest(request);
  if (!token) return null;
  return tokens.verify(token);
}

/** upstream `api_endpoint()`: configured, else `{http|https}://{Host}/` */
export function apiEndpoint(request: FastifyRequest, config: Config): string {
  if (config.apiEndpoint) return config.apiEndpoint;
  return `${request.attic.https ? "https" : "http"}://${request.attic.host}/`;
}

export function substituterEndpoint(request: FastifyRequest, config: Config, cacheName: string): string {
  return (config.substituterEndpoint ?? apiEndpoint(request, config)) + cacheName;
}
