// The data plane against a real server: upload-path in both modes, verification, dedup across
// caches, proof of possession, chunking thresholds, concurrent identical uploads, narinfo and
// NAR download round trips for every compression, get-missing-paths.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, randomStorePathHash, type NarFixture } from "../helpers/nar.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { ALL } from "../helpers/tokens.ts";
import { PublicKey, fingerprint } from "../../src/nix/signing.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { WorkerPool, replaceWorkerPool } from "../../src/workers/pool.ts";

async function narinfoOf(s: TestServer, cache: string, hash: string, token?: string) {
  const res = await s.fetch(`/${cache}/${hash}.narinfo`, { token });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get("content-type"), "text/x-nix-narinfo");
  return { text: await res.text() };
}

async function downloadNar(s: TestServer, cache: string, hash: string, token?: string): Promise<{ body: Buffer; compression: string }> {
  const info = parseNarInfo((await narinfoOf(s, cache, hash, token)).text);
  const res = await s.fetch(`/${cache}/${info.url}`, { token, redirect: "follow" });
  assert.equal(res.status, 200);
  const raw = Buffer.from(await res.arrayBuffer());
  return { body: await decompressWithCli(info.compression ?? "none", raw), compression: info.compression ?? "none" };
}

async function resultOf(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as Record<string, unknown>;
}

