// Backends failing under a running server: the S3 server answering errors mid-upload (through a
// fault proxy), and PostgreSQL restarted while the server runs. Uploads fail cleanly (503,
// nothing half-visible, nothing left behind), and everything works again once the backend is
// back, without restarting atticd. S3 refusing the credentials gives a 500 and a log line that
// says what to check; S3 answering that it is full gives a 507.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startFaultProxy, type FaultProxy } from "../helpers/s3-fault-proxy.ts";
import { createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar } from "../helpers/nar.ts";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { openDatabase, ping } from "../../src/db/connect.ts";
import { reapStalePending } from "../../src/db/queries/gc.ts";
import { deleteChunkFiles } from "../../src/gc/chunk-files.ts";
import { listBucket } from "../helpers/chaos-checks.ts";
import { waitFor } from "../helpers/wait.ts";

async function servedIntact(s: TestServer, cache: string, hash: string, nar: Buffer): Promise<void> {
  const res = await s.fetch(`/${cache}/${hash}.narinfo`, { token: s.rootToken() });
  assert.equal(res.status, 200);
  const info = parseNarInfo(await res.text());
  const body = Buffer.from(await (await s.fetch(`/${cache}/${info.url}`, { token: s.rootToken() })).arrayBuffer());
  assert.ok((await decompressWithCli(info.compression ?? "none", body)).equals(nar));
}

