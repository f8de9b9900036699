// The engines we run on, by the name a database URL selects (url.ts).
import type { DatabaseErrorClass, Engine, EngineDialect } from "./dialect.ts";
import { postgresDialect } from "./postgres.ts";
import { sqliteDialect } from "./sqlite.ts";

export type { DatabaseErrorClass, Engine, EngineDialect, HotReads, Isolation } from "./dialect.ts";
export { hasHotReads } from "./dialect.ts";

const DIALECTS: Record<Engine, EngineDialect> = { sqlite: sqliteDialect, postgres: postgresDialect };

export function dialectOf(engine: Engine): EngineDialect {
  return DIALECTS[engine];
}

/**
 * What a database error means (one error, not its causes), asked of every engine: callers outside
 * `db/` handle errors without knowing which engine runs, and an engine's codes never leak out of it.
 */
export function classifyDatabaseError(error: unknown): DatabaseErrorClass | null {
  if (typeof error !== "object" || error === null) return null;
  for (const dialect of Object.values(DIALECTS)) {
    const found = dialect.classifyError(error);
    if (found) return found;
  }
  return null;
}
