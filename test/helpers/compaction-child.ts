// The child of runCompactionChild (compaction-store.ts): one garbage-collection run over the
// store of the config file given, its memory sampled; prints a CompactionRun as JSON.
import { readFileSync } from "node:fs";
import { parseConfig } from "../../src/server/config/load.ts";
import { openDatabase } from "../../src/db/connect.ts";
import { createStorage } from "../../src/storage/index.ts";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";

const [configPath, packSize] = process.argv.slice(2) as [string, string];
const { config } = parseConfig(readFileSync(configPath, "utf8"), { source: configPath, env: {} });
const db = await openDatabase(config.database.url, { poolSize: 10 });
const storage = await createStorage(config.storage);
const rssBefore = process.memoryUsage().rss;
const peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const sample = (): void => {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
};
const sampler = setInterval(sample, 10);
const t = process.hrtime.bigint();
const report = await runGarbageCollectionOnce({
  db,
  storage,
  config: {
    defaultRetentionPeriod: 0,
    staleGracePeriod: 3600,
    maxSize: null,
    compaction: { threshold: 0.1, maxRewriteBytes: 4 * 2 ** 30, packSize: Number(packSize), retiredGraceMs: 0, packLoose: false },
  },
});
const seconds = Number(process.hrtime.bigint() - t) / 1e9;
clearInterval(sampler);
sample();
await storage.close?.();
await db.close();
process.stdout.write(JSON.stringify({ seconds, rssBefore, peak, maxRss: process.resourceUsage().maxRSS * 1024, report }));