const backends = backendsFromEnv();
for (const backend of backends) {
  describe(`data plane (${backendName(backend)})`, () => {
    let s: TestServer;
    let root: string;
    before(async () => {
      s = await startServer({ backend, chunking: { threshold: 65536, min: 16384, avg: 65536, max: 262144 } });
      root = s.rootToken();
      await createCacheViaApi(s, "one");
      await createCacheViaApi(s, "two");
      await createCacheViaApi(s, "pub", { is_public: true });
    });
    after(async () => s.stop());

    test("header mode, chunked NAR: Uploaded, narinfo signed, NAR round-trips", async () => {
      const fx = narFixture(seededBytes(1_500_000, 1), "big");
      const r = await resultOf(await uploadNar(s, fx, { cache: "one", token: root, references: [`${fx.storePathHash}-big`] }));
      assert.equal(r.kind, "Uploaded");
      assert.equal(typeof r.file_size, "number");
      assert.equal(r.frac_deduplicated, 0);
      const { text } = await narinfoOf(s, "one", fx.storePathHash, root);
      const info = parseNarInfo(text);
      assert.equal(info.storePath, fx.storePath);
      assert.equal(info.url, `nar/${fx.storePathHash}.nar`);
      assert.equal(info.compression, "zstd");
      assert.equal(info.narHash, fx.narHash);
      assert.equal(info.narSize, fx.narSize);
      assert.deepEqual(info.references, [`${fx.storePathHash}-big`]);
      assert.equal(info.sigs.length, 1);
      assert.deepEqual(text.split("\n").map((l) => l.split(":")[0]).filter(Boolean), ["StorePath", "URL", "Compression", "NarHash", "NarSize", "References", "Sig"]);
      const cfg = (await (await s.fetch("/_api/v1/cache-config/one", { token: root })).json()) as { public_key: string };
      const fp = fingerprint(fx.storePath, NixHash.parse(fx.narHash), fx.narSize, [fx.storePath]);
      assert.ok(PublicKey.parse(cfg.public_key).verify(fp, info.sigs[0]!), "the cache signature verifies");
      const { body } = await downloadNar(s, "one", fx.storePathHash, root);
      assert.equal(body.length, fx.narSize);
      assert.ok(body.equals(fx.nar));
      const nar = await s.fetch(`/one/nar/${fx.storePathHash}.nar`, { token: root });
      assert.equal(nar.headers.get("content-type"), "application/x-nix-nar");
      await nar.arrayBuffer();
    });

    test("preamble mode, unchunked small NAR", async () => {
      const fx = narFixture(Buffer.from("hello world\n"), "small");
      const r = await resultOf(await uploadNar(s, fx, { cache: "one", token: root, mode: "preamble" }));
      assert.equal(r.kind, "Uploaded");
      assert.equal(r.frac_deduplicated, null);
      const { body } = await downloadNar(s, "one", fx.storePathHash, root);
      assert.ok(body.equals(fx.nar));
    });

    test("the same NAR in another cache is Deduplicated and served from both", async () => {
      const fx = narFixture(seededBytes(400_000, 2), "dedup");
      await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
      const other = { ...fx, storePathHash: randomStorePathHash() };
      other.storePath = `/nix/store/${other.storePathHash}-dedup`;
      const r = await resultOf(await uploadNar(s, other, { cache: "two", token: root }));
      assert.deepEqual(r, { kind: "Deduplicated", frac_deduplicated: null });
      assert.ok((await downloadNar(s, "two", other.storePathHash, root)).body.equals(fx.nar));
      assert.ok((await downloadNar(s, "one", fx.storePathHash, root)).body.equals(fx.nar));
      // re-pushing the same path upserts without error
      const again = await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
      assert.equal(again.kind, "Deduplicated");
    });

    test("chunk-level dedup: a NAR sharing most chunks reports frac_deduplicated", async () => {
      const base = seededBytes(2_000_000, 3);
      const a = narFixture(base, "a");
      await resultOf(await uploadNar(s, a, { cache: "one", token: root }));
      const changed = Buffer.concat([base, Buffer.from("tail")]);
      const b = narFixture(changed, "b");
      const r = await resultOf(await uploadNar(s, b, { cache: "two", token: root }));
      assert.equal(r.kind, "Uploaded");
      assert.ok((r.frac_deduplicated as number) > 0.5, `frac_deduplicated ${r.frac_deduplicated}`);
      assert.ok((await downloadNar(s, "two", b.storePathHash, root)).body.equals(b.nar));
    });

    for (const [what, size] of [["chunked", 300_000], ["unchunked", 5_000]] as const) {
      test(`${what}: wrong hash, short body and wrong size are 400 and leave nothing visible`, async () => {
        const fx = narFixture(seededBytes(size, 10 + size), "bad");
        const cases: { name: string; opts: Parameters<typeof uploadNar>[2] }[] = [
          { name: "hash", opts: { cache: "one", token: root, narHash: `sha256:${"ab".repeat(32)}` } },
          { name: "short", opts: { cache: "one", token: root, body: fx.nar.subarray(0, fx.nar.length - 100) } },
          { name: "size", opts: { cache: "one", token: root, narSize: fx.narSize + 8 } },
        ];
        for (const c of cases) {
          const res = await uploadNar(s, fx, c.opts);
          assert.equal(res.status, 400, `${c.name}: ${await res.clone().text()}`);
          const body = (await res.json()) as { error: string; message: string };
          assert.equal(body.error, "RequestError", c.name);
          assert.match(body.message, /^General request error: (Bad NAR Hash or Size|Bad chunk hash or size|Invalid NAR)/, c.name);
          assert.equal((await s.fetch(`/one/${fx.storePathHash}.narinfo`, { token: root })).status, 404, c.name);
          const missing = (await (await s.fetch("/_api/v1/get-missing-paths", {
            method: "POST", token: root, headers: { "content-type": "application/json" },
            body: JSON.stringify({ cache: "one", store_path_hashes: [fx.storePathHash] }),
          })).json()) as { missing_paths: string[] };
          assert.deepEqual(missing.missing_paths, [fx.storePathHash], c.name);
        }
        // then the right upload still works
        const ok = await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
        assert.equal(ok.kind, "Uploaded");
      });
    }

    test("extra bytes after the NAR are ignored", async () => {
      const fx = narFixture(seededBytes(10_000, 20), "extra");
      const r = await resultOf(await uploadNar(s, fx, { cache: "one", token: root, body: Buffer.concat([fx.nar, Buffer.from("trailing junk")]) }));
      assert.equal(r.kind, "Uploaded");
      assert.ok((await downloadNar(s, "one", fx.storePathHash, root)).body.equals(fx.nar));
    });

    test("upload-info errors: missing header, bad preamble size, preamble too large", async () => {
      let res = await s.fetch("/_api/v1/upload-path", { method: "PUT", token: root, body: "x" });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { message: string }).message, "General request error: X-Attic-Nar-Info must be set");
      res = await s.fetch("/_api/v1/upload-path", { method: "PUT", token: root, headers: { "x-attic-nar-info-preamble-size": "abc" }, body: "x" });
      assert.equal(res.status, 400);
      res = await s.fetch("/_api/v1/upload-path", { method: "PUT", token: root, headers: { "x-attic-nar-info-preamble-size": String(2 * 1024 * 1024) }, body: "x" });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { message: string }).message, "General request error: Upload info is too large");
      res = await s.fetch("/_api/v1/upload-path", { method: "PUT", token: root, headers: { "x-attic-nar-info-preamble-size": "100" }, body: "short" });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { message: string }).message, "General request error: Upload info doesn't match specified size");
    });

    test("push permission: anonymous on private 401, pull-only 403", async () => {
      const fx = narFixture(Buffer.from("perm"), "perm");
      assert.equal((await uploadNar(s, fx, { cache: "one" })).status, 401);
      assert.equal((await uploadNar(s, fx, { cache: "one", token: s.token({ one: { r: 1 } }) })).status, 403);
      assert.equal((await uploadNar(s, fx, { cache: "pub" })).status, 403);
      assert.equal((await uploadNar(s, fx, { cache: "one", token: s.token({ one: { w: 1 } }) })).status, 200);
    });

    test("a garbage body with a matching hash is rejected as an invalid NAR", async () => {
      const junk = seededBytes(5000, 99);
      const fx: NarFixture = {
        nar: junk,
        narHash: `sha256:${createHash("sha256").update(junk).digest("hex")}`,
        narSize: junk.length,
        storePathHash: randomStorePathHash(),
        storePath: "",
      };
      fx.storePath = `/nix/store/${fx.storePathHash}-junk`;
      const res = await uploadNar(s, fx, { cache: "one", token: root });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { message: string }).message, /Invalid NAR/);
    });

    test("a NAR repeating one block (equal chunks in one batch and across batches): each stored once, all holds released", async () => {
      const block = seededBytes(300_000, 31);
      const fx = narFixture(Buffer.concat(Array.from({ length: 8 }, () => block)), "repeats");
      const r = await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
      assert.equal(r.kind, "Uploaded");
      assert.ok((r.frac_deduplicated as number) > 0.5, `repeats count as deduplicated: ${r.frac_deduplicated}`);
      assert.ok((await downloadNar(s, "one", fx.storePathHash, root)).body.equals(fx.nar));
      const nar = await s.db.kysely.selectFrom("nar").select(["id", "num_chunks"]).where("nar_hash", "=", fx.narHash).executeTakeFirstOrThrow();
      const refs = await s.db.kysely
        .selectFrom("chunkref")
        .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
        .select(["chunk.id", "chunk.chunk_hash", "chunk.holders_count"])
        .where("chunkref.nar_id", "=", nar.id)
        .execute();
      assert.equal(refs.length, nar.num_chunks);
      assert.ok(refs.length > 30, `${refs.length} chunks`);
      assert.equal(new Set(refs.map((c) => c.id)).size, new Set(refs.map((c) => c.chunk_hash)).size, "one row per distinct chunk");
      assert.ok(new Set(refs.map((c) => c.id)).size < refs.length / 2, "repeats share rows");
      assert.deepEqual([...new Set(refs.map((c) => Number(c.holders_count)))], [0], "no hold left behind");
    });

    test("20 concurrent uploads of the same NAR all succeed and store it once", async () => {
      const content = seededBytes(800_000, 7);
      const fxs = Array.from({ length: 20 }, (_, i) => narFixture(content, `conc${i}`));
      const results = await Promise.all(fxs.map((fx) => uploadNar(s, fx, { cache: "two", token: root }).then(resultOf)));
      assert.equal(results.filter((r) => r.kind === "Uploaded").length, 1, JSON.stringify(results));
      const nars = await s.db.kysely.selectFrom("nar").select(["id"]).where("nar_hash", "=", fxs[0]!.narHash).execute();
      assert.equal(nars.length, 1);
      for (const fx of fxs.slice(0, 3)) assert.ok((await downloadNar(s, "two", fx.storePathHash, root)).body.equals(fxs[0]!.nar));
    });

    test("get-missing-paths: exactly the missing subset, duplicates collapsed, 10,000 hashes", async () => {
      const fx = narFixture(Buffer.from("present"), "present");
      await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
      const hashes = Array.from({ length: 10_000 }, () => randomStorePathHash());
      const started = performance.now();
      const res = await s.fetch("/_api/v1/get-missing-paths", {
        method: "POST", token: root, headers: { "content-type": "application/json" },
        body: JSON.stringify({ cache: "one", store_path_hashes: [...hashes, fx.storePathHash, hashes[0], fx.storePathHash] }),
      });
      const ms = performance.now() - started;
      const body = (await res.json()) as { missing_paths: string[] };
      assert.equal(body.missing_paths.length, new Set(hashes).size);
      assert.ok(!body.missing_paths.includes(fx.storePathHash));
      assert.deepEqual(new Set(body.missing_paths), new Set(hashes));
      console.log(`get-missing-paths with 10,002 hashes: ${ms.toFixed(0)} ms`);
      assert.ok(ms < 5000);
    });

    test("public caches serve narinfo and NAR anonymously with the visibility header", async () => {
      const fx = narFixture(seededBytes(100_000, 8), "pubnar");
      await resultOf(await uploadNar(s, fx, { cache: "pub", token: root }));
      const res = await s.fetch(`/pub/${fx.storePathHash}.narinfo`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-attic-cache-visibility"), "public");
      assert.ok((await downloadNar(s, "pub", fx.storePathHash)).body.equals(fx.nar));
      // HEAD on a nar sends no body
      const head = await s.fetch(`/pub/nar/${fx.storePathHash}.nar`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
    });

    test("HEAD of a NAR reads and changes nothing: GET's headers, no download, no access, no storage check", async () => {
      const fx = narFixture(seededBytes(700_000, 10), "headonly");
      await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
      const url = `/one/nar/${fx.storePathHash}.nar`;
      const state = async () => ({
        object: await s.db.kysely.selectFrom("object").select(["download_count", "last_accessed_at"]).where("store_path_hash", "=", fx.storePathHash).executeTakeFirstOrThrow(),
        daily: await s.db.kysely.selectFrom("attic_ts_daily").select(["downloads", "downloaded_bytes"]).execute(),
        metric: (await s.app.metrics.render()).split("\n").find((l) => l.startsWith("attic_nar_downloads_total ")) ?? "",
      });
      const before = await state();
      // a storage check: `has` of a chunk file, or the one-byte ranged read that checks a pack (docs/packs.md)
      let storageChecks = 0;
      const has = s.storage.has.bind(s.storage);
      const getRange = s.storage.getRange.bind(s.storage);
      s.storage.has = (file) => ((storageChecks += 1), has(file));
      s.storage.getRange = (...args) => ((storageChecks += 1), getRange(...args));
      try {
        const head = await s.fetch(url, { method: "HEAD", token: root });
        assert.equal(head.status, 200);
        assert.equal(await head.text(), "");
        assert.equal(head.headers.get("content-type"), "application/x-nix-nar");
        assert.equal(head.headers.get("accept-ranges"), "bytes");
        const length = Number(head.headers.get("content-length"));
        assert.equal(storageChecks, 0, "no chunk file checked for a HEAD");
        assert.deepEqual(await state(), before, "a HEAD is no download and no access");
        // the errors a GET would answer
        assert.equal((await s.fetch(url, { method: "HEAD" })).status, 401);
        assert.equal((await s.fetch(`/one/nar/${randomStorePathHash()}.nar`, { method: "HEAD", token: root })).status, 404);
        assert.equal((await s.fetch(url, { method: "HEAD", token: s.token({ two: { r: 1 } }) })).status, 401);
        // the GET: the same length, and it counts
        const get = await s.fetch(url, { token: root });
        assert.equal(get.status, 200);
        assert.equal((await get.arrayBuffer()).byteLength, length);
        assert.ok(storageChecks > 0, "a GET checks the chunk files");
        // a NAR in one pack: the body's ranged read, opened before the first byte, is its check too
        const nar = await s.db.kysely.selectFrom("nar").select("id").where("nar_hash", "=", fx.narHash).executeTakeFirstOrThrow();
        const packs = await s.db.kysely.selectFrom("chunkref").innerJoin("chunk", "chunk.id", "chunkref.chunk_id").select("chunk.pack_id").distinct().where("chunkref.nar_id", "=", nar.id).execute();
        if (packs.length === 1 && packs[0]!.pack_id !== null) assert.equal(storageChecks, 1, "one ranged read serves and checks a NAR in one pack");
        const after = await state();
        assert.equal(Number(after.object.download_count), Number(before.object.download_count ?? 0) + 1);
        assert.notEqual(after.object.last_accessed_at, null);
      } finally {
        s.storage.has = has;
        s.storage.getRange = getRange;
      }
    });

    test("a NAR with a missing chunk is 503 IncompleteNar", async () => {
      const fx = narFixture(seededBytes(600_000, 9), "incomplete");
      await resultOf(await uploadNar(s, fx, { cache: "one", token: root }));
      const row = await s.db.kysely.selectFrom("nar").select("id").where("nar_hash", "=", fx.narHash).executeTakeFirstOrThrow();
      const ref = await s.db.kysely.selectFrom("chunkref").select(["id", "chunk_id"]).where("nar_id", "=", row.id).where("seq", "=", 1).executeTakeFirstOrThrow();
      await s.db.kysely.updateTable("chunkref").set({ chunk_id: null }).where("id", "=", ref.id).execute();
      const res = await s.fetch(`/one/nar/${fx.storePathHash}.nar`, { token: root });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, "IncompleteNar");
      // and such a NAR is not used for dedup: uploading it again creates a complete one
      const again = { ...fx, storePathHash: randomStorePathHash() };
      again.storePath = `/nix/store/${again.storePathHash}-incomplete`;
      const r = await resultOf(await uploadNar(s, again, { cache: "one", token: root }));
      assert.equal(r.kind, "Uploaded");
      assert.ok((await downloadNar(s, "one", again.storePathHash, root)).body.equals(fx.nar));
    });
  });
}

