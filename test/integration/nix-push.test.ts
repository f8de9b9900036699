// Nix's binary-cache protocol on the server, with requests as Nix sends them (issue 17): bad
// pushes (NarHash mismatch, a narinfo for a NAR never sent, a truncated NAR, a NAR over the
// limit, staging full) answer a 4xx/503 in the JSON shape, leave nothing visible and nothing
// behind after GC; staged NARs without a narinfo are reaped; Range answers; the uploaded file's
// URL served while its path is in the cache; build logs and realisations with their
// permissions, gone with their cache.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import zlib from "node:zlib";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, type NarFixture } from "../helpers/nar.ts";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";
import { compressBuffer } from "../../src/compression/index.ts";
import { decodeNixFile } from "../../src/compression/nix-file.ts";
import { NixHash } from "../../src/nix/hash.ts";

const BACKENDS = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);
const CHUNKED = { threshold: 1, min: 1024, avg: 4096, max: 16384 };

/** The file name and narinfo Nix would write for `fx` compressed as `file` with `compression`. */
function pushed(fx: NarFixture, file: Buffer, compression: string, over: Record<string, string> = {}) {
  const fileHash = NixHash.fromDigest("sha256", createHash("sha256").update(file).digest());
  const ext = { none: "", xz: ".xz", zstd: ".zst", br: ".br", bzip2: ".bz2" }[compression] ?? "";
  const name = `${fileHash.toNix32()}.nar${ext}`;
  const fields: Record<string, string> = {
    StorePath: fx.storePath,
    URL: `nar/${name}`,
    Compression: compression,
    FileHash: fileHash.toTypedNix32(),
    FileSize: String(file.length),
    NarHash: NixHash.parse(fx.narHash).toTypedNix32(),
    NarSize: String(fx.narSize),
    References: "",
    ...over,
  };
  const narinfo = Object.entries(fields).map(([k, v]) => `${k}: ${v}\n`).join("");
  return { name, narinfo };
}

async function put(s: TestServer, path: string, body: Buffer | string, token = s.rootToken()): Promise<Response> {
  return s.fetch(path, { method: "PUT", token, body });
}

async function expectJsonError(res: Response, status: number, error: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = JSON.parse(text) as { code: number; error: string; message: string };
  assert.equal(body.code, status);
  assert.equal(body.error, error);
  assert.equal(typeof body.message, "string");
}

/** GC as if the grace period were over; then no chunk row, chunk file, NAR or staged file may be left. */
async function assertNothingLeaked(s: TestServer): Promise<void> {
  const later = () => new Date(Date.now() + 3 * 3600_000);
  await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null }, stagingPath: s.config.nixProtocol.stagingPath, now: later });
  const count = async (table: "chunk" | "nar" | "object") => (await s.db.kysely.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n;
  assert.equal(Number(await count("object")), 0);
  assert.equal(Number(await count("nar")), 0);
  assert.equal(Number(await count("chunk")), 0);
  const staged = join(s.config.nixProtocol.stagingPath, "c");
  assert.deepEqual(existsSync(staged) ? readdirSync(staged) : [], []);
  if (s.config.storage.type === "local") {
    const files = readdirSync(s.config.storage.path, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name !== "VERSION");
    assert.deepEqual(files.map((f) => f.name), []);
  }
}

