// A dashboard page view on a big cache (issue 19: under 50 ms with 100,000 objects). The cache is
// seeded straight into the database (--objects paths, each with its NAR, a chunk and a chunkref,
// created over 30 days, a third of them downloaded), then the aggregates are computed as a GC run
// would, and each page is fetched --runs times through HTTP with the root token.
//
//   node bench/dashboard.ts [--backends sqlite-local,postgres-s3] [--objects 100000] [--runs 50]
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { createCacheViaApi, startServer } from "../test/helpers/server.ts";
import { getCacheByName } from "../src/db/queries/caches.ts";
import { recordGcRun, utcDay } from "../src/db/queries/stats.ts";
import { maxBatch } from "../src/db/queries/batch.ts";
import type { Db } from "../src/db/connect.ts";
import { backendFor, stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    backends: { type: "string", default: "sqlite-local" },
    objects: { type: "string", default: "100000" },
    runs: { type: "string", default: "50" },
  },
});
const OBJECTS = Number(values.objects);
const RUNS = Number(values.runs);
const ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";
const storeHash = () => Array.from(randomBytes(32), (b) => ALPHABET[b % 32]).join("");
const DAY = 86_400_000;

async function insertAll<T extends "nar" | "chunk" | "chunkref" | "object" | "attic_ts_daily">(db: Db, table: T, rows: Record<string, unknown>[]): Promise<number[]> {
  const ids: number[] = [];
  const size = maxBatch(db, Object.keys(rows[0]!).length);
  for (let i = 0; i < rows.length; i += size) {
    const q = db.kysely.insertInto(table).values(rows.slice(i, i + size) as never);
    if (table === "attic_ts_daily") await q.execute();
    else ids.push(...(await q.returning("id" as never).execute()).map((r) => Number((r as { id: number }).id)));
  }
  return ids;
}

async function seed(db: Db, cacheId: number): Promise<void> {
  const now = Date.now();
  const started = performance.now();
  const sizes = Array.from({ length: OBJECTS }, (_, i) => 1000 + ((i * 7919) % 5_000_000));
  const narIds = await insertAll(db, "nar", sizes.map((nar_size) => ({
    state: "V", nar_hash: `sha256:${randomBytes(32).toString("hex")}`, nar_size, compression: "zstd", num_chunks: 1, holders_count: 0, created_at: new Date(now),
  })));
  const chunkIds = await insertAll(db, "chunk", sizes.map((size, i) => ({
    state: "V", chunk_hash: `sha256:${randomBytes(32).toString("hex")}`, chunk_size: size, file_hash: null, file_size: Math.round(size / 3),
    compression: "zstd", remote_file: "{}", remote_file_id: `bench-${i}`, holders_count: 0, created_at: new Date(now),
  })));
  await insertAll(db, "chunkref", narIds.map((nar_id, i) => ({ nar_id, seq: 0, chunk_id: chunkIds[i]! })));
  await insertAll(db, "object", narIds.map((nar_id, i) => {
    const h = storeHash();
    return {
      cache_id: cacheId, nar_id, store_path_hash: h, store_path: `/nix/store/${h}-package-${i}`, references: "[]", sigs: "[]",
      created_at: new Date(now - (i % 30) * DAY - i), created_by: "ci", download_count: i % 3 === 0 ? (i * 31) % 1000 : null,
    };
  }));
  await insertAll(db, "attic_ts_daily", Array.from({ length: 30 }, (_, d) => ({
    cache_id: cacheId, day: utcDay(new Date(now - d * DAY)), pushes: Math.floor(OBJECTS / 30), pushed_bytes: 1e9, new_chunk_bytes: 3e8, new_file_bytes: 1e8, downloads: 500 + d,
    downloaded_bytes: 2e9, logical_bytes: 1e10 - d * 1e8, stored_bytes: 3e9 - d * 3e7,
  })));
  // 29 earlier runs as rows, then one real run: it computes every figure from the tables (a scan, as GC does)
  await db.kysely.insertInto("attic_ts_gc_run").values(Array.from({ length: 29 }, (_, r) => ({
    finished_at: new Date(now - (30 - r) * DAY / 2), duration_ms: 1000 + r, objects_removed: r, nars_removed: r, chunks_removed: r * 10, bytes_freed: r * 1e6,
    objects: OBJECTS, logical_bytes: 1e10, nars: OBJECTS, nar_bytes: 1e10, chunks: OBJECTS, chunk_bytes: 1e10, stored_bytes: 3e9,
  }))).execute();
  const gcStarted = performance.now();
  await recordGcRun(db, { finishedAt: new Date(now), durationMs: 1000, objectsRemoved: 0, narsRemoved: 0, chunksRemoved: 0, bytesFreed: 0 });
  console.log(`  the figures of a GC run (every cache recomputed, storage measured): ${(performance.now() - gcStarted).toFixed(0)} ms`);
  console.log(`  seeded ${OBJECTS} objects with their NARs, chunks and 30 GC runs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

for (const spec of values.backends!.split(",")) {
  const server = await startServer({ backend: await backendFor(spec) });
  try {
    await createCacheViaApi(server, "big");
    await createCacheViaApi(server, "small", { is_public: true });
    const cache = (await getCacheByName(server.db, "big"))!;
    console.log(`${spec}:`);
    await seed(server.db, cache.id);
    const token = server.rootToken();
    for (const [name, path] of [["cache page", "/_dashboard/cache/big"], ["caches (/)", "/"], ["server page", "/_dashboard/server"]] as const) {
      const times: number[] = [];
      for (let i = 0; i < RUNS + 3; i++) {
        const start = process.hrtime.bigint();
        // the seeding outlasts the keep-alive of the connection that created the caches: a reset on first use is retried
        const res = await server.fetch(`${path}?fragment=1`, { token }).catch(() => server.fetch(`${path}?fragment=1`, { token }));
        const body = await res.text();
        if (res.status !== 200 || !body.includes("data-figure") && !body.includes('id="caches"')) throw new Error(`${path}: ${res.status}`);
        if (i >= 3) times.push(Number(process.hrtime.bigint() - start) / 1e6); // the first ones warm up
      }
      times.sort((a, b) => a - b);
      const pick = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(1);
      console.log(`  ${name} on a cache of ${OBJECTS} objects: median ${pick(0.5)} ms, p95 ${pick(0.95)} ms, worst ${times.at(-1)!.toFixed(1)} ms (bar: 50 ms)`);
    }
  } finally {
    await server.stop();
  }
}
await stopBackendServices();
