// Repair (issue 15, item 7): chunk files lost or damaged behind the server's back. A download
// finds a missing file before its first byte (503) or, past the first page on S3, aborts mid-way;
// either way the chunk is marked lost and get-missing-paths reports the path until it is pushed
// again. `atticadm verify` re-reads chunks (and with --nars whole NARs) and with --repair marks
// what is broken. An S3 response that breaks off mid-body is resumed with a ranged GET.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { runAtticadm } from "../helpers/atticd-process.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/s3-fault-proxy.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import type { S3Storage } from "../../src/storage/s3.ts";
import type { RemoteFile } from "../../src/storage/types.ts";

const CHUNKING = { threshold: 1, min: 16384, avg: 65536, max: 262144 };

async function missingPaths(s: TestServer, cache: string, hashes: string[]): Promise<string[]> {
  const res = await s.fetch("/_api/v1/get-missing-paths", {
    method: "POST",
    token: s.rootToken(),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ cache, store_path_hashes: hashes }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { missing_paths: string[] }).missing_paths.sort();
}

/** The chunks of the path's NAR, in order. */
async function chunksOf(s: TestServer, storePathHash: string): Promise<{ id: number; remoteFile: RemoteFile }[]> {
  const rows = await s.db.kysely
    .selectFrom("object")
    .innerJoin("chunkref", "chunkref.nar_id", "object.nar_id")
    .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
    .select(["chunk.id", "chunk.remote_file"])
    .where("object.store_path_hash", "=", storePathHash)
    .orderBy("chunkref.seq")
    .execute();
  return rows.map((r) => ({ id: Number(r.id), remoteFile: JSON.parse(r.remote_file) as RemoteFile }));
}

async function upload(s: TestServer, cache: string, fx: NarFixture): Promise<void> {
  const res = await uploadNar(s, fx, { cache, token: s.rootToken() });
  assert.equal(res.status, 200, await res.text());
}

