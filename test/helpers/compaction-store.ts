// A store for measuring compaction (bench/compaction.ts, test/integration/compaction-memory.test.ts):
// packs of random (incompressible) frames of `chunkBytes` each, one chunk in three removed at
// random (its row gone: a hole), so every pack is about a third dead and is rewritten. And the
// garbage-collection run over it in a child process started as atticd starts (its start line's
// flags and environment), whose memory is sampled: the peaks of RSS, V8's heap and the array
// buffers (the bytes in flight of reads and writes), and the process's peak RSS (getrusage).
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Db } from "../../src/db/connect.ts";
import type { StorageDriver } from "../../src/storage/types.ts";
import type { GcReport } from "../../src/gc/index.ts";
import { atticdLaunch } from "./atticd-process.ts";

export interface ThirdDeadStore {
  packs: number;
  live: number;
  liveBytes: number;
}

/** Build the store; `copyTo`: also write each pack's bytes there (the bench's `cp` anchor). */
export async function buildThirdDeadStore(
  db: Db,
  storage: StorageDriver,
  opts: { chunks: number; chunkBytes: number; packSize: number; copyTo?: string },
): Promise<ThirdDeadStore> {
  const perPack = Math.floor(opts.packSize / opts.chunkBytes);
  const store: ThirdDeadStore = { packs: 0, live: 0, liveBytes: 0 };
  const now = new Date();
  for (let first = 0; first < opts.chunks; first += perPack) {
    const count = Math.min(perPack, opts.chunks - first);
    const body = randomBytes(count * opts.chunkBytes);
    const { remoteFile, remoteFileId } = storage.remoteFileFor(`${randomUUID()}.pack`);
    await storage.put(remoteFile, Readable.from([body]));
    if (opts.copyTo) writeFileSync(`${opts.copyTo}/${remoteFileId.replace(/[^a-z0-9.-]/gi, "_")}`, body);
    const pack = await db.kysely
      .insertInto("attic_ts_pack")
      .values({ state: "V", remote_file: JSON.stringify(remoteFile), remote_file_id: remoteFileId, size: body.length, chunks: count, created_at: now, sealed_at: now })
      .returning("id")
      .executeTakeFirstOrThrow();
    store.packs++;
    let rows = [];
    for (let i = 0; i < count; i++) {
      if (Math.random() < 1 / 3) continue;
      const frame = body.subarray(i * opts.chunkBytes, (i + 1) * opts.chunkBytes);
      const own = storage.remoteFileFor(`${randomUUID()}.chunk`);
      rows.push({
        state: "V" as const,
        chunk_hash: `sha256:${createHash("sha256").update(`${randomUUID()}`).digest("hex")}`,
        chunk_size: opts.chunkBytes,
        file_hash: `sha256:${createHash("sha256").update(frame).digest("hex")}`,
        file_size: opts.chunkBytes,
        compression: "zstd",
        remote_file: JSON.stringify(own.remoteFile),
        remote_file_id: own.remoteFileId,
        holders_count: 1,
        created_at: now,
        held_at: now,
        pack_id: Number(pack.id),
        pack_offset: i * opts.chunkBytes,
      });
      store.live++;
      store.liveBytes += opts.chunkBytes;
      if (rows.length === 2000) {
        await db.kysely.insertInto("chunk").values(rows).execute();
        rows = [];
      }
    }
    if (rows.length > 0) await db.kysely.insertInto("chunk").values(rows).execute();
  }
  return store;
}

export interface CompactionRun {
  /** the run's wall time, start-up excluded */
  seconds: number;
  /** RSS once the modules were loaded and the database and storage opened */
  rssBefore: number;
  /** sampled every 10 ms during the run */
  peak: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
  /** the process's peak RSS (getrusage) */
  maxRss: number;
  report: GcReport;
}

const CHILD = fileURLToPath(new URL("./compaction-child.ts", import.meta.url));

/** One garbage-collection run (compaction: threshold 10 %, no grace for retired packs) over the store of `configPath`, in a child process. */
export async function runCompactionChild(configPath: string, opts: { packSize: number; nodeArgs?: string[] }): Promise<CompactionRun> {
  const launch = atticdLaunch();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...launch.nodeArgs, ...(opts.nodeArgs ?? []), CHILD, configPath, String(opts.packSize)],
      { encoding: "utf8", maxBuffer: 16 * 2 ** 20, env: { ...process.env, ...launch.env } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as CompactionRun)),
    );
  });
}
