// DB conformance: one suite, run against SQLite (a temp file) and a fresh PostgreSQL database.
// Migrations (fresh, idempotent, concurrent, adopting upstream databases), the exact upstream
// schema, and every query the server and GC use, including cascades, ON CONFLICT behaviour,
// holds, batching, timestamps and hostile strings.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { isRetryable, openDatabase, transaction, type Db } from "../../src/db/connect.ts";
import { migrate, MigrationError, OWN_MIGRATION_NAMES, pendingMigrations, UPSTREAM_VERSIONS } from "../../src/db/migrations/index.ts";
import {
  createCache,
  getCacheByName,
  hardDeleteCache,
  listCaches,
  purgeDeletedCache,
  softDeleteCache,
  updateCache,
} from "../../src/db/queries/caches.ts";
import {
  claimChunks,
  markChunksValid,
  discardUnusedChunks,
  releaseChunks,
  findAndLockChunk,
  insertPendingChunk,
  markChunkValid,
  releaseChunk,
} from "../../src/db/queries/chunks.ts";
import {
  cacheLogicalSize,
  deleteChunkRows,
  deleteExpiredObjects,
  deleteObjects,
  deleteOrphanNars,
  leastRecentlyUsedObjects,
  listQuotaCaches,
  listRetentionCaches,
  markOrphanChunksDeleted,
  reapStalePending,
  selectDeletedChunks,
  totalLogicalSize,
} from "../../src/db/queries/gc.ts";
import { releaseLease, tryAcquireLease, withLease } from "../../src/db/queries/leases.ts";
import {
  findAndLockNar,
  insertChunkRef,
  linkChunks,
  insertNar,
  markNarValid,
  narHasMissingChunks,
  releaseNar,
  getNar,
} from "../../src/db/queries/nars.ts";
import { bumpLastAccessed, findCacheAndObject, findNarChunks, getMissingPaths, getObject, narChunkSummary, upsertObject } from "../../src/db/queries/objects.ts";
import type { CacheRow } from "../../src/db/schema.ts";
import { createDatabase } from "../helpers/postgres.ts";
import { columnsOf, deleteChunk, deleteNar, foreignKeysOf, getChunk, indexesOf } from "./db-introspect.ts";

type Engine = "sqlite" | "postgres";
const ALL_MIGRATIONS = [...UPSTREAM_VERSIONS, ...OWN_MIGRATION_NAMES];
const TABLES = ["cache", "nar", "object", "chunk", "chunkref", "attic_ts_pack"];