for (const backend of BACKENDS) {
  describe(`nix protocol push, bad input (${backendName(backend)})`, () => {
    test("NarHash mismatch, narinfo without its NAR, truncated NAR, FileHash mismatch: 4xx JSON, nothing visible, nothing leaked", async () => {
      // one object per chunk: this test counts chunk files; dead packs are dropped by compaction (docs/packs.md)
      const s = await startServer({ backend, chunking: CHUNKED, storageExtra: "packs = false" });
      try {
        await createCacheViaApi(s, "c");
        const fx = narFixture(seededBytes(100_000, 1));
        const narinfoUrl = `/c/${fx.storePathHash}.narinfo`;

        // a NAR whose NarHash is not what the narinfo says
        const other = narFixture(seededBytes(100_000, 2));
        const wrong = pushed(fx, fx.nar, "none", { NarHash: NixHash.parse(other.narHash).toTypedNix32() });
        assert.equal((await put(s, `/c/nar/${wrong.name}`, fx.nar)).status, 200);
        await expectJsonError(await put(s, narinfoUrl, wrong.narinfo), 400, "RequestError");

        // a narinfo naming a NAR never sent (the one above was used up)
        await expectJsonError(await put(s, narinfoUrl, wrong.narinfo), 400, "RequestError");

        // a truncated xz file (its FileHash/FileSize say so, its NarHash does not)
        const compressed = await compressBuffer("xz", 2, fx.nar);
        const cut = compressed.subarray(0, compressed.length >> 1);
        const truncated = pushed(fx, cut, "xz");
        assert.equal((await put(s, `/c/nar/${truncated.name}`, cut)).status, 200);
        await expectJsonError(await put(s, narinfoUrl, truncated.narinfo), 400, "RequestError");

        // a NAR cut short, uncompressed: decodes fine, too short for NarSize
        const short = fx.nar.subarray(0, 50_000);
        const shortPush = pushed(fx, short, "none");
        assert.equal((await put(s, `/c/nar/${shortPush.name}`, short)).status, 200);
        await expectJsonError(await put(s, narinfoUrl, shortPush.narinfo), 400, "RequestError");

        // FileHash of another file
        const good = pushed(fx, fx.nar, "none");
        assert.equal((await put(s, `/c/nar/${good.name}`, fx.nar)).status, 200);
        const lying = good.narinfo.replace(/FileHash: .*/, `FileHash: ${NixHash.parse(other.narHash).toTypedNix32()}`);
        await expectJsonError(await put(s, narinfoUrl, lying), 400, "RequestError");

        // a narinfo whose StorePath is not the URL's
        assert.equal((await put(s, `/c/nar/${good.name}`, fx.nar)).status, 200);
        await expectJsonError(await put(s, `/c/${other.storePathHash}.narinfo`, good.narinfo), 400, "RequestError");

        assert.equal((await s.fetch(narinfoUrl, { token: s.rootToken() })).status, 404);
        await assertNothingLeaked(s);

        // and the same NAR pushed right is stored and served
        const zst = zlib.zstdCompressSync(fx.nar);
        const right = pushed(fx, zst, "zstd");
        assert.equal((await put(s, `/c/nar/${right.name}`, zst)).status, 200);
        assert.equal((await s.fetch(narinfoUrl, { token: s.rootToken() })).status, 404, "invisible before its narinfo");
        assert.equal((await put(s, narinfoUrl, right.narinfo)).status, 200);
        const served = await s.fetch(narinfoUrl, { token: s.rootToken() });
        assert.equal(served.status, 200);
        assert.match(await served.text(), new RegExp(`NarHash: sha256:`));
      } finally {
        await s.stop();
      }
    });

    test("a NAR over max-nar-size is 413, staging over staging-max-size is 503, both leave nothing", async () => {
      const s = await startServer({ backend, chunking: CHUNKED, nixProtocol: `max-nar-size = "64 KiB"\nstaging-max-size = "150 KiB"` });
      try {
        await createCacheViaApi(s, "c");
        const big = narFixture(seededBytes(100_000, 3));
        const p = pushed(big, big.nar, "none");
        await expectJsonError(await put(s, `/c/nar/${p.name}`, big.nar), 413, "NarTooLarge");
        // without a Content-Length: refused once the bytes go over
        const chunked = await s.fetch(`/c/nar/${p.name}`, {
          method: "PUT",
          token: s.rootToken(),
          body: ReadableStream.from([big.nar.subarray(0, 40_000), big.nar.subarray(40_000)]),
          duplex: "half",
        } as RequestInit);
        await expectJsonError(chunked, 413, "NarTooLarge");
        // a narinfo claiming a NarSize over the limit
        await expectJsonError(await put(s, `/c/${big.storePathHash}.narinfo`, p.narinfo), 413, "NarTooLarge");

        const parts = [1, 2, 3].map((i) => narFixture(seededBytes(60_000, 10 + i)));
        const names = parts.map((fx) => pushed(fx, fx.nar, "none"));
        assert.equal((await put(s, `/c/nar/${names[0]!.name}`, parts[0]!.nar)).status, 200);
        assert.equal((await put(s, `/c/nar/${names[1]!.name}`, parts[1]!.nar)).status, 200);
        await expectJsonError(await put(s, `/c/nar/${names[2]!.name}`, parts[2]!.nar), 503, "StagingFull");
        // the first two never get their narinfo: GC reaps them after the grace period
        await assertNothingLeaked(s);
        // room again
        assert.equal((await put(s, `/c/nar/${names[2]!.name}`, parts[2]!.nar)).status, 200);
        assert.equal((await put(s, `/c/${parts[2]!.storePathHash}.narinfo`, names[2]!.narinfo)).status, 200);
      } finally {
        await s.stop();
      }
    });

    test("permissions: push needs w, pull-only tokens and outsiders are refused before any byte is kept", async () => {
      const s = await startServer({ backend });
      try {
        await createCacheViaApi(s, "c");
        const fx = narFixture(seededBytes(1000, 4));
        const p = pushed(fx, fx.nar, "none");
        await expectJsonError(await put(s, `/c/nar/${p.name}`, fx.nar, s.token({ c: { r: 1 } })), 403, "AccessError");
        await expectJsonError(await put(s, `/c/nar/${p.name}`, fx.nar, s.token({ other: { r: 1, w: 1 } })), 401, "Unauthorized");
        await expectJsonError(await s.fetch(`/c/nar/${p.name}`, { method: "PUT", body: fx.nar }), 401, "Unauthorized");
        assert.deepEqual(existsSync(join(s.config.nixProtocol.stagingPath, "c")) ? readdirSync(join(s.config.nixProtocol.stagingPath, "c")) : [], []);
        // a NAR asked for by its file name (what Nix does before sending it) is absent, not a 400
        const head = await s.fetch(`/c/nar/${p.name}`, { method: "HEAD", token: s.rootToken() });
        assert.equal(head.status, 404);
      } finally {
        await s.stop();
      }
    });

    test("Range on a multi-chunk NAR: 206 slices, suffix and open ranges, 416 past the end, 200 with Accept-Ranges", async () => {
      // a few large chunks: each download of S3 chunks HEADs them first
      const s = await startServer({ backend, chunking: { threshold: 1, min: 16384, avg: 65536, max: 131072 }, compression: { type: "zstd" } });
      try {
        await createCacheViaApi(s, "c");
        const fx = narFixture(seededBytes(400_000, 5));
        const zst = zlib.zstdCompressSync(fx.nar);
        const p = pushed(fx, zst, "zstd");
        assert.equal((await put(s, `/c/nar/${p.name}`, zst)).status, 200);
        assert.equal((await put(s, `/c/${fx.storePathHash}.narinfo`, p.narinfo)).status, 200);
        const url = `/c/nar/${fx.storePathHash}.nar`;
        const whole = await s.fetch(url, { token: s.rootToken() });
        assert.equal(whole.status, 200);
        assert.equal(whole.headers.get("accept-ranges"), "bytes");
        const all = Buffer.from(await whole.arrayBuffer());
        const chunks = await s.db.kysely.selectFrom("chunk").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
        assert.ok(Number(chunks.n) >= 3, "several chunks");
        const ranged = async (range: string) => s.fetch(url, { token: s.rootToken(), headers: { range } });
        for (const [range, from, to] of [
          ["bytes=0-0", 0, 0],
          ["bytes=5000-15000", 5000, 15000],
          ["bytes=100000-350000", 100_000, 350_000],
          [`bytes=${all.length - 100}-`, all.length - 100, all.length - 1],
          ["bytes=-777", all.length - 777, all.length - 1],
          [`bytes=10-${all.length + 1000}`, 10, all.length - 1],
        ] as const) {
          const res = await ranged(range);
          assert.equal(res.status, 206, range);
          assert.equal(res.headers.get("content-range"), `bytes ${from}-${to}/${all.length}`);
          assert.ok(Buffer.from(await res.arrayBuffer()).equals(all.subarray(from, to + 1)), range);
        }
        const past = await ranged(`bytes=${all.length}-`);
        assert.equal(past.headers.get("content-range"), `bytes */${all.length}`);
        await expectJsonError(past, 416, "RangeNotSatisfiable");
        // several ranges or a foreign unit: the whole body
        for (const range of ["bytes=0-1,5-6", "items=0-1"]) {
          const res = await ranged(range);
          assert.equal(res.status, 200);
          assert.equal((await res.arrayBuffer()).byteLength, all.length);
        }
      } finally {
        await s.stop();
      }
    });

    test("the file nix copy uploaded: served at its URL while the path is in the cache, 404 after, its row gone with the NAR", async () => {
      // one object per chunk, so that "nothing left after GC" is a file count (a dead pack waits for compaction's grace)
      const s = await startServer({ backend, chunking: CHUNKED, storageExtra: "packs = false" });
      try {
        await createCacheViaApi(s, "c");
        await createCacheViaApi(s, "d");
        const fx = narFixture(seededBytes(100_000, 3));
        const file = await compressBuffer("xz", 1, fx.nar);
        const { name, narinfo } = pushed(fx, file, "xz");
        const url = `/c/nar/${name}`;
        assert.equal((await s.fetch(url, { method: "HEAD", token: s.rootToken() })).status, 404, "not there before its push");
        assert.equal((await put(s, url, file)).status, 200);
        assert.equal((await put(s, `/c/${fx.storePathHash}.narinfo`, narinfo)).status, 200);
        // stored as zstd chunks, served as xz (stored blocks): decodes to the NAR
        const served = await s.fetch(url, { token: s.rootToken() });
        assert.equal(served.status, 200);
        const decoded: Buffer[] = [];
        for await (const piece of decodeNixFile("xz", Readable.from([Buffer.from(await served.arrayBuffer())]))) decoded.push(piece);
        assert.ok(Buffer.concat(decoded).equals(fx.nar));
        await expectJsonError(await s.fetch(url), 401, "Unauthorized");
        await expectJsonError(await s.fetch(`/d/nar/${name}`, { token: s.rootToken() }), 404, "NoSuchObject");
        // the path leaves the cache: so does its file's URL; GC takes the row with the NAR
        const deleted = await s.fetch("/_api/v1/delete-paths", {
          method: "POST", token: s.rootToken(), headers: { "content-type": "application/json" },
          body: JSON.stringify({ cache: "c", store_path_hashes: [fx.storePathHash] }),
        });
        assert.equal(deleted.status, 200, await deleted.text());
        await expectJsonError(await s.fetch(url, { token: s.rootToken() }), 404, "NoSuchObject");
        await assertNothingLeaked(s);
        assert.deepEqual(await s.db.kysely.selectFrom("attic_ts_nix_file").selectAll().execute(), []);
      } finally {
        await s.stop();
      }
    });

    test("build logs and realisations: put and get with permissions, validated names, gone with their cache", async () => {
      const s = await startServer({ backend });
      try {
        await createCacheViaApi(s, "c");
        const drv = "0jm0pphcvy9lrr3jkc3ngqbvm8b4ig6k-hello-2.12.drv";
        const log = Buffer.from("building hello\n".repeat(1000));
        await expectJsonError(await put(s, `/c/log/${drv}`, log, s.token({ c: { r: 1 } })), 403, "AccessError");
        assert.equal((await put(s, `/c/log/${drv}`, log, s.token({ c: { w: 1 } }))).status, 200);
        const got = await s.fetch(`/c/log/${drv}`, { token: s.token({ c: { r: 1 } }) });
        assert.equal(got.status, 200);
        assert.ok(Buffer.from(await got.arrayBuffer()).equals(log));
        await expectJsonError(await s.fetch(`/c/log/${drv}`), 401, "Unauthorized");
        await expectJsonError(await s.fetch(`/c/log/${drv.replace("hello", "other")}`, { token: s.rootToken() }), 404, "NoSuchObject");
        await expectJsonError(await put(s, `/c/log/..%2F..%2Fetc%2Fpasswd`, log), 400, "RequestError");

        const id = `sha256:${"a".repeat(64)}!out`;
        const doc = JSON.stringify({ id, outPath: "0jm0pphcvy9lrr3jkc3ngqbvm8b4ig6k-hello", signatures: [], dependentRealisations: {} });
        assert.equal((await put(s, `/c/realisations/${id}.doi`, doc)).status, 200);
        const real = await s.fetch(`/c/realisations/${id}.doi`, { token: s.rootToken() });
        assert.equal(real.status, 200);
        assert.equal(await real.text(), doc);
        await expectJsonError(await put(s, `/c/realisations/${id.replace("!out", "!dev")}.doi`, doc), 400, "RequestError");
        await expectJsonError(await put(s, `/c/realisations/nothash.doi`, doc), 400, "RequestError");

        // a build log counts in the cache's quota (by its uncompressed size) and goes when over it
        const drv2 = drv.replace("hello", "hello-b");
        assert.equal((await put(s, `/c/log/${drv2}`, Buffer.from("x".repeat(100)))).status, 200);
        const quota = await s.fetch("/_api/v1/cache-config/c", {
          method: "PATCH",
          token: s.rootToken(),
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ max_size: 1000 }),
        });
        assert.equal(quota.status, 200);
        const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null } });
        assert.equal(report.buildLogsOverQuota, 1, "the older, larger log went; the small one fits");
        assert.equal((await s.fetch(`/c/log/${drv}`, { token: s.rootToken() })).status, 404);
        assert.equal((await s.fetch(`/c/log/${drv2}`, { token: s.rootToken() })).status, 200);

        const destroyed = await s.fetch("/_api/v1/cache-config/c", { method: "DELETE", token: s.rootToken() });
        assert.equal(destroyed.status, 200);
        const left = async (t: "attic_ts_build_log" | "attic_ts_realisation") => Number((await s.db.kysely.selectFrom(t).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
        assert.equal(await left("attic_ts_build_log"), 0);
        assert.equal(await left("attic_ts_realisation"), 0);
      } finally {
        await s.stop();
      }
    });
  });
}
