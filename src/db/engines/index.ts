// The engines we run on, by the name a database URL selects (url.ts).
import type { Engine, EngineDialect } from "./dialect.ts";
import { postgresDialect } from "./postgres.ts";
import { sqliteDialect } from "./sqlite.ts";

export type { Engine, EngineDialect, HotReads, Isolation } from "./dialect.ts";
export { hasHotReads } from "./dialect.ts";

const DIALECTS: Record<Engine, EngineDialect> = { sqlite: sqliteDialect, postgres: postgresDialect };

export function dialectOf(engine: Engine): EngineDialect {
  return DIALECTS[engine];
}
