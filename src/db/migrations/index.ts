// Bringing a database to our schema, in one transaction under a lock (PostgreSQL advisory lock;
// SQLite's BEGIN IMMEDIATE), so two processes migrating at once are harmless: the second finds
// nothing left to do.
//
// Upstream part, by what `seaql_migrations` records:
//   - none of upstream's 15 versions, no tables: create the final schema, record all 15;
//   - all 15 (or more, from a newer upstream): nothing;
//   - the first 12 (upstream's 2023-2025 releases): run the remaining upstream steps one by one;
//   - anything else: refuse, naming what is missing (run upstream's atticd once to catch up).
// Then our own migrations (own.ts), recorded in `attic_ts_migrations`.
import { sql } from "kysely";
import { transaction, type Db } from "../connect.ts";
import { OWN_MIGRATIONS, ownMigrationsTable } from "./own.ts";
import { initialSchema, seaqlMigrationsTable, UPSTREAM_INCREMENTAL_FROM, UPSTREAM_STEPS, UPSTREAM_VERSIONS } from "./upstream.ts";

export { UPSTREAM_VERSIONS } from "./upstream.ts";
export const OWN_MIGRATION_NAMES: readonly string[] = OWN_MIGRATIONS.map((m) => m.name);

export class MigrationError extends Error {
  override name = "MigrationError";
}

/** Apply every pending migration; returns the names applied (empty when up to date). */
export async function migrate(db: Db): Promise<{ applied: string[] }> {
  return transaction(db, async (tx) => {
    await tx.dialect.lockMigrations(tx.kysely);
    await sql.raw(seaqlMigrationsTable()).execute(tx.kysely);
    await sql.raw(ownMigrationsTable()).execute(tx.kysely);
    const applied: string[] = [];
    const now = Math.floor(Date.now() / 1000);

    const upstreamDone = await recordedUpstream(tx);
    const missing = UPSTREAM_VERSIONS.filter((v) => !upstreamDone.has(v));
    if (missing.length === UPSTREAM_VERSIONS.length) {
      if (await tableExists(tx, "cache")) {
        throw new MigrationError("the database has Attic tables but no record of upstream's migrations in seaql_migrations; refusing to guess its schema");
      }
      for (const statement of initialSchema(tx.engine)) await sql.raw(statement).execute(tx.kysely);
      await tx.kysely.insertInto("seaql_migrations").values(missing.map((version) => ({ version, applied_at: now }))).execute();
      applied.push(...missing);
    } else if (missing.length > 0) {
      const early = UPSTREAM_VERSIONS.slice(0, UPSTREAM_INCREMENTAL_FROM);
      const lacking = early.filter((v) => !upstreamDone.has(v));
      if (lacking.length > 0) {
        throw new MigrationError(
          `the database was left by an old upstream Attic (missing ${lacking.join(", ")}); run upstream's atticd once to finish its migrations`,
        );
      }
      for (const version of missing) {
        for (const statement of UPSTREAM_STEPS[version] ?? []) await sql.raw(statement).execute(tx.kysely);
        await tx.kysely.insertInto("seaql_migrations").values({ version, applied_at: now }).execute();
        applied.push(version);
      }
    }

    const ownDone = await recordedOwn(tx);
    for (const m of OWN_MIGRATIONS) {
      if (ownDone.has(m.name)) continue;
      await m.up(tx);
      await tx.kysely.insertInto("attic_ts_migrations").values({ name: m.name, applied_at: now }).execute();
      applied.push(m.name);
    }
    return { applied };
  });
}

/** Names of the migrations not yet applied (api-server refuses to start unless empty). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const upstreamDone = (await tableExists(db, "seaql_migrations")) ? await recordedUpstream(db) : new Set<string>();
  const ownDone = (await tableExists(db, "attic_ts_migrations")) ? await recordedOwn(db) : new Set<string>();
  return [...UPSTREAM_VERSIONS.filter((v) => !upstreamDone.has(v)), ...OWN_MIGRATION_NAMES.filter((n) => !ownDone.has(n))];
}

async function recordedUpstream(db: Db): Promise<Set<string>> {
  const rows = await db.kysely.selectFrom("seaql_migrations").select("version").execute();
  return new Set(rows.map((r) => r.version));
}

async function recordedOwn(db: Db): Promise<Set<string>> {
  const rows = await db.kysely.selectFrom("attic_ts_migrations").select("name").execute();
  return new Set(rows.map((r) => r.name));
}

export async function tableExists(db: Db, name: string): Promise<boolean> {
  const { rows } = await db.dialect.tableExists(name).execute(db.kysely);
  return rows.length > 0;
}