async function servedIntact(s: TestServer, cache: string, fx: NarFixture): Promise<void> {
  const info = parseNarInfo(await (await s.fetch(`/${cache}/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).text());
  const res = await s.fetch(`/${cache}/${info.url}`, { token: s.rootToken() });
  assert.equal(res.status, 200);
  assert.ok((await decompressWithCli(info.compression ?? "none", Buffer.from(await res.arrayBuffer()))).equals(fx.nar));
}

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

for (const backend of backends) {
  describe(`repair (${backendName(backend)})`, () => {
    let s: TestServer;
    let configPath: string;
    before(async () => {
      // chunks one object each (packs = false): these tests lose one chunk file; packs: "repair with packs" below
      s = await startServer({ backend, chunking: CHUNKING, storageExtra: "packs = false" });
      configPath = join(s.dir, "server.toml");
      writeFileSync(configPath, s.configToml);
    });
    after(() => s.stop());

    test("a download finding a chunk file missing is a 503 before any byte; the path is missing until pushed again", async () => {
      await createCacheViaApi(s, "dl");
      const fx = narFixture(seededBytes(600_000, 71), "dl");
      const other = narFixture(seededBytes(300_000, 72), "dl-other");
      await upload(s, "dl", fx);
      await upload(s, "dl", other);
      const chunks = await chunksOf(s, fx.storePathHash);
      assert.ok(chunks.length >= 3);
      await s.storage.deleteMany([chunks[1]!.remoteFile]);

      assert.deepEqual(await missingPaths(s, "dl", [fx.storePathHash, other.storePathHash]), [], "the database cannot know yet");
      const res = await s.fetch(`/dl/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, "IncompleteNar");
      assert.deepEqual(await missingPaths(s, "dl", [fx.storePathHash, other.storePathHash]), [fx.storePathHash]);
      const narinfo = await s.fetch(`/dl/${fx.storePathHash}.narinfo`, { token: s.rootToken() });
      assert.equal(narinfo.status, 404, "missing for Nix too: it falls back to another substituter or builds the path");
      assert.equal((await s.fetch(`/dl/${other.storePathHash}.narinfo`, { token: s.rootToken() })).status, 200);

      await upload(s, "dl", fx);
      assert.deepEqual(await missingPaths(s, "dl", [fx.storePathHash, other.storePathHash]), []);
      await servedIntact(s, "dl", fx);
    });

    test("atticadm verify reports missing and damaged chunk files and their paths; --repair marks them for re-upload", async () => {
      await createCacheViaApi(s, "ver");
      const a = narFixture(seededBytes(500_000, 81), "ver-a");
      const b = narFixture(seededBytes(500_000, 82), "ver-b");
      const ok = narFixture(seededBytes(200_000, 83), "ver-ok");
      for (const fx of [a, b, ok]) await upload(s, "ver", fx);
      const lost = (await chunksOf(s, a.storePathHash))[2]!;
      const damaged = (await chunksOf(s, b.storePathHash))[1]!;
      await s.storage.deleteMany([lost.remoteFile]);
      await s.storage.put(damaged.remoteFile, Readable.from([Buffer.from("truncated")]));

      const quick = await runAtticadm(["-f", configPath, "verify", "--quick"]);
      assert.equal(quick.code, 1, quick.stderr);
      assert.match(quick.stdout, new RegExp(`^chunk ${lost.id} \\(.*\\): missing$`, "m"));
      assert.doesNotMatch(quick.stdout, new RegExp(`^chunk ${damaged.id} `, "m"), "--quick only checks existence");

      const full = await runAtticadm(["-f", configPath, "verify"]);
      assert.equal(full.code, 1, full.stderr);
      assert.match(full.stdout, new RegExp(`^chunk ${lost.id} \\(.*\\): missing$`, "m"));
      assert.match(full.stdout, new RegExp(`^chunk ${damaged.id} \\(.*\\): size 9, expected \\d+$`, "m"));
      assert.match(full.stdout, new RegExp(`^  used by ver: ${a.storePath}$`, "m"));
      assert.match(full.stdout, new RegExp(`^  used by ver: ${b.storePath}$`, "m"));
      assert.doesNotMatch(full.stdout, new RegExp(ok.storePath));
      assert.match(full.stderr, /verify found 2 problems; run it again with --repair/);
      const hashes = [a, b, ok].map((f) => f.storePathHash);
      assert.deepEqual(await missingPaths(s, "ver", hashes), [], "verify without --repair changes nothing");

      const repair = await runAtticadm(["-f", configPath, "verify", "--repair"]);
      assert.equal(repair.code, 0, repair.stderr);
      assert.match(repair.stdout, /2 broken chunks, 0 broken NARs, 2 store paths affected/);
      assert.deepEqual(await missingPaths(s, "ver", hashes), [a.storePathHash, b.storePathHash].sort());
      assert.equal((await s.fetch(`/ver/nar/${b.storePathHash}.nar`, { token: s.rootToken() })).status, 503);

      const clean = await runAtticadm(["-f", configPath, "verify", "--nars"]);
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
      for (const fx of [a, b]) await upload(s, "ver", fx);
      assert.deepEqual(await missingPaths(s, "ver", hashes), []);
      for (const fx of [a, b, ok]) await servedIntact(s, "ver", fx);
    });

    test("atticadm verify --nars finds a NAR that does not match its NarHash although each chunk file is intact", async () => {
      await createCacheViaApi(s, "vnar");
      const fx = narFixture(seededBytes(300_000, 91), "vnar");
      await upload(s, "vnar", fx);
      const narId = (await s.db.kysely.selectFrom("object").select("nar_id").where("store_path_hash", "=", fx.storePathHash).executeTakeFirstOrThrow()).nar_id;
      const wrong = `sha256:${randomBytes(32).toString("hex")}`;
      await s.db.kysely.updateTable("nar").set({ nar_hash: wrong }).where("id", "=", narId).execute();

      const chunksOnly = await runAtticadm(["-f", configPath, "verify"]);
      assert.equal(chunksOnly.code, 0, chunksOnly.stdout);
      const found = await runAtticadm(["-f", configPath, "verify", "--nars", "--repair"]);
      assert.equal(found.code, 0, found.stderr);
      assert.match(found.stdout, new RegExp(`^NAR ${narId} \\(${wrong}\\): NAR hash sha256:[0-9a-f]{64}, expected ${wrong}$`, "m"));
      assert.match(found.stdout, new RegExp(`^  used by vnar: ${fx.storePath}$`, "m"));
      assert.deepEqual(await missingPaths(s, "vnar", [fx.storePathHash]), [fx.storePathHash]);
      await upload(s, "vnar", fx);
      assert.deepEqual(await missingPaths(s, "vnar", [fx.storePathHash]), []);
      await servedIntact(s, "vnar", fx);
    });
  });
}

