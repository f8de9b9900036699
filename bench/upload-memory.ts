// A very large NAR through a real atticd process in bounded memory: a synthetic single-file NAR
// of --size bytes (default 4 GiB, incompressible AES-CTR keystream) is generated on the fly,
// hashed in a first pass, then streamed to PUT /_api/v1/upload-path and read back through the
// .nar route. Prints throughput and the server's peak RSS; as the reference in the same run, the
// same bytes through `zstd -<level>` (the compression the server applies per chunk).
//
//   node bench/upload-memory.ts [--size 4294967296] [--level 8] [--backend sqlite-local|postgres-s3|...]
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { Readable } from "node:stream";
import { spawnAtticd } from "../test/helpers/atticd-process.ts";
import { prepareServer } from "../test/helpers/server.ts";
import { backendFor, stopBackendServices } from "./backends.ts";
import { atticClaims, ALL, mintHs256 } from "../test/helpers/tokens.ts";
import { hashNarStream, randomStorePathHash, syntheticNar as syntheticNarOf } from "../test/helpers/nar.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: String(4 * 2 ** 30) },
    level: { type: "string", default: "8" },
    backend: { type: "string", default: "sqlite-local" },
  },
});
const fileSize = Number(values.size);
const MiB = 2 ** 20;

const syntheticNar = () => syntheticNarOf(fileSize);

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

let t = process.hrtime.bigint();
const { narHash, narSize } = await hashNarStream(syntheticNar());
console.log(`synthetic NAR: ${(narSize / MiB).toFixed(0)} MiB, generated and hashed in ${seconds(t).toFixed(1)} s`);

// reference: the same bytes through the zstd CLI at the server's level
t = process.hrtime.bigint();
const zstd = spawn("zstd", [`-${values.level}`, "-T1", "-c"], { stdio: ["pipe", "pipe", "inherit"] });
let zstdOut = 0;
zstd.stdout.on("data", (b: Buffer) => (zstdOut += b.length));
await new Promise<void>((resolve, reject) => {
  Readable.from(syntheticNar()).pipe(zstd.stdin);
  zstd.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`zstd exited ${code}`))));
});
const zstdSeconds = seconds(t);

const setup = await prepareServer({ backend: await backendFor(values.backend!), compression: { type: "zstd", level: Number(values.level) } });
console.log(`backend ${values.backend}`);
const server = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
try {
  const token = mintHs256(setup.secret, atticClaims("bench", { "*": ALL }));
  const auth = { authorization: `Bearer ${token}` };
  const created = await fetch(`${server.url}/_api/v1/cache-config/big`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  if (!created.ok) throw new Error(`create cache: ${created.status}`);
  const storePathHash = randomStorePathHash();
  // the server's own memory gauges, sampled while the transfers run: where the peak comes from
  const peaks = new Map<string, number>();
  const sampler = setInterval(() => {
    fetch(`${server.url}/metrics`)
      .then((r) => r.text())
      .then((text) => {
        for (const m of text.matchAll(/^(process_resident_memory_bytes|nodejs_\w+_bytes) (\d+)$/gm)) {
          peaks.set(m[1]!, Math.max(peaks.get(m[1]!) ?? 0, Number(m[2])));
        }
      })
      .catch(() => {});
  }, 250);
  t = process.hrtime.bigint();
  const res = await fetch(`${server.url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      ...auth,
      "x-attic-nar-info": JSON.stringify({
        cache: "big",
        store_path_hash: storePathHash,
        store_path: `/nix/store/${storePathHash}-big`,
        references: [],
        system: null,
        deriver: null,
        sigs: [],
        ca: null,
        nar_hash: narHash,
        nar_size: narSize,
      }),
    },
    body: Readable.toWeb(Readable.from(syntheticNar())) as ReadableStream,
    duplex: "half",
  } as RequestInit);
  const text = await res.text();
  if (!res.ok) throw new Error(`upload: ${res.status} ${text}`);
  const uploadSeconds = seconds(t);
  const rssAfterUpload = server.peakRss();

  t = process.hrtime.bigint();
  const nar = await fetch(`${server.url}/big/nar/${storePathHash}.nar`, { headers: auth });
  let downloaded = 0;
  for await (const piece of nar.body as unknown as AsyncIterable<Uint8Array>) downloaded += piece.length;
  const downloadSeconds = seconds(t);

  const rate = (s: number) => `${(narSize / MiB / s).toFixed(1)} MiB/s`;
  console.log(`upload   ${uploadSeconds.toFixed(1)} s  ${rate(uploadSeconds)}   server peak RSS ${(rssAfterUpload / MiB).toFixed(0)} MiB  ${text}`);
  console.log(`download ${downloadSeconds.toFixed(1)} s  ${rate(downloadSeconds)}   ${(downloaded / MiB).toFixed(0)} MiB compressed`);
  console.log(`zstd -${values.level} -T1 (reference) ${zstdSeconds.toFixed(1)} s  ${rate(zstdSeconds)}  ${(zstdOut / MiB).toFixed(0)} MiB`);
  clearInterval(sampler);
  console.log(`server gauges, highest sampled: ${[...peaks].map(([k, v]) => `${k} ${(v / MiB).toFixed(0)} MiB`).join(", ")}`);
  console.log(`server peak RSS overall ${(server.peakRss() / MiB).toFixed(0)} MiB for a ${(narSize / MiB).toFixed(0)} MiB NAR`);
} finally {
  await server.stop();
  rmSync(setup.dir, { recursive: true, force: true });
  await stopBackendServices();
}
