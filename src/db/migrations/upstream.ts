// Upstream Attic's schema. Its 15 migrations (SeaORM, recorded in `seaql_migrations`) are
// replayed here as the schema they leave behind, in the column types SeaQuery writes for each
// engine, so a database created by us is one upstream recognises as fully migrated, and an
// upstream database is one we adopt in place (spec section 7).
import { dialectOf, type Engine } from "../engines/index.ts";

/** In the order upstream applies them; entries 2 and 3 are swapped relative to their file names, as upstream records them. */
export const UPSTREAM_VERSIONS = [
  "m20221227_000001_create_cache_table",
  "m20221227_000003_create_nar_table",
  "m20221227_000002_create_object_table",
  "m20221227_000004_add_object_last_accessed",
  "m20221227_000005_add_cache_retention_period",
  "m20230103_000001_add_object_created_by",
  "m20230112_000001_add_chunk_table",
  "m20230112_000002_add_chunkref_table",
  "m20230112_000003_add_nar_num_chunks",
  "m20230112_000004_migrate_nar_remote_files_to_chunks",
  "m20230112_000005_drop_old_nar_columns",
  "m20230112_000006_add_nar_completeness_hint",
  "m20260508_000001_add_chunk_state_holders_index",
  "m20260611_000001_add_nar_state_holders_index",
  "m20260624_000001_remove_chunk_recovery",
] as const;

/** How many leading upstream migrations a database must have for us to finish the rest one by one (the 2023 releases). */
export const UPSTREAM_INCREMENTAL_FROM = 12;

/** The final upstream schema, created at once on an empty database (SeaQuery's spelling per engine: dialect.columnTypes). */
export function initialSchema(engine: Engine): string[] {
  const dialect = dialectOf(engine);
  const { pk, bool, timestamp } = dialect.columnTypes;
  const t = { pk, bool, ts: timestamp };
  const narColumns =
    dialect.upstreamNar.numChunksLast
      ? `"id" ${t.pk}, "state" char(1) NOT NULL, "nar_hash" varchar NOT NULL, "nar_size" bigint NOT NULL, ` +
        `"compression" varchar NOT NULL, "holders_count" integer NOT NULL DEFAULT 0, "created_at" ${t.ts} NOT NULL, ` +
        `"num_chunks" integer NOT NULL DEFAULT 1`
      : `"id" ${t.pk}, "state" char(1) NOT NULL, "nar_hash" varchar NOT NULL, "nar_size" bigint NOT NULL, ` +
        `"compression" varchar NOT NULL, "num_chunks" integer NOT NULL DEFAULT 1, "holders_count" integer NOT NULL DEFAULT 0, ` +
        `"created_at" ${t.ts} NOT NULL`;
  return [
    `CREATE TABLE "cache" ( "id" ${t.pk}, "name" varchar(50) NOT NULL UNIQUE, "keypair" varchar NOT NULL, ` +
      `"is_public" ${t.bool} NOT NULL, "store_dir" varchar NOT NULL, "priority" integer NOT NULL, ` +
      `"upstream_cache_key_names" varchar NOT NULL, "created_at" ${t.ts} NOT NULL, "deleted_at" ${t.ts} NULL, ` +
      `"retention_period" integer NULL )`,
    `CREATE INDEX "idx-cache-name" ON "cache" ("name")`,
    `CREATE TABLE "nar" ( ${narColumns} )`,
    ...(dialect.upstreamNar.hashIndex ? [`CREATE INDEX "idx-nar-nar-hash" ON "nar" ("nar_hash")`] : []),
    `CREATE TABLE "object" ( "id" ${t.pk}, "cache_id" bigint NOT NULL, "nar_id" bigint NOT NULL, ` +
      `"store_path_hash" varchar(32) NOT NULL, "store_path" varchar NOT NULL, "references" varchar NOT NULL, ` +
      `"system" varchar, "deriver" varchar, "sigs" varchar NOT NULL, "ca" varchar, "created_at" ${t.ts} NOT NULL, ` +
      `"last_accessed_at" ${t.ts} NULL, "created_by" varchar NULL, ` +
      `CONSTRAINT "fk_object_cache" FOREIGN KEY ("cache_id") REFERENCES "cache" ("id") ON DELETE CASCADE, ` +
      `CONSTRAINT "fk_object_nar" FOREIGN KEY ("nar_id") REFERENCES "nar" ("id") ON DELETE CASCADE )`,
    `CREATE UNIQUE INDEX "idx-object-cache-hash" ON "object" ("cache_id", "store_path_hash")`,
    `CREATE TABLE "chunk" ( "id" ${t.pk}, "state" char(1) NOT NULL, "chunk_hash" varchar NOT NULL, ` +
      `"chunk_size" bigint NOT NULL, "file_hash" varchar NULL, "file_size" bigint NULL, "compression" varchar NOT NULL, ` +
      `"remote_file" varchar NOT NULL, "remote_file_id" varchar NOT NULL UNIQUE, ` +
      `"holders_count" integer NOT NULL DEFAULT 0, "created_at" ${t.ts} NOT NULL )`,
    `CREATE INDEX "idx-chunk-chunk-hash" ON "chunk" ("chunk_hash")`,
    `CREATE TABLE "chunkref" ( "id" ${t.pk}, "nar_id" bigint NOT NULL, "seq" integer NOT NULL, "chunk_id" bigint NULL, ` +
      `CONSTRAINT "fk_chunkref_chunk" FOREIGN KEY ("chunk_id") REFERENCES "chunk" ("id") ON DELETE SET NULL, ` +
      `CONSTRAINT "fk_chunkref_nar" FOREIGN KEY ("nar_id") REFERENCES "nar" ("id") ON DELETE CASCADE )`,
    `CREATE INDEX "idx-chunk-nar-id" ON "chunkref" ("nar_id")`,
    `CREATE INDEX "idx-chunk-chunk-id" ON "chunkref" ("chunk_id")`,
    `CREATE INDEX "idx-chunk-state-holders" ON "chunk" ("state", "holders_count")`,
    `CREATE INDEX "idx-nar-state-holders" ON "nar" ("state", "holders_count")`,
  ];
}

/** Upstream's 2026 migrations, for a database an upstream release of 2023-2025 left at migration 12. */
export const UPSTREAM_STEPS: Record<string, string[]> = {
  m20260508_000001_add_chunk_state_holders_index: [`CREATE INDEX "idx-chunk-state-holders" ON "chunk" ("state", "holders_count")`],
  m20260611_000001_add_nar_state_holders_index: [`CREATE INDEX "idx-nar-state-holders" ON "nar" ("state", "holders_count")`],
  m20260624_000001_remove_chunk_recovery: [
    `ALTER TABLE "chunkref" DROP COLUMN "chunk_hash"`,
    `ALTER TABLE "chunkref" DROP COLUMN "compression"`,
    `ALTER TABLE "nar" DROP COLUMN "completeness_hint"`,
  ],
};

/** upstream's own record table, as sea-orm-migration creates it */
export function seaqlMigrationsTable(): string {
  return `CREATE TABLE IF NOT EXISTS "seaql_migrations" ( "version" varchar NOT NULL PRIMARY KEY, "applied_at" bigint NOT NULL )`;
}
