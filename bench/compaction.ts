// Compaction of a store where a third of the chunks are dead (issue 25's target): N chunks
// (default 100,000) of `--chunk-bytes` stored bytes each (default 8 KiB, random so incompressible)
// in packs of 64 MiB, one chunk in three removed at random (its row gone: a hole), so every pack
// is about 33 % dead and is rewritten. The store is built by this process; the GC run happens in a
// fresh child process started as atticd starts (its start line's flags), so its time and peak RSS
// (getrusage maxrss) are the compactor's alone; the sampled peaks of V8's heap and of the array
// buffers (the bytes in flight of reads and writes) say where the memory went.
// Same-run anchors: `cp` of the same pack files plus `sync` (rewriting every byte once, in the
// kernel); on S3 also the driver reading every pack and writing the live bytes (the S3 server's cost).
//
//   node bench/compaction.ts [--chunks 100000] [--chunk-bytes 8192] [--backends sqlite-local,postgres-s3] [--keep] [--profile DIR]
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { prepareServer } from "../test/helpers/server.ts";
import { buildThirdDeadStore, runCompactionChild } from "../test/helpers/compaction-store.ts";
import { parseConfig } from "../src/server/config/load.ts";
import { openDatabase } from "../src/db/connect.ts";
import { migrate } from "../src/db/migrations/index.ts";
import { createStorage } from "../src/storage/index.ts";
import { formatGcReport } from "../src/gc/index.ts";
import type { RemoteFile } from "../src/storage/types.ts";
import { backendFor, stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    chunks: { type: "string", default: "100000" },
    "chunk-bytes": { type: "string", default: "8192" },
    backends: { type: "string", default: "sqlite-local,postgres-s3" },
    /** build the store, print its config path and keep it (no run): for profiling a run by hand */
    keep: { type: "boolean", default: false },
    /** write the run's CPU and heap profiles (node --cpu-prof --heap-prof) into this folder */
    profile: { type: "string" },
  },
});
const MiB = 2 ** 20;
const PACK_SIZE = 64 * MiB;

const n = Number(values.chunks);
const chunkBytes = Number(values["chunk-bytes"]);
for (const spec of values.backends!.split(",")) {
  const backend = await backendFor(spec);
  const setup = await prepareServer({ backend });
  const configPath = join(setup.dir, "server.toml");
  writeFileSync(configPath, setup.configToml);
  try {
    const { config } = parseConfig(readFileSync(configPath, "utf8"), { source: configPath, env: {} });
    const db = await openDatabase(config.database.url, { poolSize: 10 });
    const storage = await createStorage(config.storage);
    await migrate(db);
    const local = mkdtempSync(join(tmpdir(), "attic-compact-ref-"));
    const store = await buildThirdDeadStore(db, storage, { chunks: n, chunkBytes, packSize: PACK_SIZE, copyTo: local });
    // on S3, a second anchor: the same driver reading every pack whole (ranged GETs of 8 MiB, as the
    // compactor reads runs) and writing the live bytes once (multipart), without the database: what
    // the S3 server itself costs
    let s3Seconds: number | null = null;
    if (config.storage.type === "s3") {
      const t0 = process.hrtime.bigint();
      const packs = await db.kysely.selectFrom("attic_ts_pack").select(["remote_file", "size"]).execute();
      const into = Buffer.allocUnsafe(8 * MiB);
      for (const p of packs) {
        for (let at = 0; at < Number(p.size); at += into.length) {
          const length = Math.min(into.length, Number(p.size) - at);
          for await (const piece of await storage.getRange(JSON.parse(p.remote_file) as RemoteFile, at, length)) void piece;
        }
      }
      const written: RemoteFile[] = [];
      for (let left = store.liveBytes; left > 0; left -= PACK_SIZE) {
        const { remoteFile } = storage.remoteFileFor(`${randomUUID()}.pack`);
        const size = Math.min(PACK_SIZE, left);
        await storage.put(remoteFile, Readable.from((function* () { for (let at = 0; at < size; at += MiB) yield into.subarray(0, Math.min(MiB, size - at)); })()));
        written.push(remoteFile);
      }
      s3Seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      await storage.deleteMany(written);
    }
    await storage.close?.();
    await db.close();

    // the anchor: the same bytes copied once by cp, made durable by sync
    const t = process.hrtime.bigint();
    execFileSync("cp", ["-r", local, `${local}-copy`]);
    execFileSync("sync");
    const cpSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    rmSync(local, { recursive: true, force: true });
    rmSync(`${local}-copy`, { recursive: true, force: true });

    if (values.keep) {
      console.log(`store kept: ${configPath}`);
      continue;
    }
    const profile = values.profile
      ? ["--cpu-prof", "--heap-prof", `--diagnostic-dir=${values.profile}`, `--cpu-prof-name=compaction-${spec}.cpuprofile`, `--heap-prof-name=compaction-${spec}.heapprofile`]
      : [];
    const r = await runCompactionChild(configPath, { packSize: PACK_SIZE, nodeArgs: profile });
    const c = r.report.compaction;
    if (c.chunksMoved !== store.live || c.failures !== 0) throw new Error(`expected ${store.live} chunks moved:\n${formatGcReport(r.report)}`);
    const mib = (bytes: number) => (bytes / MiB).toFixed(0);
    console.log(
      `${spec.padEnd(14)} compaction of ${n} chunks (${store.live} live, ${n - store.live} dead, ${store.packs} packs of ${PACK_SIZE / MiB} MiB): ` +
        `${r.seconds.toFixed(2)} s; ${c.packsRewritten} packs rewritten into ${c.packsWritten}, ` +
        `${mib(c.bytesRewritten)} MiB rewritten (live ${mib(store.liveBytes)} MiB), ${mib(c.bytesDeleted)} MiB of old packs deleted; ` +
        `RSS ${mib(r.rssBefore)} MiB before, ${mib(r.maxRss)} MiB peak (sampled peaks: heap ${mib(r.peak.heapUsed)}, array buffers ${mib(r.peak.arrayBuffers)} MiB); ` +
        `anchor cp+sync of all packs: ${cpSeconds.toFixed(2)} s (ratio ${(r.seconds / cpSeconds).toFixed(2)}×)` +
        (s3Seconds === null ? "" : `; S3 anchor (every pack read, the live bytes written, through the driver): ${s3Seconds.toFixed(2)} s (ratio ${(r.seconds / s3Seconds).toFixed(2)}×)`),
    );
  } finally {
    if (!values.keep) rmSync(setup.dir, { recursive: true, force: true });
  }
}
await stopBackendServices();
