// How many items go in one statement: the engine's budget of bound values (engines/dialect.ts)
// over the values each item binds.
import type { Db } from "../connect.ts";

export function maxBatch(db: Db, valuesPerItem = 1): number {
  return Math.max(1, Math.floor(db.dialect.parameterBudget / valuesPerItem));
}
