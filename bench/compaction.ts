// Compaction of a store where a third of the chunks are dead (issue 25's target): N chunks
// (default 100,000) of `--chunk-bytes` stored bytes each (default 8 KiB, random so incompressible)
// in packs of 64 MiB, one chunk in three removed at random (its row gone: a hole), so every pack
// is about 33 % dead and is rewritten. The store is built by this process; the GC run happens in a
// fresh child process, so its time and peak RSS (getrusage maxrss) are the compactor's alone.
// Same-run anchor: `cp` of the same pack files plus `sync` (rewriting every byte once, in the kernel).
//
//   node bench/compaction.ts [--chunks 100000] [--chunk-bytes 8192] [--backends sqlite-local,postgres-s3] [--keep]
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { prepareServer } from "../test/helpers/server.ts";
import { atticdLaunch } from "../test/helpers/atticd-process.ts";
import { parseConfig } from "../src/server/config/load.ts";
import { openDatabase } from "../src/db/connect.ts";
import { migrate } from "../src/db/migrations/index.ts";
import { createStorage } from "../src/storage/index.ts";
import { runGarbageCollectionOnce, formatGcReport, type GcReport } from "../src/gc/index.ts";
import { backendFor, stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    chunks: { type: "string", default: "100000" },
    "chunk-bytes": { type: "string", default: "8192" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    child: { type: "string" },
    /** build the store, print its config path and keep it (no run): for profiling a run by hand */
    keep: { type: "boolean", default: false },
    /** write the run's CPU and heap profiles (node --cpu-prof --heap-prof) into this folder */
    profile: { type: "string" },
  },
});
const MiB = 2 ** 20;
const PACK_SIZE = 64 * MiB;

async function open(configPath: string) {
  const { config } = parseConfig(readFileSync(configPath, "utf8"), { source: configPath, env: {} });
  const db = await openDatabase(config.database.url, { poolSize: 10 });
  const storage = await createStorage(config.storage);
  return { config, db, storage };
}