describe("data plane options", () => {
  for (const compression of ["zstd", "xz", "brotli", "none"] as const) {
    test(`compression ${compression}: multi-chunk NARs are served as a valid stream for the announced Compression`, async () => {
      const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, compression: { type: compression } });
      try {
        await createCacheViaApi(s, "c");
        const fx = narFixture(seededBytes(1_200_000, 11), "multi");
        const r = await resultOf(await uploadNar(s, fx, { cache: "c", token: s.rootToken() }));
        assert.equal(r.kind, "Uploaded");
        const { body, compression: announced } = await downloadNar(s, "c", fx.storePathHash, s.rootToken());
        assert.equal(announced, compression === "brotli" ? "none" : compression);
        assert.ok(body.equals(fx.nar), "decoded NAR equals the original");
        const single = narFixture(Buffer.from("x"), "single");
        await resultOf(await uploadNar(s, single, { cache: "c", token: s.rootToken() }));
        const one = await downloadNar(s, "c", single.storePathHash, s.rootToken());
        assert.equal(one.compression, compression === "brotli" ? "br" : compression);
        assert.ok(one.body.equals(single.nar));
      } finally {
        await s.stop();
      }
    });
  }

  test("a CPU worker crashing mid-upload: 500, nothing visible or half-written, and the next upload works", async () => {
    // the worker passing the NAR crashes when asked for the first batch's frames
    const crashing = new WorkerPool({ size: 2, url: new URL("../helpers/crashing-worker.ts", import.meta.url) });
    const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 } });
    const shared = replaceWorkerPool(crashing);
    try {
      await createCacheViaApi(s, "c");
      const fx = narFixture(seededBytes(1_200_000, 14), "crash");
      const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
      const text = await res.text();
      assert.equal(res.status, 500, text);
      assert.equal(JSON.parse(text).error, "InternalServerError");
      replaceWorkerPool(shared);

      assert.equal((await s.fetch(`/c/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status, 404);
      assert.equal((await s.db.kysely.selectFrom("object").select("id").execute()).length, 0);
      assert.equal((await s.db.kysely.selectFrom("nar").select("id").execute()).length, 0, "the failed NAR row is removed");
      const chunks = await s.db.kysely.selectFrom("chunk").select(["state", "holders_count"]).execute();
      assert.deepEqual(chunks.filter((c) => c.state !== "V" || c.holders_count > 0), [], "no chunk is left pending or held");
      // chunks stored before the crash stay as valid, unheld rows for GC; no file lacks a row
      const files = readdirSync(join(s.dir, "storage"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name !== "VERSION");
      assert.deepEqual(files.map((e) => e.name).filter((name) => !name.endsWith(".chunk")), [], "no temp file is left");
      assert.equal(files.length, chunks.length);

      await resultOf(await uploadNar(s, fx, { cache: "c", token: s.rootToken() }));
      assert.ok((await downloadNar(s, "c", fx.storePathHash, s.rootToken())).body.equals(fx.nar));
    } finally {
      replaceWorkerPool(shared);
      await crashing.close();
      await s.stop();
    }
  });

  test("a CPU worker dying mid-download (chunk files read whole): that body breaks off, nothing is marked lost, the next download is served", async () => {
    // one object per chunk: the download reads its chunk files whole, in batches, on the pool
    const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, storageExtra: "packs = false" });
    // a pool of one worker that crashes on its second batch of reads (the first one's bytes sent)
    const crashing = new WorkerPool({ size: 1, url: new URL("../helpers/read-crashing-worker.ts", import.meta.url) });
    let shared: WorkerPool | null = null;
    try {
      await createCacheViaApi(s, "c");
      // some 45 chunk files: more than one read-ahead (32), so the reads take two batches at least
      const big = narFixture(seededBytes(3_000_000, 15), "big");
      const small = narFixture(seededBytes(150_000, 16), "small");
      for (const fx of [big, small]) await resultOf(await uploadNar(s, fx, { cache: "c", token: s.rootToken() }));
      shared = replaceWorkerPool(crashing);

      const info = parseNarInfo((await narinfoOf(s, "c", big.storePathHash, s.rootToken())).text);
      const res = await s.fetch(`/c/${info.url}`, { token: s.rootToken() });
      assert.equal(res.status, 200, "the checks before the first byte passed");
      await assert.rejects(res.arrayBuffer(), "the body breaks off: never a short NAR that looks whole");
      const states = await s.db.kysely.selectFrom("chunk").select("state").execute();
      assert.deepEqual([...new Set(states.map((c) => c.state))], ["V"], "a dead worker is not a lost file");

      // the pool replaced its worker: the small NAR's reads (one batch) are served by the new one
      assert.ok((await downloadNar(s, "c", small.storePathHash, s.rootToken())).body.equals(small.nar));
    } finally {
      if (shared) replaceWorkerPool(shared);
      await crashing.close();
      await s.stop();
    }
  });

  test("threshold 0 never chunks; proof of possession off dedups without reading the body", async () => {
    const s = await startServer({ chunking: { threshold: 0, min: 16384, avg: 65536, max: 262144 }, top: "require-proof-of-possession = false" });
    try {
      await createCacheViaApi(s, "a");
      await createCacheViaApi(s, "b");
      const fx = narFixture(seededBytes(700_000, 12), "whole");
      await resultOf(await uploadNar(s, fx, { cache: "a", token: s.rootToken() }));
      const nar = await s.db.kysely.selectFrom("nar").select(["num_chunks"]).where("nar_hash", "=", fx.narHash).executeTakeFirstOrThrow();
      assert.equal(nar.num_chunks, 1);
      const other = { ...fx, storePathHash: randomStorePathHash() };
      other.storePath = `/nix/store/${other.storePathHash}-whole`;
      const r = await resultOf(await uploadNar(s, other, { cache: "b", token: s.rootToken(), body: Buffer.alloc(0) }));
      assert.deepEqual(r, { kind: "Deduplicated", frac_deduplicated: null });
    } finally {
      await s.stop();
    }
  });

  test("proof of possession on: dedup with a wrong body is refused", async () => {
    const s = await startServer();
    try {
      await createCacheViaApi(s, "a");
      await createCacheViaApi(s, "b");
      const fx = narFixture(seededBytes(200_000, 13), "pop");
      await resultOf(await uploadNar(s, fx, { cache: "a", token: s.rootToken() }));
      const res = await uploadNar(s, { ...fx, storePathHash: randomStorePathHash() }, { cache: "b", token: s.rootToken(), body: Buffer.alloc(0) });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { message: string }).message, "General request error: Bad NAR Hash or Size");
    } finally {
      await s.stop();
    }
  });
});

void ALL;
