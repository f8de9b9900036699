// The cross-process change signal of PostgreSQL (ours): every commit that changes a row a hot
// lookup reads (server/committed-lookups.ts: a cache by name; a cache, object, NAR and lost
// chunk link for a narinfo) or the revocation list sends one notification on CHANGE_CHANNEL, from
// triggers, whoever commits it (a replica, atticadm, GC, upstream's server, psql). PostgreSQL
// delivers a notification only when its transaction commits, folds the duplicates of one
// transaction into one, and never for a transaction that rolls back. Every replica listens
// (postgres-change-listener.ts) and forgets what it kept on each one.
//
// Columns written on every download or upload step are left out, so that serving and pushing do
// not make every replica forget its lookups: object.last_accessed_at and download_count,
// nar.holders_count and held_at, chunkref rows as uploads link them (a NAR is served only once
// its state is valid, and that change is signalled). Statement-level triggers: one call per
// statement, however many rows it touches.

export const CHANGE_CHANNEL = "attic_ts_change";
export const CHANGE_FUNCTION = "attic_ts_notify_change";

/** Which changes of which table are signalled: `UPDATE OF` lists the columns that matter. */
const WATCHED: { table: string; events: string }[] = [
  { table: "cache", events: "INSERT OR UPDATE OR DELETE OR TRUNCATE" },
  { table: "object", events: `INSERT OR DELETE OR TRUNCATE OR UPDATE OF "id", "cache_id", "nar_id", "store_path_hash", "store_path", "references", "system", "deriver", "sigs", "ca"` },
  { table: "nar", events: `INSERT OR DELETE OR TRUNCATE OR UPDATE OF "id", "state", "nar_hash", "nar_size", "compression", "num_chunks"` },
  { table: "chunkref", events: `DELETE OR TRUNCATE OR UPDATE OF "chunk_id", "nar_id"` },
  { table: "attic_ts_revocation", events: "INSERT OR UPDATE OR DELETE OR TRUNCATE" },
];

/** PostgreSQL: the function and the triggers (migration attic-ts_0013_change_notifications). */
export function postgresChangeSignalDdl(): string[] {
  return [
    `CREATE OR REPLACE FUNCTION "${CHANGE_FUNCTION}"() RETURNS trigger LANGUAGE plpgsql AS $$ ` +
      `BEGIN PERFORM pg_notify('${CHANGE_CHANNEL}', ''); RETURN NULL; END $$`,
    ...WATCHED.map(({ table, events }) =>
      `CREATE TRIGGER "attic_ts_change_${table}" AFTER ${events} ON "${table}" FOR EACH STATEMENT EXECUTE FUNCTION "${CHANGE_FUNCTION}"()`,
    ),
  ];
}
