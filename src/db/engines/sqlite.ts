// SQLite through node:sqlite (sqlite-driver.ts): one connection, one writer at a time, so locks
// are no-ops and every transaction is serializable.
import { mkdirSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { sql } from "kysely";
import { NodeSqliteDialect } from "../sqlite-driver.ts";
import { DatabaseOpenError, DatabaseUrlError, redact } from "../url.ts";
import type { DatabaseErrorClass, EngineDialect } from "./dialect.ts";

/** SQLITE_FULL: the primary result code (the low byte of node:sqlite's extended `errcode`). */
const SQLITE_FULL = 13;

function classifySqliteError(error: unknown): DatabaseErrorClass | null {
  const { code, errcode } = error as { code?: unknown; errcode?: unknown };
  if (code === "ERR_SQLITE_ERROR" && typeof errcode === "number" && (errcode & 0xff) === SQLITE_FULL) return { kind: "full", reason: "SQLITE_FULL" };
  return null;
}

export const sqliteDialect: EngineDialect = {
  engine: "sqlite",
  parameterBudget: 500,
  columnTypes: { pk: "integer NOT NULL PRIMARY KEY AUTOINCREMENT", bool: "boolean", timestamp: "timestamp_with_timezone_text", blob: "blob" },
  upstreamNar: { numChunksLast: false, hashIndex: false },

  async kyselyDialect(target, opts) {
    if (target.engine !== "sqlite") throw new Error(`not a SQLite target: ${target.engine}`);
    if (!target.memory && !existsSync(target.path)) {
      if (!target.create) throw new DatabaseUrlError(`SQLite database ${target.path} does not exist (use ?mode=rwc to create it)`);
      const dir = dirname(resolve(target.path));
      try {
        mkdirSync(dir, { recursive: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new DatabaseOpenError(`cannot open database ${redact(opts.url)}: cannot create its folder ${dir} (${code === "EEXIST" || code === "ENOTDIR" ? "a file is in the way" : (err as Error).message})`, { cause: err });
      }
    }
    return new NodeSqliteDialect({ path: target.path, readOnly: target.readOnly });
  },

  // BEGIN IMMEDIATE (sqlite-driver.ts) already makes writers take turns
  lockKeys: async () => {},
  lockMigrations: async () => {},
  forUpdate: (q) => q,
  forShare: (q) => q,
  notIndexed: (column) => sql<string>`+${sql.ref(column)}`,
  tableExists: (name) => sql`SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ${name}`,
  classifyError: classifySqliteError,
  changeSignalDdl: () => [],
  withIsolation: (builder) => builder,
};
