// Query-planner hints: `notIndexed(db, column)` keeps a WHERE term from driving an index where
// the engine would otherwise pick the wrong one (why: engines/dialect.ts, notIndexed).
import type { RawBuilder } from "kysely";
import type { Db } from "../connect.ts";

/** `column` for use in a WHERE term that must not pick the index (SQLite: `+column`). */
export function notIndexed(db: Db, column: string): RawBuilder<string> {
  return db.dialect.notIndexed(column);
}
