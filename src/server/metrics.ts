// Prometheus metrics of one atticd process, exposed by prom-client (docs/metrics.md says what
// each means). One registry per app (tests build many apps in one process). Counters are raised
// where things happen (`inc`); request durations are observed in app.ts's onResponse hook. Both
// are plain numbers (fast-metrics.ts): the narinfo hot path pays a Map lookup and a bucket
// search, not prom-client's label hashing. Figures kept in the database (storage, objects,
// ratios, GC runs) are read at scrape time, so every replica reports the same.
import { Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { FastCounter, FastHistogram } from "./fast-metrics.ts";
import type { PackSpace } from "../db/queries/pack-gc.ts";

export type CounterName =
  | "attic_uploads_total"
  | "attic_upload_bytes_total"
  | "attic_uploads_deduplicated_total"
  | "attic_chunks_deduplicated_total"
  | "attic_chunks_uploaded_total"
  | "attic_nar_downloads_total"
  | "attic_nar_download_bytes_total"
  | "attic_narinfo_requests_total"
  | "attic_lost_chunks_total"
  | "attic_upload_session_part_bytes_total"
  | "attic_upstream_requests_total"
  | "attic_upstream_bytes_total"
  | "attic_upstream_fetches_total";

const HELP: Record<CounterName, string> = {
  attic_uploads_total: "NAR uploads accepted",
  attic_upload_bytes_total: "Uncompressed NAR bytes received in uploads",
  attic_uploads_deduplicated_total: "Uploads answered from an existing NAR",
  attic_chunks_deduplicated_total: "Chunks that were already stored",
  attic_chunks_uploaded_total: "Chunks newly written to storage",
  attic_nar_downloads_total: "NAR downloads served",
  attic_nar_download_bytes_total: "Bytes of NAR downloads sent",
  attic_narinfo_requests_total: "narinfo lookups by result",
  attic_upload_session_part_bytes_total: "Bytes of upload-session part bodies received (resent parts included)",
  attic_upstream_requests_total: "Pull-through requests to upstreams by kind (narinfo, nar) and result (found, missing, error, refused, breaker_open)",
  attic_upstream_bytes_total: "Bytes received from upstreams (as sent, compressed)",
  attic_upstream_fetches_total: "Upstream NAR fetches by result (stored, failed)",
  attic_lost_chunks_total: "Chunks whose files a NAR download found missing from storage (marked lost)",
};

/** The counters whose series have labels (no unlabelled 0 is shown for them). */
const LABELLED = new Set<CounterName>(["attic_narinfo_requests_total", "attic_upstream_requests_total", "attic_upstream_fetches_total"]);

/** Seconds; narinfo answers in well under a millisecond, NAR transfers take minutes. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** What the database holds, read at scrape time (routes/health.ts wires the queries). */
export interface DatabaseFigures {
  objects: number;
  logicalBytes: number;
  /** from the last GC run; null before the first */
  storage: { storedBytes: number; chunks: number; chunkBytes: number; nars: number; narBytes: number; logicalBytes: number } | null;
  lastGc: { finishedAt: Date; durationMs: number; bytesFreed: number; objectsRemoved: number; chunksRemoved: number } | null;
  gcRuns: number;
  pingSeconds: number;
  /** packs (docs/compaction.md); null when not read */
  packs?: PackSpace | null;
}

/** Backend error and retry counts kept by the db and storage rooms (read at scrape time). */
export interface BackendCounts {
  dbTransactionRetries: number;
  s3Requests: number;
  s3Errors: number;
  s3Retries: number;
}

export interface RequestSummary {
  route: string;
  method: string;
  status: string;
  count: number;
  sumSeconds: number;
}

export interface Metrics {
  registry: Registry;
  inc(name: CounterName, value?: number, labels?: Record<string, string>): void;
  /** one finished HTTP request; `route` is the route pattern (bounded), never the URL */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** one request to a pull-through upstream, until its answer's headers (`kind`: narinfo or nar) */
  observeUpstream(kind: string, seconds: number): void;
  /** what happened since the process started, per route/method/status (the dashboard's server page) */
  requestSummary(): RequestSummary[];
  /** read at scrape time; set by the routes that own the database */
  setDatabaseSource(source: () => Promise<DatabaseFigures>): void;
  setBackendSource(source: () => BackendCounts): void;
  render(): Promise<string>;
  readonly startedAt: Date;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counters = new Map<CounterName, FastCounter>();
  for (const name of Object.keys(HELP) as CounterName[]) counters.set(name, new FastCounter(registry, name, HELP[name], LABELLED.has(name)));
  const requests = new FastHistogram(registry, "attic_http_request_duration_seconds", "HTTP request durations by route pattern, method and status code", DURATION_BUCKETS);
  const upstream = new FastHistogram(registry, "attic_upstream_request_duration_seconds", "Pull-through upstream request latency (until the answer's headers) by kind", DURATION_BUCKETS);

  let dbSource: (() => Promise<DatabaseFigures>) | null = null;
  let backendSource: (() => BackendCounts) | null = null;
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  const g = {
    objects: gauge("attic_objects", "Objects (store paths) in all caches"),
    logical: gauge("attic_logical_bytes", "Sum of the NAR sizes of all objects (a NAR in two caches counts twice)"),
    stored: gauge("attic_storage_stored_bytes", "Compressed bytes of the valid chunks in storage (as of the last GC run)"),
    chunks: gauge("attic_storage_chunks", "Valid chunks in storage (as of the last GC run)"),
    chunkBytes: gauge("attic_storage_chunk_bytes", "Uncompressed bytes of the valid chunks (as of the last GC run)"),
    dedup: gauge("attic_dedup_ratio", "Logical bytes over unique chunk bytes (as of the last GC run); 2 means half the data was shared"),
    compression: gauge("attic_compression_ratio", "Unique chunk bytes over their compressed size (as of the last GC run)"),
    gcRuns: gauge("attic_gc_runs_recorded", "Garbage-collection runs recorded in the database"),
    gcLastTime: gauge("attic_gc_last_run_timestamp_seconds", "When the last GC run finished (Unix time)"),
    gcLastDuration: gauge("attic_gc_last_run_duration_seconds", "How long the last GC run took"),
    gcLastFreed: gauge("attic_gc_last_run_freed_bytes", "Compressed bytes the last GC run deleted from storage"),
    packs: new Gauge({ name: "attic_packs", help: "Packs by state: sealed, open (being written), retired (awaiting deletion after the grace period)", labelNames: ["state"], registers: [registry] }),
    packBytes: gauge("attic_pack_bytes", "Bytes of the sealed packs"),
    packLive: gauge("attic_pack_live_bytes", "Bytes of live chunks in sealed packs"),
    packFree: gauge("attic_pack_free_bytes", "Bytes of deleted chunks still inside sealed packs (holes compaction may reclaim)"),
    packReclaimable: gauge("attic_pack_reclaimable_bytes", "Bytes compaction frees: holes of packs at or past the threshold, and retired packs awaiting deletion"),
    packRetiredBytes: gauge("attic_pack_retired_bytes", "Bytes of retired packs awaiting deletion after the grace period"),
    dbUp: gauge("attic_db_up", "1 when the database answered the scrape's queries"),
    dbPing: gauge("attic_db_ping_seconds", "Round trip of a trivial query at scrape time"),
  };
  // counters whose values the db and storage rooms keep: set at scrape time
  const backendCounter = (name: string, help: string) => new FastCounter(registry, name, help);
  const b = {
    dbRetries: backendCounter("attic_db_transaction_retries_total", "Database transactions run again after a serialization failure or deadlock (PostgreSQL)"),
    s3Requests: backendCounter("attic_s3_requests_total", "S3 operations sent"),
    s3Errors: backendCounter("attic_s3_errors_total", "S3 operations that failed after their retries"),
    s3Retries: backendCounter("attic_s3_retries_total", "S3 attempts beyond the first (the SDK's retries)"),
  };

  const metrics: Metrics = {
    registry,
    startedAt: new Date(),
    inc(name, value = 1, labels) {
      counters.get(name)!.inc(value, labels);
    },
    observeRequest(route, method, status, seconds) {
      const key = `${route} ${method} ${status}`;
      requests.observe(key, () => ({ route, method, status: String(status) }), seconds);
    },
    observeUpstream(kind, seconds) {
      upstream.observe(kind, () => ({ kind }), seconds);
    },
    requestSummary: () =>
      requests.summaries().map((s) => ({ route: s.labels.route!, method: s.labels.method!, status: s.labels.status!, count: s.count, sumSeconds: s.sum })),
    setDatabaseSource(source) {
      dbSource = source;
    },
    setBackendSource(source) {
      backendSource = source;
    },
    async render() {
      if (backendSource) {
        const c = backendSource();
        b.dbRetries.set(c.dbTransactionRetries);
        b.s3Requests.set(c.s3Requests);
        b.s3Errors.set(c.s3Errors);
        b.s3Retries.set(c.s3Retries);
      }
      if (dbSource) {
        try {
          const f = await dbSource();
          g.objects.set(f.objects);
          g.logical.set(f.logicalBytes);
          if (f.storage) {
            g.stored.set(f.storage.storedBytes);
            g.chunks.set(f.storage.chunks);
            g.chunkBytes.set(f.storage.chunkBytes);
            if (f.storage.chunkBytes > 0) g.dedup.set(f.storage.logicalBytes / f.storage.chunkBytes);
            if (f.storage.storedBytes > 0) g.compression.set(f.storage.chunkBytes / f.storage.storedBytes);
          }
          g.gcRuns.set(f.gcRuns);
          if (f.lastGc) {
            g.gcLastTime.set(f.lastGc.finishedAt.getTime() / 1000);
            g.gcLastDuration.set(f.lastGc.durationMs / 1000);
            g.gcLastFreed.set(f.lastGc.bytesFreed);
          }
          if (f.packs) {
            g.packs.set({ state: "sealed" }, f.packs.packs);
            g.packs.set({ state: "open" }, f.packs.openPacks);
            g.packs.set({ state: "retired" }, f.packs.retiredPacks);
            g.packBytes.set(f.packs.packBytes);
            g.packLive.set(f.packs.liveBytes);
            g.packFree.set(f.packs.freeBytes);
            g.packReclaimable.set(f.packs.reclaimableBytes);
            g.packRetiredBytes.set(f.packs.retiredBytes);
          }
          g.dbPing.set(f.pingSeconds);
          g.dbUp.set(1);
        } catch {
          g.dbUp.set(0);
        }
      }
      return registry.metrics();
    },
  };
  return metrics;
}
