// The read-only dashboard (issue 19): `/` (the caches), `/_dashboard/cache/<name>`,
// `/_dashboard/server`, and their two static files. Each view is rendered on the server from
// bounded queries (db/queries/dashboard.ts). With `?fragment=1` only the inside of <main> is
// sent: the page's script asks for it again with the token from session storage in an
// Authorization header, so a token is never put in a URL or a cookie.
import { readFileSync } from "node:fs";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ping } from "../../db/connect.ts";
import { cacheWithStats, dailyHistory, lastGcRuns, listCachesWithStats, metricsFigures, mostDownloaded, pushTotals, recentPushes, type DayEntry } from "../../db/queries/dashboard.ts";
import { utcDay } from "../../db/queries/stats.ts";
import { getPermissionForCache } from "../../token/permissions.ts";
import { permissionFor, tokenFromRequest } from "../auth.ts";
import { cacheNameParam } from "../params.ts";
import { listPins } from "../../db/queries/pins.ts";
import { getPullStats } from "../../db/queries/upstreams.ts";
import { cacheHiddenView, cacheView } from "../dashboard/cache-view.ts";
import { html, type Html } from "../dashboard/html.ts";
import { page, sendView, type Section, type Viewer } from "../dashboard/layout.ts";
import { overviewView } from "../dashboard/overview.ts";
import { STYLE } from "../dashboard/style.ts";
import { cachedPackSpace } from "../pack-space.ts";
import { serverHiddenView, serverView, type Health, type RouteFigures } from "../dashboard/server-view.ts";

const DAYS = 30;
const ASSETS = {
  // emitted into dist/ by the build (allowJs), type-checked by tsconfig.browser.json
  "app.js": { type: "text/javascript; charset=utf-8", body: readFileSync(new URL("../dashboard/assets/app.js", import.meta.url)) },
  "style.css": { type: "text/css; charset=utf-8", body: Buffer.from(STYLE) },
} as const;

function viewerOf(request: FastifyRequest): Viewer {
  const claims = request.attic.claims;
  return {
    subject: claims ? (claims.sub ?? "(no subject)") : null,
    refused: !claims && tokenFromRequest(request) !== null,
    admin: claims !== null && getPermissionForCache(claims, "*").pull,
  };
}

/** The last `DAYS` UTC days, oldest first, with the figures of those that have some. */
function lastDays(entries: readonly DayEntry[], now: Date): { day: string; entry: DayEntry | null }[] {
  const byDay = new Map(entries.map((e) => [e.day, e]));
  return Array.from({ length: DAYS }, (_, i) => {
    const day = utcDay(new Date(now.getTime() - (DAYS - 1 - i) * 86_400_000));
    return { day, entry: byDay.get(day) ?? null };
  });
}