describe("S3 reads that break off", () => {
  let proxy: FaultProxy;
  let s: TestServer;
  before(async () => {
    const target = process.env.ATTIC_TEST_S3_ENDPOINT;
    if (!target) throw new Error("ATTIC_TEST_S3_ENDPOINT is not set: run the tests through `npm test`");
    proxy = await startFaultProxy(target);
    // tiny chunks: a NAR of more than one page (256 chunks), so a file lost past the first page
    // is found only mid-stream
    s = await startServer({ backend: { db: "sqlite", storage: "s3" }, s3Endpoint: proxy.endpoint, chunking: { threshold: 1, min: 256, avg: 1024, max: 4096 }, storageExtra: "packs = false" });
    await createCacheViaApi(s, "c");
  });
  after(async () => {
    await s.stop();
    await proxy.close();
  });

  test("a GET cut mid-body is resumed with a ranged GET from the byte reached", async () => {
    const storage = s.storage as S3Storage;
    const data = randomBytes(1_000_000);
    const { remoteFile } = storage.remoteFileFor(`${randomBytes(8).toString("hex")}.chunk`);
    await storage.put(remoteFile, Readable.from([data]));
    const key = (remoteFile as { S3: { key: string } }).S3.key;
    let cuts = 0;
    proxy.rule = (req) => (req.method === "GET" && req.url.includes(key) && cuts++ < 2 ? { cutAfterBytes: 300_000 * cuts } : undefined);
    proxy.seen.length = 0;
    try {
      const got = Buffer.concat(await (await storage.get(remoteFile)).toArray());
      assert.equal(got.length, data.length);
      assert.ok(got.equals(data));
    } finally {
      proxy.rule = undefined;
    }
    const gets = proxy.seen.filter((r) => r.method === "GET" && r.url.includes(key));
    assert.equal(gets.length, 3);
    assert.equal(gets[0]!.range, undefined);
    assert.equal(gets[1]!.range, "bytes=300000-");
    assert.equal(gets[2]!.range, `bytes=${300_000 + 600_000}-`);

    // a break that keeps happening is passed on as an error, never as a short stream
    proxy.rule = (req) => (req.method === "GET" && req.url.includes(key) ? { cutAfterBytes: 1000 } : undefined);
    try {
      await assert.rejects((await storage.get(remoteFile)).toArray());
    } finally {
      proxy.rule = undefined;
    }
  });

  test("a chunk file lost past the first page aborts the download mid-way and marks the path missing", async () => {
    const fx = narFixture(seededBytes(600_000, 101), "deep");
    await upload(s, "c", fx);
    const chunks = await chunksOf(s, fx.storePathHash);
    assert.ok(chunks.length > 300, `${chunks.length} chunks`);
    const victim = chunks[290]!;
    await s.storage.deleteMany([victim.remoteFile]);

    const res = await s.fetch(`/c/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
    assert.equal(res.status, 200, "the first page is intact, so the response starts");
    await assert.rejects(text(res.body!), "the transfer breaks off instead of ending short");
    for (let i = 0; i < 50 && (await missingPaths(s, "c", [fx.storePathHash])).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await missingPaths(s, "c", [fx.storePathHash]), [fx.storePathHash]);
    assert.equal((await s.fetch(`/c/nar/${fx.storePathHash}.nar`, { token: s.rootToken() })).status, 503);
    await upload(s, "c", fx);
    await servedIntact(s, "c", fx);
  });
});

/** The packs holding the path's chunks (docs/packs.md), in order of first use. */
async function packsOf(s: TestServer, storePathHash: string): Promise<{ id: number; remoteFile: RemoteFile }[]> {
  const rows = await s.db.kysely
    .selectFrom("object")
    .innerJoin("chunkref", "chunkref.nar_id", "object.nar_id")
    .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
    .innerJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
    .select(["attic_ts_pack.id", "attic_ts_pack.remote_file"])
    .where("object.store_path_hash", "=", storePathHash)
    .orderBy("chunkref.seq")
    .execute();
  const seen = new Map<number, RemoteFile>();
  for (const r of rows) if (!seen.has(Number(r.id))) seen.set(Number(r.id), JSON.parse(r.remote_file) as RemoteFile);
  return [...seen].map(([id, remoteFile]) => ({ id, remoteFile }));
}

for (const backend of backends) {
  describe(`repair with packs (${backendName(backend)})`, () => {
    let s: TestServer;
    let configPath: string;
    before(async () => {
      s = await startServer({ backend, chunking: CHUNKING });
      configPath = join(s.dir, "server.toml");
      writeFileSync(configPath, s.configToml);
    });
    after(() => s.stop());

    test("a lost pack: 503 before any byte, every path with a chunk in it reported missing, healed by the next push", async () => {
      await createCacheViaApi(s, "pk");
      const fx = narFixture(seededBytes(700_000, 201), "pk-a");
      const other = narFixture(seededBytes(300_000, 202), "pk-b");
      await upload(s, "pk", fx);
      await upload(s, "pk", other);
      await servedIntact(s, "pk", fx);
      const verified = await runAtticadm(["-f", configPath, "verify"]);
      assert.equal(verified.code, 0, verified.stderr);
      assert.doesNotMatch(verified.stdout, /^chunk \d+/m, "packed chunks verify intact");
      const packs = await packsOf(s, fx.storePathHash);
      assert.ok(packs.length >= 1, "the chunks are packed");
      const usesLost = async (f: NarFixture) => (await packsOf(s, f.storePathHash)).some((p) => p.id === packs[0]!.id);
      const expected = [fx.storePathHash, ...((await usesLost(other)) ? [other.storePathHash] : [])].sort();
      await s.storage.deleteMany([packs[0]!.remoteFile]);

      const res = await s.fetch(`/pk/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, "IncompleteNar");
      assert.deepEqual(await missingPaths(s, "pk", [fx.storePathHash, other.storePathHash]), expected);
      for (const f of [fx, other]) if (expected.includes(f.storePathHash)) await upload(s, "pk", f);
      assert.deepEqual(await missingPaths(s, "pk", [fx.storePathHash, other.storePathHash]), []);
      await servedIntact(s, "pk", fx);
      await servedIntact(s, "pk", other);
    });

    test("a short pack is a lost one", async () => {
      await createCacheViaApi(s, "short");
      const fx = narFixture(seededBytes(500_000, 203), "short-a");
      await upload(s, "short", fx);
      const [pack] = await packsOf(s, fx.storePathHash);
      // the pack replaced by its first 1,000 bytes
      const head = Buffer.concat(await (await s.storage.getRange(pack!.remoteFile, 0, 1000)).toArray());
      await s.storage.deleteMany([pack!.remoteFile]);
      await s.storage.put(pack!.remoteFile, Readable.from([head]));
      const res = await s.fetch(`/short/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
      assert.equal(res.status, 503);
      assert.deepEqual(await missingPaths(s, "short", [fx.storePathHash]), [fx.storePathHash]);
      await upload(s, "short", fx);
      await servedIntact(s, "short", fx);
    });
  });
}
