// get-missing-paths for a CI-sized closure: a cache holding --objects paths, asked about
// --hashes store-path hashes (half of them present), through the real HTTP route. The issue's
// bar: under 100 ms for 10,000 hashes. Prints the median and worst of --runs requests per backend.
//
//   node bench/missing-paths.ts [--backends sqlite-local,postgres-s3] [--objects 10000] [--hashes 10000] [--runs 10]
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { createCacheViaApi, startServer } from "../test/helpers/server.ts";
import { insertNar } from "../src/db/queries/nars.ts";
import { upsertObject } from "../src/db/queries/objects.ts";
import { getCacheByName } from "../src/db/queries/caches.ts";
import { transaction } from "../src/db/connect.ts";
import { backendFor, stopBackendServices } from "./backends.ts";

const { values } = parseArgs({
  options: {
    backends: { type: "string", default: "sqlite-local" },
    objects: { type: "string", default: "10000" },
    hashes: { type: "string", default: "10000" },
    runs: { type: "string", default: "10" },
  },
});
const ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";
const storeHash = () => Array.from(randomBytes(32), (b) => ALPHABET[b % 32]).join("");

for (const spec of values.backends!.split(",")) {
  const server = await startServer({ backend: await backendFor(spec) });
  try {
    await createCacheViaApi(server, "ci");
    const cache = (await getCacheByName(server.db, "ci"))!;
    const present = Array.from({ length: Number(values.objects) }, storeHash);
    await transaction(server.db, async (tx) => {
      const narId = await insertNar(tx, { state: "V", nar_hash: `sha256:${randomBytes(32).toString("hex")}`, nar_size: 1, compression: "zstd", num_chunks: 0 });
      for (const h of present) {
        await upsertObject(tx, { cache_id: cache.id, nar_id: narId, store_path_hash: h, store_path: `/nix/store/${h}-p`, references: "[]", sigs: "[]" });
      }
    });
    const asked = [...present.slice(0, Number(values.hashes) / 2), ...Array.from({ length: Number(values.hashes) / 2 }, storeHash)];
    const times: number[] = [];
    for (let i = 0; i < Number(values.runs) + 1; i++) {
      const start = process.hrtime.bigint();
      const res = await server.fetch("/_api/v1/get-missing-paths", {
        method: "POST",
        token: server.rootToken(),
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ cache: "ci", store_path_hashes: asked }),
      });
      const body = (await res.json()) as { missing_paths: string[] };
      if (res.status !== 200 || body.missing_paths.length !== asked.length / 2) throw new Error(`unexpected answer ${res.status}`);
      if (i > 0) times.push(Number(process.hrtime.bigint() - start) / 1e6); // the first one warms up
    }
    times.sort((a, b) => a - b);
    console.log(
      `${spec}: get-missing-paths of ${asked.length} hashes (${asked.length / 2} present) against ${present.length} objects: ` +
        `median ${times[Math.floor(times.length / 2)]!.toFixed(1)} ms, worst ${times.at(-1)!.toFixed(1)} ms (bar: 100 ms)`,
    );
  } finally {
    await server.stop();
  }
}
await stopBackendServices();
