// One garbage-collection run over N orphan chunks (default 100,000) with real files in local
// storage, on SQLite and on PostgreSQL. The rows and files are made by this process; the run
// itself happens in a fresh child process, so its time and peak RSS (getrusage maxrss) are the
// collector's alone. As a reference, the time `rm -rf` takes on a copy of the same files.
//
//   node bench/gc.ts [--chunks 100000] [--backends sqlite,postgres]
// PostgreSQL: the cluster at ATTIC_TEST_PG_URL when set, else a throwaway one (test/helpers).
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { prepareServer } from "../test/helpers/server.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { insertOrphanChunks } from "../test/integration/gc-fixtures.ts";
import { parseConfig } from "../src/server/config/load.ts";
import { openDatabase } from "../src/db/connect.ts";
import { migrate } from "../src/db/migrations/index.ts";
import { createStorage } from "../src/storage/index.ts";
import { runGarbageCollectionOnce, formatGcReport } from "../src/gc/index.ts";

const { values } = parseArgs({
  options: {
    chunks: { type: "string", default: "100000" },
    backends: { type: "string", default: "sqlite,postgres" },
    child: { type: "string" },
  },
});
const MiB = 2 ** 20;

async function open(configPath: string) {
  const { config } = parseConfig(readFileSync(configPath, "utf8"), { source: configPath, env: {} });
  const db = await openDatabase(config.database.url, { poolSize: 10 });
  const storage = await createStorage(config.storage);
  return { config, db, storage };
}

if (values.child) {
  // the measured process: open, collect, report
  const { db, storage } = await open(values.child);
  const rssBefore = process.memoryUsage().rss;
  // BENCH_GC_TRACE=1: memory every 200 ms on stderr (V8 heap vs RSS, to tell slack from growth)
  const samples: string[] = [];
  const sampler = process.env.BENCH_GC_TRACE
    ? setInterval(() => {
        const m = process.memoryUsage();
        samples.push(`rss ${(m.rss / MiB).toFixed(0)} MiB, heap ${(m.heapUsed / MiB).toFixed(0)}/${(m.heapTotal / MiB).toFixed(0)} MiB`);
      }, 200)
    : undefined;
  const t = process.hrtime.bigint();
  const report = await runGarbageCollectionOnce({ db, storage, config: { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null } });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  clearInterval(sampler);
  if (samples.length) console.error(samples.join("\n"));
  await db.close();
  process.stdout.write(JSON.stringify({ seconds, rssBefore, maxRss: process.resourceUsage().maxRSS * 1024, report }));
} else {
  const n = Number(values.chunks);
  let pg: Awaited<ReturnType<typeof startPostgres>> | undefined;
  for (const kind of values.backends!.split(",") as ("sqlite" | "postgres")[]) {
    let pgClusterUrl = process.env.ATTIC_TEST_PG_URL;
    if (kind === "postgres" && !pgClusterUrl) pgClusterUrl = (pg ??= await startPostgres()).url;
    const setup = await prepareServer({ backend: { db: kind, storage: "local" }, pgClusterUrl });
    const configPath = join(setup.dir, "server.toml");
    writeFileSync(configPath, setup.configToml);
    try {
      const { db, storage } = await open(configPath);
      await migrate(db);
      const root = join(setup.dir, "storage");
      await insertOrphanChunks(db, storage, n, { localRoot: root });
      await db.close();

      const copy = mkdtempSync(join(tmpdir(), "attic-gc-ref-"));
      cpSync(root, join(copy, "storage"), { recursive: true });
      let t = process.hrtime.bigint();
      execFileSync("rm", ["-rf", join(copy, "storage")]);
      const rmSeconds = Number(process.hrtime.bigint() - t) / 1e9;
      rmSync(copy, { recursive: true, force: true });

      t = process.hrtime.bigint();
      const out = execFileSync(process.execPath, [import.meta.filename, "--child", configPath], { encoding: "utf8", maxBuffer: 16 * MiB });
      const wall = Number(process.hrtime.bigint() - t) / 1e9;
      const r = JSON.parse(out) as { seconds: number; rssBefore: number; maxRss: number; report: Parameters<typeof formatGcReport>[0] };
      if (r.report.chunks !== n) throw new Error(`expected ${n} chunks freed:\n${formatGcReport(r.report)}`);
      console.log(
        `${kind.padEnd(8)} GC of ${n} orphan chunks: ${r.seconds.toFixed(2)} s (${Math.round(n / r.seconds)} chunks/s; ` +
          `process ${wall.toFixed(2)} s with start-up), RSS ${(r.rssBefore / MiB).toFixed(0)} MiB before the run, ` +
          `${(r.maxRss / MiB).toFixed(0)} MiB peak; reference rm -rf of the same files: ${rmSeconds.toFixed(2)} s`,
      );
    } finally {
      rmSync(setup.dir, { recursive: true, force: true });
    }
  }
  pg?.stop();
}
