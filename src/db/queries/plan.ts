// Query-planner hints. `chunk` and `nar` carry upstream's (state, holders_count) indexes, which
// GC needs. Without statistics SQLite lets `state = 'V'` drive those indexes even when the same
// statement names a hash or an id: every claim then walks all valid rows, and uploads slow down
// as the cache grows (measured: 43 MiB/s on a fresh database, 26 MiB/s by 65,000 chunks).
// SQLite's documented idiom, a unary `+` on the column, keeps a term from driving an index;
// PostgreSQL plans by statistics and gets the plain column.
import { sql, type RawBuilder } from "kysely";
import type { Db } from "../connect.ts";

/** `column` for use in a WHERE term that must not pick the index (SQLite: `+column`). */
export function notIndexed(db: Db, column: string): RawBuilder<string> {
  return db.engine === "sqlite" ? sql<string>`+${sql.ref(column)}` : sql<string>`${sql.ref(column)}`;
}
