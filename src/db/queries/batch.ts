// How many bound values one statement may carry: SQLite builds before 3.32 allow only 999
// ("too many SQL variables", upstream commits 47f17e0/2705d1d), PostgreSQL 65535.
import type { Db } from "../connect.ts";

export function maxBatch(db: Db, valuesPerItem = 1): number {
  const budget = db.engine === "sqlite" ? 500 : 10_000;
  return Math.max(1, Math.floor(budget / valuesPerItem));
}

export function* batches<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
