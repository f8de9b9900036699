// One garbage-collection run over N orphan chunks (default 100,000) with real files in local
// storage, on SQLite and on a throwaway PostgreSQL cluster. Prints the run's time, chunks per
// second, and the process's peak RSS during the run beside its RSS before it; as the reference in
// the same run, the time `rm -rf` takes to delete the same number of files of the same layout.
//
//   node bench/gc.ts [--chunks 100000] [--backends sqlite,postgres]
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { startServer } from "../test/helpers/server.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { runGarbageCollectionOnce, formatGcReport } from "../src/gc/index.ts";

const { values } = parseArgs({ options: { chunks: { type: "string", default: "100000" }, backends: { type: "string", default: "sqlite,postgres" } } });
const n = Number(values.chunks);
const MiB = 2 ** 20;

let pg: Awaited<ReturnType<typeof startPostgres>> | undefined;
for (const db of values.backends!.split(",") as ("sqlite" | "postgres")[]) {
  if (db === "postgres" && !pg) {
    pg = await startPostgres();
    process.env.ATTIC_TEST_PG_URL = pg.url;
  }
  const s = await startServer({ backend: { db, storage: "local" } });
  try {
    const root = join(s.dir, "storage");
    const now = new Date();
    let rows = [];
    for (let i = 0; i < n; i++) {
      const key = `${i.toString(16).padStart(8, "0")}-0000-4000-8000-000000000000.chunk`;
      const { remoteFile, remoteFileId } = s.storage.remoteFileFor(key);
      const path = join(root, key[0]!, key.slice(0, 2), key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, "0123456789");
      rows.push({
        state: "V",
        chunk_hash: `sha256:${i.toString(16).padStart(64, "0")}`,
        chunk_size: 10,
        file_hash: null,
        file_size: 10,
        compression: "zstd",
        remote_file: JSON.stringify(remoteFile),
        remote_file_id: remoteFileId,
        holders_count: 0,
        created_at: now,
      });
      if (rows.length === 3000 || i === n - 1) {
        await s.db.kysely.insertInto("chunk").values(rows as never).execute();
        rows = [];
      }
    }
    // reference: rm -rf of a copy of the same tree
    const copy = mkdtempSync(join(tmpdir(), "attic-gc-ref-"));
    cpSync(root, join(copy, "storage"), { recursive: true });
    let t = process.hrtime.bigint();
    execFileSync("rm", ["-rf", join(copy, "storage")]);
    const rmSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    rmSync(copy, { recursive: true, force: true });

    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    t = process.hrtime.bigint();
    const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null } });
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    if (report.chunks !== n) throw new Error(`expected ${n} chunks freed:\n${formatGcReport(report)}`);
    console.log(
      `${db.padEnd(8)} GC of ${n} orphan chunks: ${seconds.toFixed(2)} s (${Math.round(n / seconds)} chunks/s), ` +
        `RSS ${(rssBefore / MiB).toFixed(0)} MiB before, ${(peak / MiB).toFixed(0)} MiB peak; reference rm -rf of the same files: ${rmSeconds.toFixed(2)} s`,
    );
  } finally {
    await s.stop();
  }
}
pg?.stop();
