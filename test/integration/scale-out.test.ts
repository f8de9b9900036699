// The scaling story: two `atticd --mode api-server` replicas and one `--mode garbage-collector`
// on one PostgreSQL database and one S3 bucket. Clients push overlapping sets of NARs (the same
// NARs, and NARs sharing most chunks) to both replicas at once and pull through the other one.
// Afterwards every path is served intact from both, each NAR and chunk is stored once (rows and
// bucket objects), and the collector, running every second meanwhile, deleted nothing live.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { runAtticd, spawnAtticdAll, type AtticdProcess } from "../helpers/atticd-process.ts";
import { prepareServer, type ServerSetup } from "../helpers/server.ts";
import { atticClaims, ALL, mintHs256 } from "../helpers/tokens.ts";
import { narFixture, seededBytes, uploadInfo, type NarFixture } from "../helpers/nar.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { openDatabase, type Db } from "../../src/db/connect.ts";
import { waitFor } from "../helpers/wait.ts";

const header = (fx: NarFixture, cache: string): string => JSON.stringify(uploadInfo(fx, cache));

async function countBucketObjects(bucket: string): Promise<number> {
  const client = new S3Client({
    endpoint: process.env.ATTIC_TEST_S3_ENDPOINT,
    region: process.env.ATTIC_TEST_S3_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.ATTIC_TEST_S3_ACCESS_KEY_ID ?? "S3RVER",
      secretAccessKey: process.env.ATTIC_TEST_S3_SECRET_ACCESS_KEY ?? "S3RVER",
    },
  });
  let count = 0;
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    count += (page.Contents ?? []).filter((o) => o.Key !== "VERSION").length;
    token = page.NextContinuationToken;
  } while (token);
  client.destroy();
  return count;
}

describe("scale-out: two API replicas and a garbage collector on PostgreSQL + S3", () => {
  let setup: ServerSetup;
  let configPath: string;
  let a: AtticdProcess;
  let b: AtticdProcess;
  let gc: AtticdProcess;
  let db: Db;
  let token: string;

  before(async () => {
    setup = await prepareServer({
      backend: { db: "postgres", storage: "s3" },
      chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 },
      // GC every second with a retention that never expires these objects: it must find nothing
      gc: `interval = "1s"\ndefault-retention-period = "1 day"`,
    });
    configPath = join(setup.dir, "server.toml");
    writeFileSync(configPath, setup.configToml);
    const migrated = await runAtticd(["-f", configPath, "--mode", "db-migrations"]);
    assert.equal(migrated.code, 0, migrated.stderr);
    [a, b, gc] = (await spawnAtticdAll([
      { configPath, mode: "api-server" },
      { configPath, mode: "api-server" },
      { configPath, mode: "garbage-collector", readyText: null },
    ])) as [AtticdProcess, AtticdProcess, AtticdProcess];
    token = mintHs256(setup.secret, atticClaims("ci", { "*": ALL }));
    db = await openDatabase(setup.databaseUrl);
    const res = await fetch(`${a.url}/_api/v1/cache-config/shared`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
    });
    assert.equal(res.status, 200, await res.text());
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), gc?.stop()]);
    await db?.close();
    rmSync(setup.dir, { recursive: true, force: true });
  });

  test("overlapping concurrent pushes to both replicas: served intact everywhere, stored once, GC harmless", async () => {
    const base = seededBytes(1_000_000, 77);
    // 8 NARs: pairs share ~all chunks (same base, different tails); each NAR is pushed to both replicas
    const fixtures = Array.from({ length: 8 }, (_, i) =>
      narFixture(Buffer.concat([base.subarray(0, 600_000 + (i % 2) * 50_000), seededBytes(200_000, 100 + Math.floor(i / 2))]), `p${i}`),
    );
    const auth = { authorization: `Bearer ${token}` };
    const push = async (server: AtticdProcess, fx: NarFixture) => {
      const res = await fetch(`${server.url}/_api/v1/upload-path`, { method: "PUT", headers: { ...auth, "x-attic-nar-info": header(fx, "shared") }, body: fx.nar });
      const text = await res.text();
      assert.equal(res.status, 200, `${server.url}: ${text}\n${server.stderr().slice(-4000)}`);
      return JSON.parse(text) as { kind: string };
    };
    // each replica receives every NAR; two clients per replica, in opposite orders
    const results = await Promise.all([
      ...fixtures.map((fx) => push(a, fx)),
      ...[...fixtures].reverse().map((fx) => push(b, fx)),
    ]);
    assert.equal(results.length, 16);

    const pullAll = async () => {
      for (const fx of fixtures) {
        for (const server of [a, b]) {
          const ni = await fetch(`${server.url}/shared/${fx.storePathHash}.narinfo`, { headers: auth });
          assert.equal(ni.status, 200);
          const info = parseNarInfo(await ni.text());
          const body = Buffer.from(await (await fetch(`${server.url}/shared/${info.url}`, { headers: auth })).arrayBuffer());
          assert.ok((await decompressWithCli(info.compression ?? "none", body)).equals(fx.nar), `${fx.storePath} via ${server.url}`);
        }
      }
    };
    await pullAll();

    const nars = await db.kysely.selectFrom("nar").select(["nar_hash", "state"]).execute();
    assert.equal(nars.length, fixtures.length, "one NAR row per distinct NAR");
    assert.ok(nars.every((n) => n.state === "V"));
    const chunks = await db.kysely.selectFrom("chunk").selectAll().execute();
    const dupes = chunks.filter((c) => chunks.filter((o) => o.chunk_hash === c.chunk_hash).length > 1);
    assert.equal(new Set(chunks.map((c) => c.chunk_hash)).size, chunks.length, `each chunk stored once: ${JSON.stringify(dupes)}`);
    assert.ok(chunks.every((c) => c.state === "V"));
    // a chunk is its own object, or lives in a pack (docs/packs.md): one object per unpacked chunk row and per pack
    const packs = await db.kysely.selectFrom("attic_ts_pack").select("id").execute();
    const objectsExpected = chunks.filter((c) => c.pack_id === null).length + packs.length;
    assert.equal(await countBucketObjects(setup.bucket!), objectsExpected, "one bucket object per chunk row or pack, none leaked");

    // let the collector finish two more runs (so one started after every push), then everything is still there
    const gcRuns = async () => Number((await db.kysely.selectFrom("attic_ts_gc_run").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);
    const runsBefore = await gcRuns();
    await waitFor(async () => (await gcRuns()) >= runsBefore + 2, { what: "two more collector runs", timeoutMs: 60_000, intervalMs: 100 });
    await pullAll();
    assert.equal((await db.kysely.selectFrom("chunk").select("id").execute()).length, chunks.length);
    assert.equal(gc.child.exitCode, null, `the collector is still running:\n${gc.stderr()}`);
  });
});
