// The cross-process change signal of PostgreSQL (ours): every commit that changes a row a hot
// lookup reads (server/committed-lookups.ts: a cache by name; a cache, its upstreams, object, NAR
// and lost chunk link for a narinfo) or the revocation list sends one notification on CHANGE_CHANNEL, from
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

import type { OperationNode } from "kysely";

export const CHANGE_CHANNEL = "attic_ts_change";
export const CHANGE_FUNCTION = "attic_ts_notify_change";

/**
 * Which changes of which table are signalled: every insert, delete and truncate (unless
 * `inserts` is false), and updates of `updates` (every column when absent).
 */
const WATCHED: { table: string; updates?: readonly string[]; inserts?: false }[] = [
  { table: "cache" },
  { table: "object", updates: ["id", "cache_id", "nar_id", "store_path_hash", "store_path", "references", "system", "deriver", "sigs", "ca"] },
  { table: "nar", updates: ["id", "state", "nar_hash", "nar_size", "compression", "num_chunks"] },
  { table: "chunkref", updates: ["chunk_id", "nar_id"], inserts: false },
  { table: "attic_ts_revocation" },
  { table: "attic_ts_upstream" },
];
const byTable = new Map(WATCHED.map((w) => [w.table, w]));

/** PostgreSQL: the function and the triggers (migration attic-ts_0013_change_notifications). */
export function postgresChangeSignalDdl(): string[] {
  return [
    `CREATE OR REPLACE FUNCTION "${CHANGE_FUNCTION}"() RETURNS trigger LANGUAGE plpgsql AS $$ ` +
      `BEGIN PERFORM pg_notify('${CHANGE_CHANNEL}', ''); RETURN NULL; END $$`,
    ...WATCHED.map(({ table, updates, inserts }) => {
      const events = [...(inserts === false ? [] : ["INSERT"]), "DELETE", "TRUNCATE", updates ? `UPDATE OF ${updates.map((c) => `"${c}"`).join(", ")}` : "UPDATE"];
      return `CREATE TRIGGER "attic_ts_change_${table}" AFTER ${events.join(" OR ")} ON "${table}" FOR EACH STATEMENT EXECUTE FUNCTION "${CHANGE_FUNCTION}"()`;
    }),
  ];
}

/**
 * Whether a statement may change what the signal watches (so that this process forgets what it
 * kept as soon as its own write completes): false only for reads and for writes that provably
 * touch nothing watched (a download's last access, an upload's holders and chunk links).
 */
export function mayChangeWatched(node: OperationNode): boolean {
  const n = node as unknown as { kind: string; with?: unknown };
  if (n.kind === "SelectQueryNode") return false;
  if (n.with !== undefined) return true;
  switch (n.kind) {
    case "InsertQueryNode": {
      const table = tableName((node as unknown as { into?: OperationNode }).into);
      const watched = table === null ? null : byTable.get(table);
      return table === null || (watched !== undefined && watched?.inserts !== false);
    }
    case "DeleteQueryNode":
      return (node as unknown as { from: { froms: readonly OperationNode[] } }).from.froms.some((f) => {
        const table = tableName(f);
        return table === null || byTable.has(table);
      });
    case "UpdateQueryNode": {
      const u = node as unknown as { table?: OperationNode; from?: unknown; updates?: readonly { column: OperationNode }[] };
      const table = tableName(u.table);
      if (table === null || u.from !== undefined) return true;
      const watched = byTable.get(table);
      if (!watched) return false;
      if (!watched.updates) return true;
      return (u.updates ?? []).some((c) => {
        const column = columnName(c.column);
        return column === null || watched.updates!.includes(column);
      });
    }
    default:
      return true; // raw SQL and anything else: assume it does
  }
}

function tableName(node: OperationNode | undefined): string | null {
  const n = node as { kind?: string; node?: OperationNode; table?: { identifier: { name: string } } } | undefined;
  if (n?.kind === "AliasNode") return tableName(n.node);
  if (n?.kind === "TableNode") return n.table!.identifier.name;
  return null;
}

function columnName(node: OperationNode): string | null {
  const n = node as { kind?: string; column?: { name: string } };
  return n.kind === "ColumnNode" ? n.column!.name : null;
}