// both layouts: one object per chunk (packs = false) and packs (docs/packs.md), where a push of
// this size is one PUT, so the PUTs fail from the first
for (const packs of [false, true]) describe(`S3 errors mid-upload (packs ${packs})`, () => {
  let proxy: FaultProxy;
  let s: TestServer;
  const logLines: string[] = [];
  before(async () => {
    const target = process.env.ATTIC_TEST_S3_ENDPOINT;
    if (!target) throw new Error("ATTIC_TEST_S3_ENDPOINT is not set: run the tests through `npm test`");
    proxy = await startFaultProxy(target);
    s = await startServer({
      backend: { db: "sqlite", storage: "s3" },
      s3Endpoint: proxy.endpoint,
      chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 },
      storageExtra: `packs = ${packs}`,
      logger: { level: "warn", stream: { write: (line: string) => void logLines.push(line) } },
    });
    await createCacheViaApi(s, "c");
  });
  after(async () => {
    await s.stop();
    await proxy.close();
  });

  test("every PUT failing: 503, no object, no valid chunk or NAR rows; a retry succeeds", async () => {
    const fx = narFixture(seededBytes(700_000, 31), "s3fault");
    let puts = 0;
    proxy.rule = (req) => {
      if (req.method !== "PUT") return undefined;
      puts++;
      return puts > (packs ? 0 : 3) ? { status: 500, code: "InternalError" } : undefined;
    };
    const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
    const text = await res.text();
    assert.equal(res.status, 503, text);
    assert.equal(JSON.parse(text).error, "ServiceUnavailable");
    proxy.rule = undefined;

    assert.equal((await s.fetch(`/c/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status, 404);
    const objects = await s.db.kysely.selectFrom("object").select("id").execute();
    assert.equal(objects.length, 0);
    const nars = await s.db.kysely.selectFrom("nar").select("id").execute();
    assert.equal(nars.length, 0, "the failed NAR row is removed");
    // chunks already written are kept only as valid, unheld rows (GC reaps them) or removed
    const held = await s.db.kysely.selectFrom("chunk").select("id").where("holders_count", ">", 0).execute();
    assert.equal(held.length, 0, "no chunk is left held");
    const pending = await s.db.kysely.selectFrom("chunk").select("id").where("state", "=", "P").execute();
    assert.equal(pending.length, 0, "no chunk is left pending");

    const retry = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
    assert.equal(retry.status, 200, await retry.text());
    await servedIntact(s, "c", fx.storePathHash, fx.nar);
  });

  test("transient 503s are retried by the S3 client and the upload succeeds", async () => {
    const fx = narFixture(seededBytes(400_000, 32), "s3flaky");
    let n = 0;
    proxy.rule = (req) => (req.method === "PUT" && n++ % 5 === 0 ? { status: 503, code: "SlowDown" } : undefined);
    try {
      const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
      assert.equal(res.status, 200, await res.text());
    } finally {
      proxy.rule = undefined;
    }
    await servedIntact(s, "c", fx.storePathHash, fx.nar);
  });

  test("a 403 InvalidAccessKeyId: 500 to the client, a log line that names what to check, no secret logged, nothing visible", async () => {
    const fx = narFixture(seededBytes(300_000, 33), "s3denied");
    proxy.rule = (req) => (req.method === "PUT" ? { status: 403, code: "InvalidAccessKeyId" } : undefined);
    try {
      const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
      const text = await res.text();
      assert.equal(res.status, 500, text);
      assert.equal(JSON.parse(text).error, "InternalServerError");
    } finally {
      proxy.rule = undefined;
    }
    const errors = logLines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 50);
    assert.ok(
      errors.some((l) => l.msg.includes("refused the server's credentials (InvalidAccessKeyId)") && l.msg.includes("[storage.credentials]")),
      errors.map((l) => l.msg).join("\n"),
    );
    // the test credentials (key id and secret are both this string) never reach the log
    const secret = process.env.ATTIC_TEST_S3_SECRET_ACCESS_KEY ?? "S3RVER";
    assert.ok(!logLines.some((l) => l.includes(secret)), "no credential in the log");
    assert.equal((await s.fetch(`/c/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status, 404);
    assert.equal((await s.db.kysely.selectFrom("chunk").select("id").where("holders_count", ">", 0).execute()).length, 0);

    const retry = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
    assert.equal(retry.status, 200, await retry.text());
    await servedIntact(s, "c", fx.storePathHash, fx.nar);
  });

  test("the object store full (507 XMinioStorageFull): 507 StorageFull, one log line naming the bucket, nothing visible", async () => {
    const fx = narFixture(seededBytes(500_000, 34), "s3full");
    const before = logLines.length;
    proxy.rule = (req) => (req.method === "PUT" ? { status: 507, code: "XMinioStorageFull" } : undefined);
    try {
      const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
      const text = await res.text();
      assert.equal(res.status, 507, text);
      assert.equal(JSON.parse(text).error, "StorageFull");
    } finally {
      proxy.rule = undefined;
    }
    const errors = logLines.slice(before).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 50);
    assert.equal(errors.length, 1, errors.map((l) => l.msg).join("\n"));
    assert.match(errors[0]!.msg, /^storage full: s3:[^/]+\/attic-[0-9a-f]+ has no room left \(XMinioStorageFull\)/);
    assert.equal((await s.fetch(`/c/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status, 404);
    assert.equal((await s.db.kysely.selectFrom("chunk").select("id").where("holders_count", ">", 0).execute()).length, 0);

    const retry = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
    assert.equal(retry.status, 200, await retry.text());
    await servedIntact(s, "c", fx.storePathHash, fx.nar);
  });
});

describe("an upload that outlives the stale grace period", () => {
  test("GC reaps its pending rows while a chunk file is still being written: the upload fails and leaves no file behind", async () => {
    const target = process.env.ATTIC_TEST_S3_ENDPOINT!;
    const proxy = await startFaultProxy(target);
    // a chunk file of its own being written (packs = false); packs: the next test
    const s = await startServer({ backend: { db: "sqlite", storage: "s3" }, s3Endpoint: proxy.endpoint, chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, storageExtra: "packs = false" });
    let release = (): void => undefined;
    try {
      await createCacheViaApi(s, "c");
      if (s.config.storage.type !== "s3") throw new Error("S3 storage expected");
      const { bucket } = s.config.storage;
      // every chunk write is held in flight; while the first waits, a collection takes the upload for dead
      const held = new Promise<void>((resolve) => (release = resolve));
      proxy.rule = (req) => (req.method === "PUT" ? { hold: held } : undefined);
      const upload = uploadNar(s, narFixture(seededBytes(300_000, 41), "outlived"), { cache: "c", token: s.rootToken() });
      await waitFor(() => proxy.seen.some((r) => r.method === "PUT"), { what: "the first chunk write to reach S3" });
      // while the upload renews its claim, its pending chunks are linked into its pending NAR: kept
      assert.deepEqual(await reapStalePending(s.db, new Date(Date.now() + 3_600_000)), { nars: 0, chunks: 0 });
      // the upload's claim lapsed (its renewals failed while the database was away): GC takes it for dead
      await s.db.kysely.deleteFrom("attic_ts_lease").where("name", "like", "nar-upload:%").execute();
      const reaped = await reapStalePending(s.db, new Date(Date.now() + 3_600_000));
      assert.ok(reaped.chunks > 0, JSON.stringify(reaped));
      await deleteChunkFiles(s.db, s.storage, new AbortController().signal);
      release();
      const res = await upload;
      assert.ok(res.status >= 500, `${res.status} ${await res.text()}`);
      proxy.rule = undefined;
      assert.deepEqual(await s.db.kysely.selectFrom("chunk").select(["id", "state"]).execute(), []);
      assert.deepEqual([...(await listBucket(target, bucket))], [], "no chunk file is left without its row");
    } finally {
      release();
      await s.stop();
      await proxy.close();
    }
  });
});

describe("an upload that outlives the stale grace period, with packs", () => {
  test("GC reaps its pending rows while its pack is being stored: the upload fails, no chunk row is left, the pack is known and dead", async () => {
    const target = process.env.ATTIC_TEST_S3_ENDPOINT!;
    const proxy = await startFaultProxy(target);
    const s = await startServer({ backend: { db: "sqlite", storage: "s3" }, s3Endpoint: proxy.endpoint, chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 } });
    try {
      await createCacheViaApi(s, "c");
      if (s.config.storage.type !== "s3") throw new Error("S3 storage expected");
      const { bucket } = s.config.storage;
      proxy.rule = (req) => (req.method === "PUT" ? { delayMs: 3000 } : undefined);
      const upload = uploadNar(s, narFixture(seededBytes(300_000, 42), "outlived-packed"), { cache: "c", token: s.rootToken() });
      await waitFor(() => proxy.seen.some((r) => r.method === "PUT"), { what: "the pack's write to reach S3" });
      // the upload's claim lapsed (its renewals failed while the database was away): GC takes it for dead
      await s.db.kysely.deleteFrom("attic_ts_lease").where("name", "like", "nar-upload:%").execute();
      const reaped = await reapStalePending(s.db, new Date(Date.now() + 3_600_000));
      assert.ok(reaped.chunks > 0, JSON.stringify(reaped));
      await deleteChunkFiles(s.db, s.storage, new AbortController().signal);
      const res = await upload;
      assert.ok(res.status >= 500, `${res.status} ${await res.text()}`);
      proxy.rule = undefined;
      assert.deepEqual(await s.db.kysely.selectFrom("chunk").select(["id", "state"]).execute(), []);
      // every object left is a pack with its row (compaction drops packs without a live chunk)
      const packs = await s.db.kysely.selectFrom("attic_ts_pack").select("remote_file").execute();
      const packKeys = packs.map((p) => (JSON.parse(p.remote_file) as { S3: { key: string } }).S3.key).sort();
      assert.deepEqual([...(await listBucket(target, bucket))].sort(), packKeys);
    } finally {
      await s.stop();
      await proxy.close();
    }
  });
});

describe("PostgreSQL restarted under a running server", () => {
  let cluster: PostgresCluster;
  let s: TestServer;
  before(async () => {
    cluster = await startPostgres();
    s = await startServer({ backend: { db: "postgres", storage: "local" }, pgClusterUrl: cluster.url });
    await createCacheViaApi(s, "c");
  });
  after(async () => {
    await s.stop();
    cluster.stop();
  });

  test("a Unix-socket URL (postgresql://…?host=/socket/dir) connects", async () => {
    const db = await openDatabase(`postgresql://postgres@localhost:${cluster.port}/postgres?host=/tmp`);
    try {
      await ping(db);
    } finally {
      await db.close();
    }
  });

  test("requests fail with 503 while it is down and recover once it is back", async () => {
    const before = narFixture(seededBytes(100_000, 41), "before");
    assert.equal((await uploadNar(s, before, { cache: "c", token: s.rootToken() })).status, 200);
    cluster.stopServer();
    try {
      const down = await s.fetch(`/c/${before.storePathHash}.narinfo`, { token: s.rootToken() });
      assert.equal(down.status, 503);
      assert.equal(((await down.json()) as { error: string }).error, "ServiceUnavailable");
      assert.equal((await s.fetch("/healthz")).status, 503);
    } finally {
      cluster.startServer();
    }
    // pooled connections were cut: the first requests after the restart must still succeed
    for (let i = 0; i < 3; i++) {
      const res = await s.fetch(`/c/${before.storePathHash}.narinfo`, { token: s.rootToken() });
      assert.equal(res.status, 200, `request ${i} after the restart: ${res.status}`);
    }
    assert.equal((await s.fetch("/healthz")).status, 200);
    const afterFx = narFixture(seededBytes(100_000, 42), "after");
    assert.equal((await uploadNar(s, afterFx, { cache: "c", token: s.rootToken() })).status, 200);
    await servedIntact(s, "c", afterFx.storePathHash, afterFx.nar);
  });
});