const tmp = mkdtempSync(join(tmpdir(), "attic-dbtest-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A URL for an empty database of the engine. */
async function freshUrl(engine: Engine): Promise<string> {
  if (engine === "sqlite") return `sqlite://${join(tmp, `${randomBytes(6).toString("hex")}.db`)}?mode=rwc`;
  const cluster = process.env.ATTIC_TEST_PG_URL;
  if (!cluster) throw new Error("ATTIC_TEST_PG_URL is not set: run through `npm test`, which starts PostgreSQL");
  return createDatabase(cluster, `dbtest_${randomBytes(6).toString("hex")}`);
}

const NIX32 = "0123456789abcdfghijklmnpqrsvwxyz";
function storeHash(): string {
  const b = randomBytes(32);
  let s = "";
  for (let i = 0; i < 32; i++) s += NIX32[b[i]! % 32];
  return s;
}
const sha = () => `sha256:${randomBytes(32).toString("hex")}`;
let seq = 0;
const uniq = (prefix: string) => `${prefix}${++seq}`;

async function newCache(db: Db, name = uniq("cache-"), extra: { retention_period?: number | null; max_size?: number | null } = {}): Promise<CacheRow> {
  assert.equal(
    await createCache(db, { name, keypair: "kp", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: "[]", ...extra }),
    true,
  );
  return (await getCacheByName(db, name))!;
}

async function newChunk(db: Db, opts: { hash?: string; compression?: string } = {}): Promise<number> {
  const id = await insertPendingChunk(db, {
    chunk_hash: opts.hash ?? sha(),
    chunk_size: 100,
    compression: opts.compression ?? "zstd",
    remote_file: JSON.stringify({ Local: { name: `${uniq("f")}.chunk` } }),
    remote_file_id: uniq("local:"),
  });
  await markChunkValid(db, id, { fileHash: sha(), fileSize: 50 });
  return id;
}

/** A valid NAR of `chunks` fresh chunks, linked as the upload pipeline links them; holds released. */
async function newNar(db: Db, chunks = 1, narSize = 1000): Promise<{ narId: number; narHash: string; chunkIds: number[] }> {
  const narHash = sha();
  const narId = await insertNar(db, { state: "P", nar_hash: narHash, nar_size: narSize, compression: "zstd", num_chunks: 0 });
  const chunkIds: number[] = [];
  for (let i = 0; i < chunks; i++) {
    const c = await newChunk(db);
    await insertChunkRef(db, narId, i, c);
    await releaseChunk(db, c);
    chunkIds.push(c);
  }
  await markNarValid(db, narId, chunks);
  return { narId, narHash, chunkIds };
}

async function newObject(db: Db, cache: CacheRow, narId: number, hash = storeHash(), createdAt?: Date): Promise<number> {
  return upsertObject(db, {
    cache_id: cache.id,
    nar_id: narId,
    store_path_hash: hash,
    store_path: `/nix/store/${hash}-x`,
    references: "[]",
    sigs: "[]",
    created_at: createdAt,
  });
}

async function count(db: Db, table: "cache" | "nar" | "object" | "chunk" | "chunkref"): Promise<number> {
  const r = await db.kysely.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  return Number(r.n);
}

for (const engine of ["sqlite", "postgres"] as const) {
  describe(`database conformance (${engine})`, () => {
    let db: Db;
    const opened: Db[] = [];
    const open = async (url: string) => {
      const d = await openDatabase(url, { poolSize: 4 });
      opened.push(d);
      return d;
    };
    before(async () => {
      db = await open(await freshUrl(engine));
    });
    after(async () => {
      for (const d of opened) await d.close().catch(() => {});
    });

    describe("migrations", () => {
      test("apply on an empty database, recording upstream's 15 versions and ours, then are idempotent", async () => {
        assert.deepEqual(await pendingMigrations(db), ALL_MIGRATIONS);
        const first = await migrate(db);
        assert.deepEqual(first.applied, ALL_MIGRATIONS);
        assert.deepEqual(await pendingMigrations(db), []);
        assert.deepEqual((await migrate(db)).applied, []);
        const versions = await db.kysely.selectFrom("seaql_migrations").select(["version", "applied_at"]).execute();
        assert.deepEqual(versions.map((v) => v.version).sort(), [...UPSTREAM_VERSIONS].sort());
        for (const v of versions) assert.ok(Math.abs(Number(v.applied_at) - Date.now() / 1000) < 600, "applied_at is unix seconds");
        const own = await db.kysely.selectFrom("attic_ts_migrations").select("name").execute();
        assert.deepEqual(own.map((o) => o.name).sort(), [...OWN_MIGRATION_NAMES].sort());
      });

      test("two concurrent migrate() calls on one database are safe", async () => {
        const url = await freshUrl(engine);
        // Two processes, as in production: node:sqlite is synchronous, so two connections in one
        // thread would wait on each other's lock inside the same event loop.
        const results = await Promise.all([migrateInChild(url), migrateInChild(url)]);
        const b = await open(url);
        const applied = results.map((r) => r.applied).sort((x, y) => y.length - x.length);
        assert.deepEqual(applied[0], ALL_MIGRATIONS);
        assert.deepEqual(applied[1], []);
        assert.deepEqual(await pendingMigrations(b), []);
      });

      test("an upstream database at migration 12 (2023-2025 releases) is finished step by step", async () => {
        const d = await open(await freshUrl(engine));
        // the final schema plus what migrations 13-15 remove, minus what they add
        const { initialSchema } = await import("../../src/db/migrations/upstream.ts");
        for (const s of initialSchema(engine)) {
          if (s.includes("state-holders")) continue;
          await sql.raw(s).execute(d.kysely);
        }
        await sql.raw(`ALTER TABLE "chunkref" ADD COLUMN "chunk_hash" varchar NOT NULL DEFAULT ''`).execute(d.kysely);
        await sql.raw(`ALTER TABLE "chunkref" ADD COLUMN "compression" varchar NOT NULL DEFAULT ''`).execute(d.kysely);
        await sql.raw(`ALTER TABLE "nar" ADD COLUMN "completeness_hint" boolean NOT NULL DEFAULT TRUE`).execute(d.kysely);
        await sql.raw(`CREATE TABLE "seaql_migrations" ( "version" varchar NOT NULL PRIMARY KEY, "applied_at" bigint NOT NULL )`).execute(d.kysely);
        await d.kysely.insertInto("seaql_migrations").values(UPSTREAM_VERSIONS.slice(0, 12).map((version) => ({ version, applied_at: 1700000000 }))).execute();
        // a hold leaked by upstream starts its grace period at adoption
        await d.kysely.insertInto("nar").values({ state: "V", nar_hash: sha(), nar_size: 1, compression: "zstd", holders_count: 3, created_at: new Date() }).execute();
        const { applied } = await migrate(d);
        assert.deepEqual(applied, [...UPSTREAM_VERSIONS.slice(12), ...OWN_MIGRATION_NAMES]);
        assert.deepEqual((await columnsOf(d, "chunkref")).map((c) => c.name), ["id", "nar_id", "seq", "chunk_id"]);
        assert.ok(!(await columnsOf(d, "nar")).some((c) => c.name === "completeness_hint"));
        const idx = (await indexesOf(d, TABLES)).map((i) => i.name);
        assert.ok(idx.includes("idx-nar-state-holders") && idx.includes("idx-chunk-state-holders") && idx.includes("idx-nar-nar-hash"));
        const held = await d.kysely.selectFrom("nar").select(["holders_count", "held_at"]).executeTakeFirstOrThrow();
        assert.equal(held.holders_count, 3);
        assert.ok(held.held_at !== null);
      });

      test("an upstream database with all 15 (and a newer upstream's extra version) gets only our migrations", async () => {
        const d = await open(await freshUrl(engine));
        const { initialSchema } = await import("../../src/db/migrations/upstream.ts");
        for (const s of initialSchema(engine)) await sql.raw(s).execute(d.kysely);
        await sql.raw(`CREATE TABLE "seaql_migrations" ( "version" varchar NOT NULL PRIMARY KEY, "applied_at" bigint NOT NULL )`).execute(d.kysely);
        const versions = [...UPSTREAM_VERSIONS, "m20990101_000001_future"];
        await d.kysely.insertInto("seaql_migrations").values(versions.map((version) => ({ version, applied_at: 1700000000 }))).execute();
        await d.kysely.insertInto("nar").values({ state: "V", nar_hash: sha(), nar_size: 1, compression: "zstd", holders_count: 2, created_at: new Date() }).execute();
        assert.deepEqual(await pendingMigrations(d), OWN_MIGRATION_NAMES);
        assert.deepEqual((await migrate(d)).applied, OWN_MIGRATION_NAMES);
        const held = await d.kysely.selectFrom("nar").select(["holders_count", "held_at"]).executeTakeFirstOrThrow();
        assert.equal(held.holders_count, 2);
        assert.ok(held.held_at !== null, "leaked holds get held_at at adoption");
        // upstream's record is untouched: its migrator sees only versions it knows
        assert.equal((await d.kysely.selectFrom("seaql_migrations").select("version").execute()).length, 16);
      });

      test("refuses a partially migrated upstream database and tables without a migration record", async () => {
        const d = await open(await freshUrl(engine));
        await sql.raw(`CREATE TABLE "seaql_migrations" ( "version" varchar NOT NULL PRIMARY KEY, "applied_at" bigint NOT NULL )`).execute(d.kysely);
        await d.kysely.insertInto("seaql_migrations").values(UPSTREAM_VERSIONS.slice(0, 5).map((version) => ({ version, applied_at: 1 }))).execute();
        await assert.rejects(migrate(d), (err: Error) => err instanceof MigrationError && /m20230103_000001_add_object_created_by/.test(err.message));
        const e = await open(await freshUrl(engine));
        await sql.raw(`CREATE TABLE "cache" ( "id" integer )`).execute(e.kysely);
        await assert.rejects(migrate(e), MigrationError);
      });
    });

    describe("schema", () => {
      const T = engine === "postgres"
        ? { id: "bigint", str: "character varying", s50: "character varying(50)", s32: "character varying(32)", bool: "boolean", int: "integer", big: "bigint", ts: "timestamp with time zone", ch1: "character(1)" }
        : { id: "integer", str: "varchar", s50: "varchar(50)", s32: "varchar(32)", bool: "boolean", int: "integer", big: "bigint", ts: "timestamp_with_timezone_text", ch1: "char(1)" };
      // [name, type, NOT NULL]; order as each engine's upstream leaves it, then our columns
      const expected: Record<string, [string, string, boolean][]> = {
        cache: [
          ["id", T.id, true], ["name", T.s50, true], ["keypair", T.str, true], ["is_public", T.bool, true], ["store_dir", T.str, true],
          ["priority", T.int, true], ["upstream_cache_key_names", T.str, true], ["created_at", T.ts, true], ["deleted_at", T.ts, false],
          ["retention_period", T.int, false], ["max_size", T.big, false],
        ],
        nar: engine === "postgres"
          ? [["id", T.id, true], ["state", T.ch1, true], ["nar_hash", T.str, true], ["nar_size", T.big, true], ["compression", T.str, true],
             ["holders_count", T.int, true], ["created_at", T.ts, true], ["num_chunks", T.int, true], ["held_at", T.ts, false]]
          : [["id", T.id, true], ["state", T.ch1, true], ["nar_hash", T.str, true], ["nar_size", T.big, true], ["compression", T.str, true],
             ["num_chunks", T.int, true], ["holders_count", T.int, true], ["created_at", T.ts, true], ["held_at", T.ts, false]],
        object: [
          ["id", T.id, true], ["cache_id", T.big, true], ["nar_id", T.big, true], ["store_path_hash", T.s32, true], ["store_path", T.str, true],
          ["references", T.str, true], ["system", T.str, false], ["deriver", T.str, false], ["sigs", T.str, true], ["ca", T.str, false],
          ["created_at", T.ts, true], ["last_accessed_at", T.ts, false], ["created_by", T.str, false], ["download_count", T.big, false],
        ],
        chunk: [
          ["id", T.id, true], ["state", T.ch1, true], ["chunk_hash", T.str, true], ["chunk_size", T.big, true], ["file_hash", T.str, false],
          ["file_size", T.big, false], ["compression", T.str, true], ["remote_file", T.str, true], ["remote_file_id", T.str, true],
          ["holders_count", T.int, true], ["created_at", T.ts, true], ["held_at", T.ts, false],
          ["pack_id", T.big, false], ["pack_offset", T.big, false],
        ],
        attic_ts_pack: [
          ["id", T.id, true], ["state", T.ch1, true], ["remote_file", T.str, true], ["remote_file_id", T.str, true], ["size", T.big, true],
          ["chunks", T.big, true], ["created_at", T.ts, true], ["sealed_at", T.ts, false], ["retired_at", T.ts, false],
        ],
        chunkref: [["id", T.id, true], ["nar_id", T.big, true], ["seq", T.int, true], ["chunk_id", T.big, false]],
      };

      test("tables and columns: names, types, NOT NULL, defaults", async () => {
        for (const [table, cols] of Object.entries(expected)) {
          const actual = await columnsOf(db, table);
          assert.deepEqual(actual.map((c) => [c.name, c.type, c.notNull]), cols, `table ${table}`);
        }
        const dflt = async (t: string, c: string) => (await columnsOf(db, t)).find((x) => x.name === c)?.default;
        assert.equal(await dflt("nar", "holders_count"), "0");
        assert.equal(await dflt("nar", "num_chunks"), "1");
        assert.equal(await dflt("chunk", "holders_count"), "0");
      });

      test("indexes and unique keys", async () => {
        const idx = await indexesOf(db, TABLES);
        const named = (name: string) => idx.find((i) => i.name === name);
        const want: [string, string, string[], boolean][] = [
          ["idx-cache-name", "cache", ["name"], false],
          ["idx-nar-nar-hash", "nar", ["nar_hash"], false],
          ["idx-nar-state-holders", "nar", ["state", "holders_count"], false],
          ["idx-object-cache-hash", "object", ["cache_id", "store_path_hash"], true],
          ["idx-chunk-chunk-hash", "chunk", ["chunk_hash"], false],
          ["idx-chunk-state-holders", "chunk", ["state", "holders_count"], false],
          ["idx-chunk-nar-id", "chunkref", ["nar_id"], false],
          ["idx-chunk-chunk-id", "chunkref", ["chunk_id"], false],
          ["attic-ts-idx-object-nar-id", "object", ["nar_id"], false],
          ["attic-ts-idx-object-cache-created", "object", ["cache_id", "created_at"], false],
          ["attic-ts-idx-chunkref-lost", "chunkref", ["nar_id"], false],
          ["attic-ts-idx-object-cache-downloads", "object", ["cache_id", "download_count"], false],
          ["attic-ts-idx-chunk-pack", "chunk", ["pack_id", "pack_offset"], false],
          ["attic-ts-idx-pack-state", "attic_ts_pack", ["state"], false],
        ];
        for (const [name, table, columns, unique] of want) assert.deepEqual(named(name), { name, table, columns, unique }, name);
        const uniqueOn = (table: string, col: string) => idx.some((i) => i.table === table && i.unique && i.columns.join() === col);
        assert.ok(uniqueOn("cache", "name"), "cache.name UNIQUE");
        assert.ok(uniqueOn("chunk", "remote_file_id"), "chunk.remote_file_id UNIQUE");
      });

      test("foreign keys: CASCADE and SET NULL", async () => {
        const fks = (await foreignKeysOf(db, TABLES)).map((f) => `${f.table}.${f.column}->${f.refTable}.${f.refColumn} ${f.onDelete}`).sort();
        assert.deepEqual(fks, [
          "chunkref.chunk_id->chunk.id SET NULL",
          "chunkref.nar_id->nar.id CASCADE",
          "object.cache_id->cache.id CASCADE",
          "object.nar_id->nar.id CASCADE",
        ]);
      });
    });

    describe("caches", () => {
      test("create, read, conflict on the name (also when soft-deleted), update, soft and hard delete, purge", async () => {
        const name = uniq("c-");
        const c = await newCache(db, name);
        assert.equal(c.is_public, false);
        assert.ok(c.created_at instanceof Date);
        assert.equal(c.deleted_at, null);
        assert.equal(c.retention_period, null);
        assert.equal(c.max_size, null);
        assert.equal(await createCache(db, { name, keypair: "x", is_public: true, store_dir: "/s", priority: 1, upstream_cache_key_names: "[]" }), false);

        assert.equal(await updateCache(db, c.id, { is_public: true, priority: 7, retention_period: 60, max_size: 10 * 2 ** 40 }), true);
        const u = (await getCacheByName(db, name))!;
        assert.deepEqual([u.is_public, u.priority, u.retention_period, u.max_size, u.keypair], [true, 7, 60, 10 * 2 ** 40, "kp"]);

        assert.equal(await softDeleteCache(db, c.id), true);
        assert.equal(await softDeleteCache(db, c.id), false, "second soft delete finds nothing live");
        assert.equal(await getCacheByName(db, name), null);
        assert.ok((await getCacheByName(db, name, { includeDeleted: true }))!.deleted_at instanceof Date);
        assert.equal(await updateCache(db, c.id, { priority: 1 }), false);
        assert.equal(await hardDeleteCache(db, c.id), false, "hard delete skips soft-deleted caches");
        assert.equal(await createCache(db, { name, keypair: "x", is_public: true, store_dir: "/s", priority: 1, upstream_cache_key_names: "[]" }), false);
        assert.ok(!(await listCaches(db)).some((x) => x.name === name));
        assert.ok((await listCaches(db, { includeDeleted: true })).some((x) => x.name === name));
        assert.equal(await purgeDeletedCache(db, name), true);
        assert.equal(await purgeDeletedCache(db, name), false);
        assert.equal(await createCache(db, { name, keypair: "x", is_public: true, store_dir: "/s", priority: 1, upstream_cache_key_names: "[]" }), true);
      });

      test("hard delete cascades to the cache's objects, not to shared NARs", async () => {
        const a = await newCache(db);
        const b = await newCache(db);
        const { narId } = await newNar(db);
        const h = storeHash();
        await newObject(db, a, narId, h);
        await newObject(db, b, narId, h);
        assert.equal(await hardDeleteCache(db, a.id), true);
        assert.equal(await getObject(db, a.id, h), null);
        assert.ok(await getObject(db, b.id, h));
        assert.ok(await getNar(db, narId));
      });
    });

    describe("objects", () => {
      test("upsert inserts, then replaces metadata, sets created_at to now and clears last_accessed_at", async () => {
        const c = await newCache(db);
        const n1 = await newNar(db);
        const n2 = await newNar(db);
        const h = storeHash();
        const old = new Date(Date.now() - 86_400_000);
        const id = await upsertObject(db, { cache_id: c.id, nar_id: n1.narId, store_path_hash: h, store_path: `/nix/store/${h}-a`, references: '["r1"]', sigs: "[]", deriver: "d.drv", created_by: "alice", created_at: old });
        await bumpLastAccessed(db, id);
        assert.ok((await getObject(db, c.id, h))!.last_accessed_at instanceof Date);
        const id2 = await upsertObject(db, { cache_id: c.id, nar_id: n2.narId, store_path_hash: h, store_path: `/nix/store/${h}-a`, references: "[]", sigs: '["k:s"]', ca: "fixed:sha256:x", created_by: "bob" });
        assert.equal(id2, id, "same row");
        const o = (await getObject(db, c.id, h))!;
        assert.equal(o.nar_id, n2.narId);
        assert.equal(o.references, "[]");
        assert.equal(o.sigs, '["k:s"]');
        assert.equal(o.deriver, null);
        assert.equal(o.ca, "fixed:sha256:x");
        assert.equal(o.created_by, "bob");
        assert.equal(o.last_accessed_at, null);
        assert.ok(Date.now() - o.created_at.getTime() < 60_000, "created_at is now");
      });

      test("findCacheAndObject: the cache and its object with a valid NAR in one row; only live caches", async () => {
        const c = await newCache(db);
        const { narId } = await newNar(db, 2);
        const h = storeHash();
        await newObject(db, c, narId, h);
        const found = (await findCacheAndObject(db, c.name, h))!;
        assert.equal(found.cache.id, c.id);
        assert.equal(found.cache.name, c.name);
        assert.equal(found.cache.keypair, c.keypair);
        assert.equal(found.match!.object.store_path_hash, h);
        assert.equal(found.match!.nar.id, narId);
        assert.equal(found.match!.nar.num_chunks, 2);
        // the cache without the object: permission can still be checked
        const none = (await findCacheAndObject(db, c.name, storeHash()))!;
        assert.equal(none.cache.id, c.id);
        assert.equal(none.match, null);
        assert.equal(await findCacheAndObject(db, uniq("nope-"), h), null);
        // a pending NAR is not served
        const p = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        const h2 = storeHash();
        await newObject(db, c, p, h2);
        assert.equal((await findCacheAndObject(db, c.name, h2))!.match, null);
        assert.deepEqual(await getMissingPaths(db, c.name, [h, h2]), [h2]);
        assert.equal(await softDeleteCache(db, c.id), true);
        assert.equal(await findCacheAndObject(db, c.name, h), null);
      });

      test("findNarChunks: ordered by seq; a deleted chunk reads as null", async () => {
        const { narId, chunkIds } = await newNar(db, 3);
        let chunks = await findNarChunks(db, narId);
        assert.deepEqual(chunks.map((c) => [c.seq, c.chunk?.id]), [[0, chunkIds[0]], [1, chunkIds[1]], [2, chunkIds[2]]]);
        assert.equal(chunks[0]!.chunk!.state, "V");
        assert.equal(chunks[0]!.chunk!.file_size, 50);
        assert.equal(await narHasMissingChunks(db, narId), false);
        assert.equal(await deleteChunk(db, chunkIds[1]!), true);
        chunks = await findNarChunks(db, narId);
        assert.deepEqual(chunks.map((c) => c.chunk?.id ?? null), [chunkIds[0], null, chunkIds[2]]);
        const ref = await db.kysely.selectFrom("chunkref").select("chunk_id").where("nar_id", "=", narId).where("seq", "=", 1).executeTakeFirstOrThrow();
        assert.equal(ref.chunk_id, null, "ON DELETE SET NULL");
        assert.equal(await narHasMissingChunks(db, narId), true);
      });

      test("findNarChunks pages by seq; narChunkSummary counts refs, valid chunks and their size", async () => {
        const { narId, chunkIds } = await newNar(db, 5);
        assert.deepEqual(await narChunkSummary(db, narId), { refs: 5, present: 5, fileSize: 250 });
        const first = await findNarChunks(db, narId, { limit: 2 });
        assert.deepEqual(first.map((c) => c.seq), [0, 1]);
        const next = await findNarChunks(db, narId, { afterSeq: 1, limit: 2 });
        assert.deepEqual(next.map((c) => c.chunk?.id), [chunkIds[2], chunkIds[3]]);
        assert.deepEqual((await findNarChunks(db, narId, { afterSeq: 3, limit: 2 })).map((c) => c.seq), [4]);
        assert.deepEqual(await findNarChunks(db, narId, { afterSeq: 4, limit: 2 }), []);
        await deleteChunk(db, chunkIds[3]!);
        assert.deepEqual(await narChunkSummary(db, narId), { refs: 5, present: 4, fileSize: null }, "no size for an incomplete NAR");
        const empty = await insertNar(db, { state: "V", nar_hash: sha(), nar_size: 0, compression: "zstd", num_chunks: 0 });
        assert.deepEqual(await narChunkSummary(db, empty), { refs: 0, present: 0, fileSize: 0 });
      });

      test("getMissingPaths: deduplicated, batched, fast for 10,000 hashes", async () => {
        const c = await newCache(db);
        const other = await newCache(db);
        const { narId } = await newNar(db);
        const present = Array.from({ length: 5000 }, storeHash);
        const absent = Array.from({ length: 5000 }, storeHash);
        const now = new Date();
        for (let i = 0; i < present.length; i += 400) {
          await db.kysely
            .insertInto("object")
            .values(present.slice(i, i + 400).map((h) => ({ cache_id: c.id, nar_id: narId, store_path_hash: h, store_path: `/nix/store/${h}-p`, references: "[]", sigs: "[]", created_at: now })))
            .execute();
        }
        // the same paths in another cache do not count
        await newObject(db, other, narId, absent[0]!);
        const query = [...present, ...absent, ...present.slice(0, 100), ...absent.slice(0, 100)];
        const t0 = performance.now();
        const missing = await getMissingPaths(db, c.name, query);
        const ms = performance.now() - t0;
        console.log(`# getMissingPaths(${query.length} hashes, ${present.length} present) on ${engine}: ${ms.toFixed(1)} ms`);
        assert.deepEqual(new Set(missing), new Set(absent));
        assert.equal(missing.length, absent.length, "deduplicated");
        assert.ok(ms < 5000, `too slow: ${ms} ms`);
        assert.deepEqual(await getMissingPaths(db, c.name, []), []);
      });
    });

    describe("nars and chunks", () => {
      test("findAndLockNar / releaseNar count holders; release never goes below 0", async () => {
        const { narId, narHash } = await newNar(db);
        const [a, b] = await Promise.all([findAndLockNar(db, narHash), findAndLockNar(db, narHash)]);
        assert.equal(a!.id, narId);
        assert.equal(b!.id, narId);
        assert.ok(a!.held_at instanceof Date);
        assert.equal((await getNar(db, narId))!.holders_count, 2);
        await releaseNar(db, narId);
        await releaseNar(db, narId);
        await releaseNar(db, narId);
        assert.equal((await getNar(db, narId))!.holders_count, 0);
        assert.equal(await findAndLockNar(db, sha()), null);
        const pending = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        assert.equal(await findAndLockNar(db, (await getNar(db, pending))!.nar_hash), null, "only valid NARs");
      });

      test("markNarValid only moves pending NARs; deleteNar cascades chunkrefs and objects", async () => {
        const { narId, chunkIds } = await newNar(db, 2);
        await assert.rejects(markNarValid(db, narId, 2), /no longer pending/);
        const c = await newCache(db);
        const h = storeHash();
        await newObject(db, c, narId, h);
        const refs = () => db.kysely.selectFrom("chunkref").select("id").where("nar_id", "=", narId).execute();
        assert.equal((await refs()).length, 2);
        assert.equal(await deleteNar(db, narId), true);
        assert.equal((await refs()).length, 0);
        assert.equal(await getObject(db, c.id, h), null);
        assert.ok(await getChunk(db, chunkIds[0]!), "chunks stay (GC collects them)");
      });

      test("chunks: pending insert holds, markChunkValid, lock by hash and compression, guards", async () => {
        const hash = sha();
        const id = await insertPendingChunk(db, { chunk_hash: hash, chunk_size: 10, compression: "xz", remote_file: '{"Local":{"name":"a"}}', remote_file_id: uniq("rf-") });
        let ch = (await getChunk(db, id))!;
        assert.deepEqual([ch.state, ch.holders_count, ch.file_hash, ch.file_size], ["P", 1, null, null]);
        assert.ok(ch.held_at instanceof Date);
        assert.equal(await findAndLockChunk(db, hash, "xz"), null, "pending chunks are not deduplicated against");
        await markChunkValid(db, id, { fileHash: "sha256:ff", fileSize: 7, chunkSize: 11 });
        ch = (await getChunk(db, id))!;
        assert.deepEqual([ch.state, ch.holders_count, ch.file_hash, ch.file_size, ch.chunk_size], ["V", 1, "sha256:ff", 7, 11]);
        await assert.rejects(markChunkValid(db, id, { fileHash: "x", fileSize: 1 }), /no longer pending/);
        assert.equal(await findAndLockChunk(db, hash, "zstd"), null, "compression must match");
        assert.equal((await findAndLockChunk(db, hash, "xz"))!.id, id);
        assert.equal((await getChunk(db, id))!.holders_count, 2);
        await releaseChunk(db, id);
        await releaseChunk(db, id);
        assert.deepEqual(await discardUnusedChunks(db, [id]), [{ id, remote_file: ch.remote_file }]);
        assert.equal((await getChunk(db, id))!.state, "D", "marked first; the row goes once its file is deleted");
        assert.equal(await deleteChunkRows(db, [id]), 1);
        assert.equal(await getChunk(db, id), null);
      });

      test("discardUnusedChunks keeps held or linked chunks; insertChunkRef refuses chunks that are not valid", async () => {
        const held = await newChunk(db);
        assert.deepEqual(await discardUnusedChunks(db, [held]), [], "still held by its uploader");
        await releaseChunk(db, held);
        const narId = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        await insertChunkRef(db, narId, 0, held);
        assert.deepEqual(await discardUnusedChunks(db, [held]), [], "linked");
        assert.equal((await getChunk(db, held))!.state, "V");
        const pending = await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-") });
        await assert.rejects(insertChunkRef(db, narId, 1, pending), /not valid/);
        await db.kysely.updateTable("chunk").set({ state: "D" }).where("id", "=", held).execute();
        await assert.rejects(insertChunkRef(db, narId, 2, held), /not valid/);
      });

      test("claimChunks: found (held, lowest id), busy (young pending or valid twin), created (pending, held), in order", async () => {
        const row = (hash: string, compression = "zstd") => ({
          chunk_hash: hash,
          chunk_size: 10,
          compression,
          remote_file: JSON.stringify({ Local: { name: `${uniq("f")}.chunk` } }),
          remote_file_id: uniq("local:"),
        });
        const validHash = sha();
        const older = await newChunk(db, { hash: validHash });
        await newChunk(db, { hash: validHash });
        const youngPending = sha();
        await insertPendingChunk(db, row(youngPending));
        const stalePending = sha();
        await insertPendingChunk(db, { ...row(stalePending), created_at: new Date(Date.now() - 3_600_000) });
        const otherCompression = sha();
        await newChunk(db, { hash: otherCompression, compression: "xz" });
        const fresh = sha();
        const claims = await claimChunks(db, [row(fresh), row(validHash), row(youngPending), row(stalePending), row(otherCompression)], new Date(Date.now() - 60_000));
        assert.deepEqual(claims.map((c) => c.kind), ["created", "found", "busy", "created", "created"]);
        assert.equal(claims[1]!.kind === "found" && claims[1]!.chunk.id, older);
        assert.equal((await getChunk(db, older))!.holders_count, 2, "held by the claim");
        const made = await getChunk(db, (claims[0] as { id: number }).id);
        assert.deepEqual([made!.state, made!.holders_count, made!.chunk_hash], ["P", 1, fresh]);
        await assert.rejects(claimChunks(db, [row(fresh), row(fresh)], new Date()), /distinct/);
        assert.deepEqual(await claimChunks(db, [], new Date()), []);
      });

      test("claimChunks with a link: found and created chunks linked at their positions in the claim's transaction, without holds; busy ones left", async () => {
        const row = (hash: string) => ({
          chunk_hash: hash,
          chunk_size: 10,
          compression: "zstd",
          remote_file: JSON.stringify({ Local: { name: `${uniq("f")}.chunk` } }),
          remote_file_id: uniq("local:"),
          holders_count: 0,
        });
        const validHash = sha();
        const valid = await newChunk(db, { hash: validHash });
        await releaseChunk(db, valid);
        const youngPending = sha();
        await insertPendingChunk(db, row(youngPending));
        const fresh = sha();
        const narId = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        const claims = await claimChunks(db, [row(validHash), row(youngPending), row(fresh)], new Date(Date.now() - 60_000), { narId, seqs: [16, 17, 18] });
        assert.deepEqual(claims.map((c) => c.kind), ["found", "busy", "created"]);
        const created = (claims[2] as { id: number }).id;
        const refs = await db.kysely.selectFrom("chunkref").select(["seq", "chunk_id"]).where("nar_id", "=", narId).orderBy("seq").execute();
        assert.deepEqual(refs.map((r) => [r.seq, Number(r.chunk_id)]), [[16, valid], [18, created]], "the busy one is left to link");
        assert.equal((await getChunk(db, valid))!.holders_count, 0, "a linked chunk takes no hold");
        assert.deepEqual([(await getChunk(db, created))!.state, (await getChunk(db, created))!.holders_count], ["P", 0]);
        // what the links keep: GC takes neither
        await markOrphanChunksDeleted(db);
        assert.equal((await getChunk(db, valid))!.state, "V");

        // a NAR that is no longer pending (GC reaped it): nothing of the claim is left
        const gone = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        await deleteNar(db, gone);
        const lost = sha();
        await assert.rejects(claimChunks(db, [row(lost), row(validHash)], new Date(Date.now() - 60_000), { narId: gone, seqs: [0, 1] }), /no longer pending/);
        assert.equal((await db.kysely.selectFrom("chunk").select("id").where("chunk_hash", "=", lost).execute()).length, 0, "rolled back");
        await assert.rejects(claimChunks(db, [row(sha())], new Date(), { narId, seqs: [] }), /one seq per row/);
      });

      if (engine === "postgres") {
        test("claimChunks with a link: a GC whose snapshot predates the claim cannot mark the found chunk deleted", async () => {
          const hash = sha();
          const chunk = await newChunk(db, { hash });
          await releaseChunk(db, chunk);
          const narId = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
          const row = { chunk_hash: hash, chunk_size: 100, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-"), holders_count: 0 };
          await assert.rejects(
            transaction(
              db,
              async (gc) => {
                // the collector's snapshot: the chunk is an orphan
                await gc.kysely.selectFrom("chunk").select("id").where("id", "=", chunk).execute();
                // meanwhile an upload finds it and links it, on another connection, and commits
                const claims = await claimChunks(db, [row], new Date(Date.now() - 60_000), { narId, seqs: [0] });
                assert.equal(claims[0]!.kind, "found");
                await markOrphanChunksDeleted(gc);
              },
              { isolation: "repeatable read" },
            ),
            (err: unknown) => isRetryable(err),
            "the stale collector fails (and is retried on fresh data) instead of taking a linked chunk",
          );
          await markOrphanChunksDeleted(db);
          assert.equal((await getChunk(db, chunk))!.state, "V");
        });
      }

      test("markChunksValid: many pending chunks valid in one transaction; none if one is not pending", async () => {
        const ids = [];
        for (let i = 0; i < 3; i++) ids.push(await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-") }));
        await markChunksValid(db, ids.map((id, i) => ({ id, fileHash: `sha256:${i}`, fileSize: i + 1 })));
        for (const [i, id] of ids.entries()) assert.deepEqual([(await getChunk(db, id))!.state, (await getChunk(db, id))!.file_size], ["V", i + 1]);
        const fresh = await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-") });
        await assert.rejects(markChunksValid(db, [{ id: fresh, fileHash: "x", fileSize: 1 }, { id: ids[0]!, fileHash: "x", fileSize: 1 }]), /no longer pending/);
        assert.equal((await getChunk(db, fresh))!.state, "P", "rolled back");
      });

      test("linkChunks links a batch and gives up one hold per occurrence; all or nothing", async () => {
        const a = await newChunk(db);
        const b = await newChunk(db);
        // the upload holds a twice (it occurs twice in the NAR) and b once
        await db.kysely.updateTable("chunk").set({ holders_count: 2 }).where("id", "=", a).execute();
        const narId = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        await linkChunks(db, narId, [{ seq: 0, chunkId: a }, { seq: 1, chunkId: b }, { seq: 2, chunkId: a }]);
        const refs = await db.kysely.selectFrom("chunkref").select(["seq", "chunk_id"]).where("nar_id", "=", narId).orderBy("seq").execute();
        assert.deepEqual(refs.map((r) => [r.seq, r.chunk_id]), [[0, a], [1, b], [2, a]]);
        assert.equal((await getChunk(db, a))!.holders_count, 0);
        assert.equal((await getChunk(db, b))!.holders_count, 0);

        const c = await newChunk(db);
        // valid and pending chunks link (a packed chunk turns valid at its upload's commit: docs/packs.md); one GC took does not
        const taken = await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-") });
        await db.kysely.updateTable("chunk").set({ state: "D" }).where("id", "=", taken).execute();
        await assert.rejects(linkChunks(db, narId, [{ seq: 3, chunkId: c }, { seq: 4, chunkId: taken }]), /not valid/);
        assert.equal((await getChunk(db, c))!.holders_count, 1, "a failed batch keeps its holds");
        assert.equal((await db.kysely.selectFrom("chunkref").select("id").where("nar_id", "=", narId).execute()).length, 3);
        await releaseChunks(db, [c, c]);
        assert.equal((await getChunk(db, c))!.holders_count, 0, "never below zero");
      });

      test("remote_file_id is unique", async () => {
        const rf = uniq("rf-");
        await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: rf });
        await assert.rejects(insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: rf }));
      });
    });

    describe("garbage collection queries", () => {
      test("retention: per-cache period, global default, 0 disables; expired objects go, recently used stay", async () => {
        const dflt = await newCache(db, uniq("ret-global-"));
        const own = await newCache(db, uniq("ret-own-"), { retention_period: 30 });
        const never = await newCache(db, uniq("ret-never-"), { retention_period: 0 });
        const caches = await listRetentionCaches(db, 3600);
        const period = (id: number) => caches.find((c) => c.id === id)?.retentionPeriod;
        assert.equal(period(dflt.id), 3600);
        assert.equal(period(own.id), 30);
        assert.equal(period(never.id), undefined);
        assert.equal((await listRetentionCaches(db, 0)).find((c) => c.id === dflt.id), undefined);
        // a default beyond int4 works
        assert.equal((await listRetentionCaches(db, 2 ** 33)).find((c) => c.id === dflt.id)?.retentionPeriod, 2 ** 33);

        const { narId } = await newNar(db);
        const old = new Date(Date.now() - 3_600_000);
        const expired = await newObject(db, own, narId, storeHash(), old);
        const used = await newObject(db, own, narId, storeHash(), old);
        await bumpLastAccessed(db, used);
        const fresh = await newObject(db, own, narId, storeHash());
        const cutoff = new Date(Date.now() - 30_000);
        assert.equal(await deleteExpiredObjects(db, { cacheId: own.id, cutoff }), 1);
        const ids = (await db.kysely.selectFrom("object").select("id").where("cache_id", "=", own.id).execute()).map((r) => r.id).sort((a, b) => a - b);
        assert.deepEqual(ids, [used, fresh].sort((a, b) => a - b));
        assert.ok(!ids.includes(expired));
      });

      test("orphan NARs: deleted unless linked or held; a stale hold is seen through", async () => {
        const c = await newCache(db);
        const linked = await newNar(db);
        await newObject(db, c, linked.narId);
        const orphan = await newNar(db);
        const held = await newNar(db);
        await findAndLockNar(db, held.narHash);
        const pending = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        await deleteOrphanNars(db);
        assert.ok(await getNar(db, linked.narId));
        assert.equal(await getNar(db, orphan.narId), null);
        assert.ok(await getNar(db, held.narId), "held");
        assert.ok(await getNar(db, pending), "pending NARs belong to running uploads");
        assert.equal(await deleteOrphanNars(db, { staleHoldBefore: new Date(Date.now() - 60_000) }), 0, "hold is recent");
        // the hold was taken long ago: leaked by a crash
        await db.kysely.updateTable("nar").set({ held_at: new Date(Date.now() - 2 * 86_400_000) }).where("id", "=", held.narId).execute();
        assert.ok((await deleteOrphanNars(db, { staleHoldBefore: new Date(Date.now() - 86_400_000) })) >= 1);
        assert.equal(await getNar(db, held.narId), null);
      });

      test("orphan chunks: marked D, selected, rows deleted in batches; linked and held chunks stay", async () => {
        const linked = await newNar(db, 1);
        const orphans: number[] = [];
        for (let i = 0; i < 3; i++) orphans.push(await newChunk(db));
        for (const id of orphans) await releaseChunk(db, id);
        const held = await newChunk(db); // uploader's hold not released
        await markOrphanChunksDeleted(db);
        for (const id of orphans) assert.equal((await getChunk(db, id))!.state, "D");
        assert.equal((await getChunk(db, held))!.state, "V");
        assert.equal((await getChunk(db, linked.chunkIds[0]!))!.state, "V");
        const deleted = await selectDeletedChunks(db, 100_000);
        for (const id of orphans) assert.ok(deleted.some((c) => c.id === id));
        assert.ok(deleted.every((c) => c.state === "D"));
        // paged by id: a page starts after the last id of the previous one
        const [first, ...rest] = await selectDeletedChunks(db, 1);
        assert.equal(first!.id, deleted[0]!.id);
        assert.deepEqual(rest, []);
        assert.deepEqual((await selectDeletedChunks(db, 100_000, first!.id)).map((c) => c.id), deleted.slice(1).map((c) => c.id));
        assert.equal(await deleteChunkRows(db, [...deleted.map((c) => c.id), held]), deleted.length, "only D rows are removed");
        assert.ok(await getChunk(db, held));
        assert.deepEqual(await selectDeletedChunks(db, 10), []);
      });

      test("deleteChunkRows handles more ids than one statement may bind", async () => {
        const n = 1200;
        const now = new Date();
        const rows = Array.from({ length: n }, () => ({
          state: "D" as const, chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("bulk-"), created_at: now,
        }));
        const ids: number[] = [];
        for (let i = 0; i < n; i += 300) {
          const r = await db.kysely.insertInto("chunk").values(rows.slice(i, i + 300)).returning("id").execute();
          ids.push(...r.map((x) => x.id));
        }
        assert.equal(await deleteChunkRows(db, ids), n);
      });

      test("stale pending rows: old pending NARs deleted (chunkrefs cascade), old pending chunks marked D", async () => {
        const old = new Date(Date.now() - 2 * 86_400_000);
        const grace = new Date(Date.now() - 86_400_000);
        const staleNar = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0, created_at: old });
        const c = await newChunk(db);
        await insertChunkRef(db, staleNar, 0, c);
        const freshNar = await insertNar(db, { state: "P", nar_hash: sha(), nar_size: 1, compression: "zstd", num_chunks: 0 });
        const staleChunk = await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-"), created_at: old });
        const freshChunk = await insertPendingChunk(db, { chunk_hash: sha(), chunk_size: 1, compression: "zstd", remote_file: "{}", remote_file_id: uniq("rf-") });
        const r = await reapStalePending(db, grace);
        assert.ok(r.nars >= 1 && r.chunks >= 1);
        assert.equal(await getNar(db, staleNar), null);
        assert.ok(await getNar(db, freshNar));
        assert.equal((await getChunk(db, staleChunk))!.state, "D");
        assert.equal((await getChunk(db, freshChunk))!.state, "P");
        await assert.rejects(markChunkValid(db, staleChunk, { fileHash: "x", fileSize: 1 }), /no longer pending/, "the dead upload cannot revive it");
      });

      test("size quota: logical size, quota caches, least recently used first", async () => {
        const c = await newCache(db, uniq("quota-"), { max_size: 2500 });
        assert.equal(await cacheLogicalSize(db, c.id), 0);
        const n1 = await newNar(db, 1, 1000);
        const n2 = await newNar(db, 1, 2000);
        const t = Date.now();
        const o1 = await newObject(db, c, n1.narId, storeHash(), new Date(t - 30_000));
        const o2 = await newObject(db, c, n2.narId, storeHash(), new Date(t - 20_000));
        const o3 = await newObject(db, c, n1.narId, storeHash(), new Date(t - 10_000));
        await bumpLastAccessed(db, o1);
        assert.equal(await cacheLogicalSize(db, c.id), 4000);
        assert.ok((await totalLogicalSize(db)) >= 4000);
        assert.deepEqual((await listQuotaCaches(db)).find((q) => q.id === c.id), { id: c.id, name: c.name, maxSize: 2500 });
        const lru = await leastRecentlyUsedObjects(db, c.id, 10);
        assert.deepEqual(lru.map((o) => o.id), [o2, o3, o1]);
        assert.deepEqual(lru.map((o) => o.nar_size), [2000, 1000, 1000]);
        assert.ok(lru.every((o) => o.last_used instanceof Date && o.cache_id === c.id));
        assert.ok((await leastRecentlyUsedObjects(db, null, 5)).length > 0);
        assert.equal(await deleteObjects(db, [o2]), 1);
        assert.equal(await cacheLogicalSize(db, c.id), 2000);
      });

      test("leases: one holder at a time; expired leases can be taken; withLease runs only when acquired", async () => {
        const name = uniq("lease-");
        assert.equal(await tryAcquireLease(db, name, "a", 60_000), true);
        assert.equal(await tryAcquireLease(db, name, "b", 60_000), false);
        assert.equal(await tryAcquireLease(db, name, "a", 60_000), true, "re-entrant for its owner");
        const inner = await withLease(db, name, async () => "ran");
        assert.deepEqual(inner, { acquired: false });
        await releaseLease(db, name, "a");
        assert.deepEqual(await withLease(db, name, async () => "ran", { ttlMs: 1000 }), { acquired: true, value: "ran" });
        assert.equal(await tryAcquireLease(db, name, "c", 1), true, "released after withLease");
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(await tryAcquireLease(db, name, "d", 60_000), true, "expired");
      });
    });

    describe("values and safety", () => {
      test("timestamps round-trip as Date (millisecond precision) and compare across rows", async () => {
        const when = new Date("2024-02-29T23:59:58.123Z");
        const c = await newCache(db);
        const { narId } = await newNar(db);
        const h = storeHash();
        await newObject(db, c, narId, h, when);
        const o = (await getObject(db, c.id, h))!;
        assert.ok(o.created_at instanceof Date);
        assert.equal(o.created_at.toISOString(), when.toISOString());
        assert.equal(await deleteExpiredObjects(db, { cacheId: c.id, cutoff: when }), 0, "strictly before the cutoff");
        assert.equal(await deleteExpiredObjects(db, { cacheId: c.id, cutoff: new Date(when.getTime() + 1) }), 1);
        if (engine === "sqlite") {
          await newObject(db, c, narId, h, when);
          const raw = await sql<{ t: string }>`SELECT created_at AS t FROM object WHERE store_path_hash = ${h}`.execute(db.kysely);
          assert.equal(raw.rows[0]!.t, "2024-02-29T23:59:58.123000000+00:00", "sqlx's RFC 3339 shape, fixed width");
          // rows written by upstream (sqlx, variable fraction) read back and compare correctly
          await sql`UPDATE object SET created_at = '2024-02-29T23:59:58.5+00:00', last_accessed_at = '2024-03-01 00:00:00' WHERE store_path_hash = ${h}`.execute(db.kysely);
          const o2 = (await getObject(db, c.id, h))!;
          assert.equal(o2.created_at.toISOString(), "2024-02-29T23:59:58.500Z");
          assert.equal(o2.last_accessed_at!.toISOString(), "2024-03-01T00:00:00.000Z");
          assert.equal(await deleteExpiredObjects(db, { cacheId: c.id, cutoff: new Date("2024-02-29T23:59:58.499Z") }), 0);
        }
      });

      test("hostile strings are stored literally (no SQL injection)", async () => {
        const hostile = [
          `'; DROP TABLE cache; --`,
          `" OR 1=1 --`,
          "Robert'); DELETE FROM object WHERE ('1'='1",
          "\\'\\\"\\\\ %_ $1 ? :name @p",
          "ünïcødé 🧪 \u202e",
        ];
        const c = await newCache(db);
        const { narId } = await newNar(db);
        for (const s of hostile) {
          const name = uniq("h-") + s.slice(0, 20);
          assert.equal(await createCache(db, { name, keypair: s, is_public: true, store_dir: s, priority: 1, upstream_cache_key_names: JSON.stringify([s]) }), true);
          const row = (await getCacheByName(db, name))!;
          assert.deepEqual([row.name, row.keypair, row.store_dir, JSON.parse(row.upstream_cache_key_names)], [name, s, s, [s]]);
          const h = storeHash();
          await upsertObject(db, { cache_id: c.id, nar_id: narId, store_path_hash: h, store_path: s, references: JSON.stringify([s]), sigs: "[]", deriver: s, ca: s, created_by: s });
          const o = (await getObject(db, c.id, h))!;
          assert.deepEqual([o.store_path, o.deriver, o.ca, o.created_by], [s, s, s, s]);
          assert.equal(await getCacheByName(db, s), null);
          assert.deepEqual(await getMissingPaths(db, s, [h]), [h]);
          assert.equal((await findCacheAndObject(db, c.name, s))!.match, null);
        }
        assert.ok((await count(db, "cache")) > 0, "tables survive");
        assert.ok((await count(db, "object")) > 0);
      });

      test("transactions commit together or not at all; nested calls join", async () => {
        const name = uniq("tx-");
        await assert.rejects(
          transaction(db, async (tx) => {
            await createCache(tx, { name, keypair: "k", is_public: false, store_dir: "/s", priority: 1, upstream_cache_key_names: "[]" });
            await transaction(tx, async (inner) => {
              assert.ok(await getCacheByName(inner, name), "visible inside");
            });
            throw new Error("boom");
          }),
          /boom/,
        );
        assert.equal(await getCacheByName(db, name), null, "rolled back");
        const id = await transaction(db, async (tx) => {
          await createCache(tx, { name, keypair: "k", is_public: false, store_dir: "/s", priority: 1, upstream_cache_key_names: "[]" });
          return (await getCacheByName(tx, name))!.id;
        });
        assert.equal((await getCacheByName(db, name))!.id, id);
      });
    });
  });
}

async function migrateInChild(url: string): Promise<{ applied: string[] }> {
  const { execFile } = await import("node:child_process");
  const connect = new URL("../../src/db/connect.ts", import.meta.url).href;
  const migrations = new URL("../../src/db/migrations/index.ts", import.meta.url).href;
  const script = `
    const { openDatabase } = await import(${JSON.stringify(connect)});
    const { migrate } = await import(${JSON.stringify(migrations)});
    const db = await openDatabase(process.argv[1]);
    const result = await migrate(db);
    await db.close();
    process.stdout.write(JSON.stringify(result));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", script, url], (err, stdout, stderr) => {
      if (err) reject(new Error(`migrate in a child process failed: ${stderr}`));
      else resolve(JSON.parse(stdout) as { applied: string[] });
    });
  });
}
