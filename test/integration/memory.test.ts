// Bounded memory through a real atticd process (started as its bin starts it, with its memory
// tuning): a 512 MiB NAR is streamed up and back down, and the process's peak RSS must stay far
// below the NAR's size. The figure to beat for a 4 GiB NAR (256 MiB) is measured by
// bench/upload-memory.ts; this bound has room for run-to-run noise and catches what matters: a
// change that buffers a NAR, or grows with its size, goes far past it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { Readable } from "node:stream";
import { spawnAtticd } from "../helpers/atticd-process.ts";
import { prepareServer } from "../helpers/server.ts";
import { atticClaims, ALL, mintHs256 } from "../helpers/tokens.ts";
import { hashNarStream, randomStorePathHash, syntheticNar } from "../helpers/nar.ts";

const MiB = 2 ** 20;
const FILE_SIZE = 512 * MiB;
const PEAK_RSS_LIMIT = 300 * MiB;

test(`a ${FILE_SIZE / MiB} MiB NAR up and down: atticd's peak RSS stays under ${PEAK_RSS_LIMIT / MiB} MiB`, async () => {
  const { narHash, narSize } = await hashNarStream(syntheticNar(FILE_SIZE));
  const setup = await prepareServer({});
  const server = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
  try {
    const auth = { authorization: `Bearer ${mintHs256(setup.secret, atticClaims("memory", { "*": ALL }))}` };
    const created = await fetch(`${server.url}/_api/v1/cache-config/big`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
    });
    assert.equal(created.status, 200, await created.text());
    const hash = randomStorePathHash();
    const res = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: {
        ...auth,
        "x-attic-nar-info": JSON.stringify({
          cache: "big", store_path_hash: hash, store_path: `/nix/store/${hash}-big`, references: [],
          system: null, deriver: null, sigs: [], ca: null, nar_hash: narHash, nar_size: narSize,
        }),
      },
      body: Readable.toWeb(Readable.from(syntheticNar(FILE_SIZE))) as ReadableStream,
      duplex: "half",
    } as RequestInit);
    const uploaded = (await res.json()) as { kind: string; file_size: number };
    assert.equal(res.status, 200, JSON.stringify(uploaded));
    assert.equal(uploaded.kind, "Uploaded");
    const afterUpload = server.peakRss();

    const nar = await fetch(`${server.url}/big/nar/${hash}.nar`, { headers: auth });
    assert.equal(nar.status, 200);
    let received = 0;
    for await (const piece of nar.body as unknown as AsyncIterable<Uint8Array>) received += piece.length;
    assert.equal(received, uploaded.file_size, "the whole stored NAR came back");

    const peak = server.peakRss();
    console.log(`peak RSS: ${(afterUpload / MiB).toFixed(0)} MiB after the upload, ${(peak / MiB).toFixed(0)} MiB overall`);
    assert.ok(peak > 0, "RSS was sampled");
    assert.ok(peak < PEAK_RSS_LIMIT, `peak RSS ${(peak / MiB).toFixed(0)} MiB for a ${FILE_SIZE / MiB} MiB NAR`);
  } finally {
    await server.stop();
    rmSync(setup.dir, { recursive: true, force: true });
  }
});