export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  const { db, storage, config } = app.deps;
  // probed at most every PROBE_TTL_MS, however many people look: a page view never adds load to the backends
  const probes = new ProbeCache(async () => {
    const [database, probed] = await Promise.all([
      timed(() => ping(db), "SELECT 1"),
      // a file that does not exist: a stat on a folder, a HEAD on a bucket
      timed(() => storage.has(storage.remoteFileFor("attic-ts-dashboard-probe").remoteFile), config.storage.type === "s3" ? "S3 HEAD" : "local stat"),
    ]);
    return { database, storage: probed };
  });
  const packs = cachedPackSpace(db, config.garbageCollection.compaction.threshold);

  const respond = (request: FastifyRequest, reply: Parameters<typeof sendView>[0], title: string, section: Section, main: Html, status = 200) => {
    const fragment = (request.query as { fragment?: string }).fragment === "1";
    return sendView(reply, fragment ? main : page(title, section, main), status);
  };

  const visibleCaches = async (request: FastifyRequest) => {
    const claims = request.attic.claims;
    const caches = await listCachesWithStats(db);
    return caches.filter((c) => c.isPublic || (claims !== null && permissionFor(claims, c.name, null).pull));
  };

  // the seed's container health check probes `/` (wget --spider: HEAD): it must not need the database
  app.head("/", async (_request, reply) => reply.type("text/html; charset=utf-8").header("cache-control", "no-store").send());
  app.get("/", async (request, reply) => {
    const viewer = viewerOf(request);
    let main: Html;
    try {
      main = overviewView(viewer, await visibleCaches(request));
    } catch (err) {
      // still 200: `/` is also the liveness check of the seed's compose file; /healthz is the readiness one
      request.log.warn({ err }, "dashboard: the database did not answer");
      main = html`<h1>Caches</h1><p class="warn" role="alert">The database is not answering right now; the figures will be back with it.</p>`;
    }
    return respond(request, reply, "Caches", "caches", main);
  });

  app.get("/_dashboard/cache/:cache", async (request, reply) => {
    const name = cacheNameParam(request.params);
    const viewer = viewerOf(request);
    const cache = await cacheWithStats(db, name);
    const allowed = cache && (cache.isPublic || (request.attic.claims !== null && permissionFor(request.attic.claims, name, null).pull));
    if (!cache || !allowed) return respond(request, reply, "Cache not found", "caches", cacheHiddenView(viewer), 404);
    const now = new Date();
    const [totals, days, pushes, downloaded, pins, pull] = await Promise.all([
      pushTotals(db, cache.id),
      dailyHistory(db, cache.id, DAYS, now),
      recentPushes(db, cache.id, 10),
      mostDownloaded(db, cache.id, 10),
      listPins(db, cache.id),
      getPullStats(db, cache.id),
    ]);
    const main = cacheView(viewer, {
      cache,
      retentionPeriod: cache.retentionPeriod ?? config.garbageCollection.defaultRetentionPeriod,
      retentionIsDefault: cache.retentionPeriod === null,
      totals,
      days: lastDays(days, now),
      pushes,
      downloaded,
      pins,
      pull,
    });
    return respond(request, reply, `Cache ${name}`, "caches", main);
  });

  app.get("/_dashboard/server", async (request, reply) => {
    const viewer = viewerOf(request);
    if (!viewer.admin) return respond(request, reply, "Server", "server", serverHiddenView(viewer), viewer.subject === null ? 401 : 403);
    const now = new Date();
    const [figures, runs, days, { database, storage: store }, packFigures] = await Promise.all([
      metricsFigures(db),
      lastGcRuns(db, 30),
      dailyHistory(db, null, DAYS, now),
      probes.get(),
      packs(),
    ]);
    const main = serverView(
      viewer,
      {
        objects: figures.objects,
        logicalBytes: figures.logicalBytes,
        runs,
        days: lastDays(days, now),
        requests: requestFigures(app),
        database,
        storage: store,
        packs: packFigures,
        compactionThreshold: config.garbageCollection.compaction.threshold,
      },
      now,
    );
    return respond(request, reply, "Server", "server", main);
  });

  for (const [name, asset] of Object.entries(ASSETS)) {
    app.get(`/_dashboard/${name}`, async (_request, reply) =>
      reply.type(asset.type).header("cache-control", "public, max-age=300").header("x-content-type-options", "nosniff").send(asset.body),
    );
  }
}

const PROBE_TTL_MS = 10_000;

class ProbeCache {
  private last: { at: number; value: Promise<{ database: Health; storage: Health }> } | null = null;
  private readonly probe: () => Promise<{ database: Health; storage: Health }>;
  constructor(probe: () => Promise<{ database: Health; storage: Health }>) {
    this.probe = probe;
  }
  get(): Promise<{ database: Health; storage: Health }> {
    const now = Date.now();
    if (!this.last || now - this.last.at > PROBE_TTL_MS) this.last = { at: now, value: this.probe() };
    return this.last.value;
  }
}

async function timed(probe: () => Promise<unknown>, what: string): Promise<Health> {
  const started = performance.now();
  try {
    await probe();
    return { ok: true, ms: performance.now() - started, detail: what };
  } catch (err) {
    return { ok: false, ms: performance.now() - started, detail: err instanceof Error ? err.message.slice(0, 200) : String(err) };
  }
}

function requestFigures(app: FastifyInstance) {
  const byRoute = new Map<string, RouteFigures & { sum: number }>();
  let total = 0;
  let clientErrors = 0;
  let serverErrors = 0;
  for (const s of app.metrics.requestSummary()) {
    total += s.count;
    const status = Number(s.status);
    if (status >= 500) serverErrors += s.count;
    else if (status >= 400) clientErrors += s.count;
    const key = `${s.method} ${s.route}`;
    const r = byRoute.get(key) ?? { route: s.route, method: s.method, count: 0, errors: 0, meanMs: 0, sum: 0 };
    r.count += s.count;
    r.sum += s.sumSeconds;
    if (status >= 500) r.errors += s.count;
    r.meanMs = (1000 * r.sum) / r.count;
    byRoute.set(key, r);
  }
  const routes = [...byRoute.values()].sort((a, b) => b.count - a.count).slice(0, 15);
  return { since: app.metrics.startedAt, total, clientErrors, serverErrors, routes };
}