if (values.child) {
  const { db, storage } = await open(values.child);
  const rssBefore = process.memoryUsage().rss;
  // where the memory is at its peak: V8's heap, or buffers outside it (sampled every 20 ms)
  const peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
  }, 20);
  const t = process.hrtime.bigint();
  const report = await runGarbageCollectionOnce({
    db,
    storage,
    config: {
      defaultRetentionPeriod: 0,
      staleGracePeriod: 3600,
      maxSize: null,
      compaction: { threshold: 0.1, maxRewriteBytes: 4 * 2 ** 30, packSize: PACK_SIZE, retiredGraceMs: 0, packLoose: false },
    },
  });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  clearInterval(sampler);
  await storage.close?.();
  await db.close();
  process.stdout.write(JSON.stringify({ seconds, rssBefore, peak, maxRss: process.resourceUsage().maxRSS * 1024, report }));
} else {
  const n = Number(values.chunks);
  const chunkBytes = Number(values["chunk-bytes"]);
  const perPack = Math.floor(PACK_SIZE / chunkBytes);
  for (const spec of values.backends!.split(",")) {
    const backend = await backendFor(spec);
    const setup = await prepareServer({ backend });
    const configPath = join(setup.dir, "server.toml");
    writeFileSync(configPath, setup.configToml);
    try {
      const { db, storage } = await open(configPath);
      await migrate(db);
      // the store: packs of random frames, two chunk rows in three (the third is a hole)
      let live = 0;
      let liveBytes = 0;
      const now = new Date();
      const local = mkdtempSync(join(tmpdir(), "attic-compact-ref-"));
      for (let first = 0; first < n; first += perPack) {
        const count = Math.min(perPack, n - first);
        const body = randomBytes(count * chunkBytes);
        const { remoteFile, remoteFileId } = storage.remoteFileFor(`${randomUUID()}.pack`);
        await storage.put(remoteFile, Readable.from([body]));
        writeFileSync(join(local, remoteFileId.replace(/[^a-z0-9.-]/gi, "_")), body);
        const pack = await db.kysely
          .insertInto("attic_ts_pack")
          .values({ state: "V", remote_file: JSON.stringify(remoteFile), remote_file_id: remoteFileId, size: body.length, chunks: count, created_at: now, sealed_at: now })
          .returning("id")
          .executeTakeFirstOrThrow();
        let rows = [];
        for (let i = 0; i < count; i++) {
          if (Math.random() < 1 / 3) continue;
          const frame = body.subarray(i * chunkBytes, (i + 1) * chunkBytes);
          const own = storage.remoteFileFor(`${randomUUID()}.chunk`);
          rows.push({
            state: "V" as const,
            chunk_hash: `sha256:${createHash("sha256").update(`${first + i}`).digest("hex")}`,
            chunk_size: chunkBytes,
            file_hash: `sha256:${createHash("sha256").update(frame).digest("hex")}`,
            file_size: chunkBytes,
            compression: "zstd",
            remote_file: JSON.stringify(own.remoteFile),
            remote_file_id: own.remoteFileId,
            holders_count: 1,
            created_at: now,
            held_at: now,
            pack_id: Number(pack.id),
            pack_offset: i * chunkBytes,
          });
          live++;
          liveBytes += chunkBytes;
          if (rows.length === 2000) {
            await db.kysely.insertInto("chunk").values(rows).execute();
            rows = [];
          }
        }
        if (rows.length > 0) await db.kysely.insertInto("chunk").values(rows).execute();
      }
      await storage.close?.();
      await db.close();

      // the anchor: the same bytes copied once by cp, made durable by sync
      let t = process.hrtime.bigint();
      execFileSync("cp", ["-r", local, `${local}-copy`]);
      execFileSync("sync");
      const cpSeconds = Number(process.hrtime.bigint() - t) / 1e9;
      rmSync(local, { recursive: true, force: true });
      rmSync(`${local}-copy`, { recursive: true, force: true });

      if (values.keep) {
        console.log(`store kept: ${configPath}`);
        continue;
      }
      t = process.hrtime.bigint();
      const profile = values.profile ? ["--cpu-prof", "--heap-prof", `--diagnostic-dir=${values.profile}`, `--cpu-prof-name=compaction-${spec}.cpuprofile`, `--heap-prof-name=compaction-${spec}.heapprofile`] : [];
      // the child runs as an installed atticd starts (its start line's flags and environment: a small
      // young generation, few malloc arenas), as `atticd --mode garbage-collector-once` would
      const launch = atticdLaunch();
      const out = execFileSync(process.execPath, [...launch.nodeArgs, ...profile, import.meta.filename, "--child", configPath], {
        encoding: "utf8",
        maxBuffer: 16 * MiB,
        env: { ...process.env, ...launch.env },
      });
      const wall = Number(process.hrtime.bigint() - t) / 1e9;
      const r = JSON.parse(out) as { seconds: number; rssBefore: number; peak: Record<string, number>; maxRss: number; report: GcReport };
      const c = r.report.compaction;
      if (c.chunksMoved !== live || c.failures !== 0) throw new Error(`expected ${live} chunks moved:\n${formatGcReport(r.report)}`);
      console.log(
        `${spec.padEnd(14)} compaction of ${n} chunks (${live} live, ${n - live} dead, ${Math.ceil(n / perPack)} packs of ${PACK_SIZE / MiB} MiB): ` +
          `${r.seconds.toFixed(2)} s (process ${wall.toFixed(2)} s with start-up); ${c.packsRewritten} packs rewritten into ${c.packsWritten}, ` +
          `${(c.bytesRewritten / MiB).toFixed(0)} MiB rewritten (live ${(liveBytes / MiB).toFixed(0)} MiB), ${(c.bytesDeleted / MiB).toFixed(0)} MiB of old packs deleted; ` +
          `RSS ${(r.rssBefore / MiB).toFixed(0)} MiB before, ${(r.maxRss / MiB).toFixed(0)} MiB peak ` +
          `(sampled peaks: heap ${(r.peak.heapUsed! / MiB).toFixed(0)}, external ${(r.peak.external! / MiB).toFixed(0)}, array buffers ${(r.peak.arrayBuffers! / MiB).toFixed(0)} MiB); ` +
          `anchor cp+sync of all packs: ${cpSeconds.toFixed(2)} s (ratio ${(r.seconds / cpSeconds).toFixed(2)}×)`,
      );
    } finally {
      if (!values.keep) rmSync(setup.dir, { recursive: true, force: true });
    }
  }
  await stopBackendServices();
}
