// `/healthz`: readiness. 200 when the database answers, 503 otherwise (a load balancer takes a
// replica out while its database is unreachable). `/metrics`: Prometheus text, here unless
// `metrics.listen` moves it to a listener of its own (metrics-listener.ts), behind
// `metrics.token` when set.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { ping, transactionRetryCount, type Db } from "../../db/connect.ts";
import { metricsFigures } from "../../db/queries/dashboard.ts";
import { s3Counts } from "../../storage/index.ts";
import { unauthorized } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import { cachedPackSpace } from "../pack-space.ts";
import type { PackSpace } from "../../db/queries/pack-gc.ts";

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  wireMetricsSources(app.metrics, app.deps.db, cachedPackSpace(app.deps.db, app.deps.config.garbageCollection.compaction.threshold));
  app.get("/healthz", async (_request, reply) => {
    try {
      await ping(app.deps.db);
      return reply.type("application/json").send({ status: "ok" });
    } catch (err) {
      return reply.code(503).type("application/json").send({ status: "unavailable", reason: "database unreachable" });
    }
  });
  if (app.deps.config.metrics.listen !== null) return;
  const token = app.deps.config.metrics.token;
  app.get("/metrics", async (request, reply) => {
    if (!metricsAuthorized(token, request.headers.authorization)) {
      reply.header("www-authenticate", "Bearer");
      throw unauthorized();
    }
    return reply.type(METRICS_CONTENT_TYPE).send(await app.metrics.render());
  });
}

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** `Authorization: Bearer <metrics.token>`, compared in constant time; anyone when no token is set. */
export function metricsAuthorized(token: string | null, header: string | undefined): boolean {
  if (token === null) return true;
  const given = /^Bearer (.+)$/i.exec(header ?? "")?.[1] ?? "";
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/** What /metrics reads from the database and the backends' counters at scrape time. */
export function wireMetricsSources(metrics: Metrics, db: Db, packs?: () => Promise<PackSpace>): void {
  metrics.setBackendSource(() => ({
    dbTransactionRetries: transactionRetryCount(),
    s3Requests: s3Counts.requests,
    s3Errors: s3Counts.errors,
    s3Retries: s3Counts.retries,
  }));
  metrics.setDatabaseSource(async () => {
    const started = performance.now();
    await ping(db);
    const pingSeconds = (performance.now() - started) / 1000;
    const [f, packSpace] = await Promise.all([metricsFigures(db), packs ? packs() : null]);
    const run = f.lastRun;
    return {
      objects: f.objects,
      logicalBytes: f.logicalBytes,
      gcRuns: f.gcRuns,
      pingSeconds,
      packs: packSpace,
      storage: run && { storedBytes: run.storedBytes, chunks: run.chunks, chunkBytes: run.chunkBytes, nars: run.nars, narBytes: run.narBytes, logicalBytes: run.logicalBytes },
      lastGc: run && { finishedAt: run.finishedAt, durationMs: run.durationMs, bytesFreed: run.bytesFreed, objectsRemoved: run.objectsRemoved, chunksRemoved: run.chunksRemoved },
    };
  });
}
