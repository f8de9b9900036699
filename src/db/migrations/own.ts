// Our migrations on top of upstream's schema. They are recorded in `attic_ts_migrations`, never
// in `seaql_migrations`: upstream's migrator refuses to start when that table names a migration
// it does not know. Everything here only adds (nullable columns, indexes), so upstream's server
// keeps working on a database we migrated.
import { sql } from "kysely";
import type { Db } from "../connect.ts";
import { reconcileCacheStats } from "../queries/stats.ts";

export interface OwnMigration {
  name: string;
  up(tx: Db): Promise<void>;
}

async function exec(tx: Db, statements: string[]): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(tx.kysely);
}

export const OWN_MIGRATIONS: readonly OwnMigration[] = [
  {
    // Indexes for the queries upstream runs without one: dedup lookups by nar_hash on SQLite
    // (upstream's SQLite rebuild of nar lost idx-nar-nar-hash), the orphan-NAR scan and the
    // nar -> object cascade (object.nar_id), and time-based retention per cache.
    name: "attic-ts_0001_indexes",
    up: (tx) =>
      exec(tx, [
        `CREATE INDEX IF NOT EXISTS "idx-nar-nar-hash" ON "nar" ("nar_hash")`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-object-nar-id" ON "object" ("nar_id")`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-object-cache-created" ON "object" ("cache_id", "created_at")`,
      ]),
  },
  {
    // cache.max_size: the per-cache size quota (issue 7). nar/chunk.held_at: when a hold was last
    // taken, so GC can tell a hold leaked by a crashed server from a live one (decision 4).
    // Holds already present (leaked by an upstream server, which never records held_at) start
    // their grace period now.
    name: "attic-ts_0002_quota_and_holds",
    up: async (tx) => {
      const ts = tx.dialect.columnTypes.timestamp;
      await exec(tx, [
        `ALTER TABLE "cache" ADD COLUMN "max_size" bigint NULL`,
        `ALTER TABLE "nar" ADD COLUMN "held_at" ${ts} NULL`,
        `ALTER TABLE "chunk" ADD COLUMN "held_at" ${ts} NULL`,
      ]);
      const now = new Date();
      await tx.kysely.updateTable("nar").set({ held_at: now }).where("holders_count", ">", 0).execute();
      await tx.kysely.updateTable("chunk").set({ held_at: now }).where("holders_count", ">", 0).execute();
    },
  },
  {
    // Named leases (queries/leases.ts): one garbage collector at a time across processes.
    name: "attic-ts_0003_leases",
    up: (tx) =>
      exec(tx, [
        `CREATE TABLE "attic_ts_lease" ( "name" varchar NOT NULL PRIMARY KEY, "owner" varchar NOT NULL, ` +
          `"expires_at" ${tx.dialect.columnTypes.timestamp} NOT NULL )`,
      ]),
  },
  {
    // Repair (docs/decisions.md): a chunk found lost leaves NULL chunkrefs, and get-missing-paths
    // asks of each object's NAR whether it has one. This partial index holds only those rows, so
    // the question is one index probe per NAR however many chunks it has.
    name: "attic-ts_0004_lost_chunkrefs",
    up: (tx) => exec(tx, [`CREATE INDEX IF NOT EXISTS "attic-ts-idx-chunkref-lost" ON "chunkref" ("nar_id") WHERE "chunk_id" IS NULL`]),
  },
  {
    // Upload sessions (uploads in parts, upstream's open PR #342 in shape; docs/decisions.md).
    // The row says who may use the session, what it uploads and how far it got; the parts
    // themselves go straight into the upload pipeline of the atticd that holds the session
    // (`owner`, which proves it is alive by `alive_at`). GC reaps rows idle past the grace period.
    name: "attic-ts_0005_upload_sessions",
    up: (tx) => {
      const ts = tx.dialect.columnTypes.timestamp;
      return exec(tx, [
        `CREATE TABLE "attic_ts_upload_session" ( "id" varchar NOT NULL PRIMARY KEY, ` +
          `"cache_id" bigint NOT NULL REFERENCES "cache" ("id") ON DELETE CASCADE, "created_by" varchar NULL, ` +
          `"upload_info" text NOT NULL, "chunk_size" bigint NOT NULL, "num_parts" integer NOT NULL, ` +
          `"state" varchar NOT NULL, "message" text NULL, "result" text NULL, "owner" varchar NOT NULL, ` +
          `"created_at" ${ts} NOT NULL, "updated_at" ${ts} NOT NULL, "alive_at" ${ts} NOT NULL )`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-upload-session-cache" ON "attic_ts_upload_session" ("cache_id")`,
      ]);
    },
  },
  {
    // Nix's own binary-cache files besides narinfo and NAR (issue 17): build logs and realisations
    // per cache (gone with their cache), and the `.ls` listing of each NAR (gone with its NAR).
    // Logs and listings are stored zstd-compressed.
    name: "attic-ts_0006_nix_files",
    up: (tx) => {
      const { pk, timestamp: ts, blob } = tx.dialect.columnTypes;
      return exec(tx, [
        `CREATE TABLE "attic_ts_build_log" ( "id" ${pk}, "cache_id" bigint NOT NULL, "drv" varchar NOT NULL, ` +
          `"size" bigint NOT NULL, "data" ${blob} NOT NULL, "created_at" ${ts} NOT NULL, ` +
          `CONSTRAINT "fk_build_log_cache" FOREIGN KEY ("cache_id") REFERENCES "cache" ("id") ON DELETE CASCADE )`,
        `CREATE UNIQUE INDEX "attic-ts-idx-build-log-cache-drv" ON "attic_ts_build_log" ("cache_id", "drv")`,
        `CREATE TABLE "attic_ts_realisation" ( "id" ${pk}, "cache_id" bigint NOT NULL, "output_id" varchar NOT NULL, ` +
          `"content" varchar NOT NULL, "created_at" ${ts} NOT NULL, ` +
          `CONSTRAINT "fk_realisation_cache" FOREIGN KEY ("cache_id") REFERENCES "cache" ("id") ON DELETE CASCADE )`,
        `CREATE UNIQUE INDEX "attic-ts-idx-realisation-cache-id" ON "attic_ts_realisation" ("cache_id", "output_id")`,
        `CREATE TABLE "attic_ts_nar_listing" ( "nar_id" bigint NOT NULL PRIMARY KEY, "data" ${blob} NOT NULL, ` +
          `CONSTRAINT "fk_nar_listing_nar" FOREIGN KEY ("nar_id") REFERENCES "nar" ("id") ON DELETE CASCADE )`,
      ]);
    },
  },
  {
    // Running a shared cache (issue 18). attic_ts_revocation: revoked tokens, by `jti` or by
    // subject (every token of `sub` issued at or before `issued_before`); rows whose
    // `expires_at` has passed are cleaned up by GC. attic_ts_pin: named pins in a cache, each
    // keeping a path and its closure (as present in the cache when pinned: attic_ts_pin_path)
    // out of retention and quota GC. Both cascade with their cache.
    name: "attic-ts_0007_revocations_and_pins",
    up: (tx) => {
      const t = { pk: tx.dialect.columnTypes.pk, ts: tx.dialect.columnTypes.timestamp };
      return exec(tx, [
        `CREATE TABLE "attic_ts_revocation" ( "id" ${t.pk}, "jti" varchar NULL, "sub" varchar NULL, ` +
          `"issued_before" ${t.ts} NULL, "expires_at" ${t.ts} NULL, "created_at" ${t.ts} NOT NULL, "reason" varchar NULL )`,
        `CREATE INDEX "attic-ts-idx-revocation-expires" ON "attic_ts_revocation" ("expires_at")`,
        `CREATE TABLE "attic_ts_pin" ( "id" ${t.pk}, "cache_id" bigint NOT NULL, "name" varchar NOT NULL, ` +
          `"store_path" varchar NOT NULL, "created_at" ${t.ts} NOT NULL, "created_by" varchar NULL, ` +
          `CONSTRAINT "fk_attic_ts_pin_cache" FOREIGN KEY ("cache_id") REFERENCES "cache" ("id") ON DELETE CASCADE )`,
        `CREATE UNIQUE INDEX "attic-ts-idx-pin-cache-name" ON "attic_ts_pin" ("cache_id", "name")`,
        `CREATE TABLE "attic_ts_pin_path" ( "pin_id" bigint NOT NULL, "store_path_hash" varchar(32) NOT NULL, ` +
          `PRIMARY KEY ("pin_id", "store_path_hash"), ` +
          `CONSTRAINT "fk_attic_ts_pin_path_pin" FOREIGN KEY ("pin_id") REFERENCES "attic_ts_pin" ("id") ON DELETE CASCADE )`,
        `CREATE INDEX "attic-ts-idx-pin-path-hash" ON "attic_ts_pin_path" ("store_path_hash")`,
      ]);
    },
  },
  {
    // The dashboard (issue 19) reads aggregates, never a scan per page view:
    //   - attic_ts_cache_stats: per cache, its objects, logical and stored bytes; raised by each
    //     push, recomputed exactly by each GC run (queries/stats.ts);
    //   - attic_ts_daily: per cache and UTC day, pushes and downloads and the cache's size at the
    //     day's last change (the charts);
    //   - attic_ts_gc_run: what each GC run freed and the server-wide storage it left behind;
    //   - object.download_count: NAR downloads of the path, raised with last_accessed_at.
    name: "attic-ts_0008_dashboard",
    up: async (tx) => {
      const { timestamp: ts, pk } = tx.dialect.columnTypes;
      const counter = (name: string) => `"${name}" bigint NOT NULL DEFAULT 0`;
      await exec(tx, [
        `ALTER TABLE "object" ADD COLUMN "download_count" bigint NULL`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-object-cache-downloads" ON "object" ("cache_id", "download_count") WHERE "download_count" IS NOT NULL`,
        `CREATE TABLE "attic_ts_cache_stats" ( "cache_id" bigint NOT NULL PRIMARY KEY REFERENCES "cache" ("id") ON DELETE CASCADE, ` +
          `${counter("objects")}, ${counter("logical_bytes")}, ${counter("stored_bytes")}, "updated_at" ${ts} NOT NULL )`,
        `CREATE TABLE "attic_ts_daily" ( "cache_id" bigint NOT NULL REFERENCES "cache" ("id") ON DELETE CASCADE, "day" varchar(10) NOT NULL, ` +
          `${["pushes", "pushed_bytes", "new_chunk_bytes", "new_file_bytes", "downloads", "downloaded_bytes"].map(counter).join(", ")}, ` +
          `"logical_bytes" bigint NULL, "stored_bytes" bigint NULL, PRIMARY KEY ("cache_id", "day") )`,
        `CREATE TABLE "attic_ts_gc_run" ( "id" ${pk}, "finished_at" ${ts} NOT NULL, "duration_ms" bigint NOT NULL, ` +
          `${["objects_removed", "nars_removed", "chunks_removed", "bytes_freed", "objects", "logical_bytes", "nars", "nar_bytes", "chunks", "chunk_bytes", "stored_bytes"].map(counter).join(", ")} )`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-gc-run-finished" ON "attic_ts_gc_run" ("finished_at")`,
      ]);
      // caches that already hold objects start with exact figures (one scan, at migration time)
      await reconcileCacheStats(tx, new Date());
    },
  },
  {
    // Packed chunk storage (issue 25, docs/packs.md). attic_ts_pack: one row per pack file/object,
    // its state (P open, V sealed, R retired by compaction, D being deleted) and size. chunk.pack_id
    // and chunk.pack_offset: where a packed chunk's bytes are (its length is upstream's file_size).
    // A chunk with pack_id NULL is stored one per object at its remote_file, as upstream; a packed
    // chunk's remote_file names where it would go in upstream's layout (unpacking writes it there).
    name: "attic-ts_0009_packs",
    up: (tx) => {
      const { pk, timestamp: ts } = tx.dialect.columnTypes;
      return exec(tx, [
        `CREATE TABLE "attic_ts_pack" ( "id" ${pk}, "state" char(1) NOT NULL, "remote_file" varchar NOT NULL, ` +
          `"remote_file_id" varchar NOT NULL UNIQUE, "size" bigint NOT NULL DEFAULT 0, "chunks" bigint NOT NULL DEFAULT 0, ` +
          `"created_at" ${ts} NOT NULL, "sealed_at" ${ts} NULL, "retired_at" ${ts} NULL )`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-pack-state" ON "attic_ts_pack" ("state")`,
        `ALTER TABLE "chunk" ADD COLUMN "pack_id" bigint NULL`,
        `ALTER TABLE "chunk" ADD COLUMN "pack_offset" bigint NULL`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-chunk-pack" ON "chunk" ("pack_id", "pack_offset") WHERE "pack_id" IS NOT NULL`,
      ]);
    },
  },
  {
    // Pull-through from upstream caches (issue 27): a cache's upstreams in order with the keys
    // each is trusted for; the verified upstream narinfo of a path until its NAR is fetched (any
    // replica may serve the NAR); per-cache figures for the dashboard. All cascade with the cache.
    name: "attic-ts_0010_pull_through",
    up: (tx) => {
      const ts = tx.dialect.columnTypes.timestamp;
      const counter = (name: string) => `"${name}" bigint NOT NULL DEFAULT 0`;
      const cache = (n: string) => `CONSTRAINT "fk_${n}_cache" FOREIGN KEY ("cache_id") REFERENCES "cache" ("id") ON DELETE CASCADE`;
      return exec(tx, [
        `CREATE TABLE "attic_ts_upstream" ( "cache_id" bigint NOT NULL, "position" integer NOT NULL, "url" varchar NOT NULL, ` +
          `"keys" varchar NOT NULL, PRIMARY KEY ("cache_id", "position"), ${cache("attic_ts_upstream")} )`,
        `CREATE TABLE "attic_ts_upstream_narinfo" ( "cache_id" bigint NOT NULL, "store_path_hash" varchar(32) NOT NULL, ` +
          `"upstream_url" varchar NOT NULL, "narinfo" varchar NOT NULL, "created_at" ${ts} NOT NULL, ` +
          `PRIMARY KEY ("cache_id", "store_path_hash"), ${cache("attic_ts_upstream_narinfo")} )`,
        `CREATE TABLE "attic_ts_pull_stats" ( "cache_id" bigint NOT NULL PRIMARY KEY, ` +
          `${["fetched_paths", "fetched_nar_bytes", "upstream_bytes", "upstream_found", "upstream_missed"].map(counter).join(", ")}, ${cache("attic_ts_pull_stats")} )`,
      ]);
    },
  },
  {
    // The files `nix copy --to http://…` uploaded (nix-protocol/served-files.ts): the pushing
    // machine keeps the narinfo it uploaded in its narinfo cache and asks for `nar/<filehash>.nar.<ext>`
    // later. Each row says which path of the cache that file name stands for and which NAR it
    // decodes to; it goes with the cache and with the NAR (so never outlives what it serves).
    name: "attic-ts_0012_nix_file_urls",
    up: (tx) =>
      exec(tx, [
        `CREATE TABLE "attic_ts_nix_file" ( "cache_id" bigint NOT NULL, "file_name" varchar NOT NULL, ` +
          `"store_path_hash" varchar(32) NOT NULL, "nar_id" bigint NOT NULL, ` +
          `PRIMARY KEY ("cache_id", "file_name", "store_path_hash"), ` +
          `CONSTRAINT "fk_attic_ts_nix_file_cache" FOREIGN KEY ("cache_id") REFERENCES "cache" ("id") ON DELETE CASCADE, ` +
          `CONSTRAINT "fk_attic_ts_nix_file_nar" FOREIGN KEY ("nar_id") REFERENCES "nar" ("id") ON DELETE CASCADE )`,
        `CREATE INDEX IF NOT EXISTS "attic-ts-idx-nix-file-nar" ON "attic_ts_nix_file" ("nar_id")`,
      ]),
  },
  {
    // The change signal (db/change-signal.ts): on PostgreSQL, triggers that notify every replica
    // of each commit changing what the hot lookups keep (cache, object, NAR, lost chunk links,
    // revocations), so that replicas may keep lookups between requests. Nothing on SQLite,
    // whose WAL-index header is the signal. Upstream's server fires the triggers like anyone.
    name: "attic-ts_0013_change_notifications",
    up: (tx) => exec(tx, tx.dialect.changeSignalDdl()),
  },
];

export function ownMigrationsTable(): string {
  return `CREATE TABLE IF NOT EXISTS "attic_ts_migrations" ( "name" varchar NOT NULL PRIMARY KEY, "applied_at" bigint NOT NULL )`;
}
