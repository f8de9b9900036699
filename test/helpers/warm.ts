// A first run of atticd that fills Node's compile cache (SOURCE_COMPILE_CACHE, atticd-process.ts)
// for every module a push loads: the main thread's, and its CPU workers' (they start on the first
// upload). A measured atticd started after it weighs what the installed JavaScript does, without
// Node's type stripper in any thread, as every start from source after the first does.
import { createHash } from "node:crypto";
import { fileNar, randomStorePathHash, seededBytes } from "./nar.ts";

/** Push one small chunked NAR (2 MiB, above any test's chunking threshold) through the server at `url`. */
export async function warmWorkers(url: string, token: string): Promise<void> {
  const auth = { authorization: `Bearer ${token}` };
  const created = await fetch(`${url}/_api/v1/cache-config/warm-up`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  if (created.status !== 200) throw new Error(`warm-up cache: ${created.status} ${await created.text()}`);
  const nar = fileNar(seededBytes(2 * 1024 * 1024, 4242));
  const hash = randomStorePathHash();
  const info = {
    cache: "warm-up",
    store_path_hash: hash,
    store_path: `/nix/store/${hash}-warm-up`,
    references: [],
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: `sha256:${createHash("sha256").update(nar).digest("hex")}`,
    nar_size: nar.length,
  };
  const res = await fetch(`${url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: { ...auth, "x-attic-nar-info": JSON.stringify(info), "content-type": "application/octet-stream" },
    body: nar,
  });
  if (res.status !== 200) throw new Error(`warm-up push: ${res.status} ${await res.text()}`);
}
