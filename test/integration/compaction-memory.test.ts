// The compaction's memory bound (issue 25: peak RSS under 256 MiB for a store where a third of the
// chunks are dead). A garbage-collection run over 40,000 chunks of 8 KiB in packs of 64 MiB (a third
// dead) runs in a child process started as atticd starts; its peak RSS must stay under 256 MiB, and
// the bytes held in buffers (array buffers, sampled) under what the compactor holds in flight by
// design: one read buffer of 8 MiB, plus on local storage one 1 MiB piece being appended, on S3 the
// multipart upload's part buffers (2 parts in flight and one being filled: 3 × 5 MiB, the streamed part size). Buffers
// allocated per read or per part and left to the garbage collector (which frees them late: up to
// 64 MiB of them and more) break the second bound long before the first.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { backendName, backendsFromEnv, startServer } from "../helpers/server.ts";
import { buildThirdDeadStore, runCompactionChild } from "../helpers/compaction-store.ts";
import { join } from "node:path";
import { writeFileSync } from "node:fs";

const MiB = 2 ** 20;
const PACK_SIZE = 64 * MiB;
const PEAK_RSS_LIMIT = 256 * MiB;

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

for (const backend of backends) {
  describe(`compaction memory (${backendName(backend)})`, () => {
    test("compacting 40,000 chunks, a third dead: peak RSS under 256 MiB, buffers within the compactor's bytes in flight", async (t) => {
      const s = await startServer({ backend });
      try {
        const store = await buildThirdDeadStore(s.db, s.storage, { chunks: 40_000, chunkBytes: 8192, packSize: PACK_SIZE });
        const configPath = join(s.dir, "gc.toml");
        writeFileSync(configPath, s.configToml);
        const run = await runCompactionChild(configPath, { packSize: PACK_SIZE });
        assert.equal(run.report.compaction.chunksMoved, store.live);
        assert.equal(run.report.compaction.failures, 0);
        const inFlight = backend.storage === "s3" ? 8 * MiB + 3 * 5 * MiB : 8 * MiB + MiB;
        // on S3 the buffers measured 51 MiB with 2 parts of 8 MiB in flight and 57 with 4 (December 2026):
        // beyond the read buffer and the parts, some 19 MiB not yet attributed (the S3 client's
        // responses being read), so S3 gets more slack; the bound is still 16 MiB under the 72 it was
        const slack = backend.storage === "s3" ? 24 * MiB : 16 * MiB;
        t.diagnostic(
          `peak RSS ${(run.maxRss / MiB).toFixed(0)} MiB (${(run.rssBefore / MiB).toFixed(0)} before), array buffers ${(run.peak.arrayBuffers / MiB).toFixed(0)} MiB ` +
            `(bound ${((inFlight + slack) / MiB).toFixed(0)}), heap ${(run.peak.heapUsed / MiB).toFixed(0)} MiB, ${run.seconds.toFixed(1)} s`,
        );
        assert.ok(run.peak.arrayBuffers < inFlight + slack, `array buffers peaked at ${(run.peak.arrayBuffers / MiB).toFixed(0)} MiB`);
        assert.ok(run.maxRss < PEAK_RSS_LIMIT, `peak RSS ${(run.maxRss / MiB).toFixed(0)} MiB`);
      } finally {
        await s.stop();
      }
    });
  });
}
