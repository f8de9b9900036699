// A Kysely dialect for Node's built-in SQLite (`node:sqlite`, DatabaseSync): Kysely's own SQLite
// adapter, introspector and query compiler, with a driver of ours. One connection per process;
// Kysely serializes its use (the adapter reports no support for multiple connections), so a
// transaction owns the connection until it ends.
//
// Transactions start with BEGIN IMMEDIATE: they take the write lock up front, so two processes
// on one file wait for each other (busy_timeout) instead of failing on a lock upgrade.
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import {
  CompiledQuery,
  SelectQueryNode,
  ValueNode,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type LimitNode,
  type OffsetNode,
  type OperationNode,
  type QueryCompiler,
  type QueryResult,
} from "kysely";
import type { HotReads } from "./engines/dialect.ts";
import { formatSqliteTimestamp } from "./values.ts";
import { WalState } from "./sqlite-wal-state.ts";

export interface NodeSqliteConfig {
  /** file path or `:memory:` */
  path: string;
  readOnly?: boolean;
}

// busy_timeout first: switching a new file to WAL takes a lock that another process starting at
// the same moment may hold
const PRAGMAS = [
  "PRAGMA busy_timeout = 5000",
  "PRAGMA journal_mode = WAL",
  "PRAGMA synchronous = NORMAL",
  "PRAGMA foreign_keys = ON",
  "PRAGMA temp_store = MEMORY",
];

export class NodeSqliteDialect implements Dialect, HotReads {
  readonly #config: NodeSqliteConfig;
  #driver: NodeSqliteDriver | null = null;

  constructor(config: NodeSqliteConfig) {
    this.#config = config;
  }

  createDriver(): Driver {
    this.#driver = new NodeSqliteDriver(this.#config);
    return this.#driver;
  }

  hotRead(sqlText: string, parameters: readonly unknown[]): unknown[] | undefined {
    return this.#driver?.readNow(sqlText, parameters);
  }

  committedState(): string | null {
    return this.#driver?.walState?.current() ?? null;
  }

  createQueryCompiler(): QueryCompiler {
    return new NodeSqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

/**
 * Kysely's SQLite compiler, with integer LIMIT and OFFSET values written into the SQL text. SQLite
 * (3.47 and later) reads a bound LIMIT's value when it plans the statement, and marks the
 * statement to be planned again whenever that parameter is bound: every run of a cached
 * statement with `limit ?` parsed and planned it anew (measured on the narinfo join: 75-120 µs
 * a run against 8-10 µs with `limit 1`). Placeholders whose value comes at run time
 * (queries/prepared.ts) stay parameters.
 */
class NodeSqliteQueryCompiler extends SqliteQueryCompiler {
  protected override visitLimit(node: LimitNode): void {
    if (!this.#inlined("limit", node.limit)) super.visitLimit(node);
  }

  protected override visitOffset(node: OffsetNode): void {
    if (!this.#inlined("offset", node.offset)) super.visitOffset(node);
  }

  #inlined(keyword: string, value: OperationNode): boolean {
    if (!ValueNode.is(value) || typeof value.value !== "number" || !Number.isSafeInteger(value.value)) return false;
    this.append(`${keyword} ${value.value}`);
    return true;
  }
}

class NodeSqliteDriver implements Driver {
  readonly #config: NodeSqliteConfig;
  #db: DatabaseSync | null = null;
  #connection: NodeSqliteConnection | null = null;
  /** Kysely holds the connection (a query between its awaits, a transaction, a stream) */
  #held = false;
  /** what was committed, by any process (null: not in WAL mode, or an in-memory database) */
  walState: WalState | null = null;

  /**
   * The rows of a read, run now when Kysely does not hold the connection: the statement sees
   * what is committed, as any autocommit read. Undefined while Kysely holds it (a transaction's
   * uncommitted rows must not be read from outside it), and after an error (Kysely's path runs
   * the read again, and logs a failure).
   */
  readNow(sqlText: string, parameters: readonly unknown[]): unknown[] | undefined {
    const db = this.#db;
    if (this.#held || !db || !this.#connection || db.isTransaction) return undefined;
    try {
      return this.#connection.readRows(sqlText, parameters);
    } catch {
      return undefined;
    }
  }

  constructor(config: NodeSqliteConfig) {
    this.#config = config;
  }

  async init(): Promise<void> {
    const db = new DatabaseSync(this.#config.path, { readOnly: this.#config.readOnly ?? false });
    for (const pragma of PRAGMAS) {
      // journal_mode cannot change on a read-only or in-memory database; that is fine
      try {
        db.exec(pragma);
      } catch (err) {
        if (!pragma.includes("journal_mode")) throw err;
      }
    }
    this.#db = db;
    this.#connection = new NodeSqliteConnection(db);
    const mode = (db.prepare("PRAGMA journal_mode").get() as { journal_mode?: string } | undefined)?.journal_mode;
    if (mode === "wal" && this.#config.path !== ":memory:") {
      // the first read opens the WAL index (the -shm file) that the state is read from
      db.prepare("SELECT count(*) FROM sqlite_schema").get();
      this.walState = WalState.open(this.#config.path);
    }
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (!this.#connection) throw new Error("SQLite database is not open");
    // Kysely's mutex (the adapter supports one connection) hands it to one user at a time
    this.#held = true;
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("BEGIN IMMEDIATE"));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("COMMIT"));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("ROLLBACK"));
  }

  async releaseConnection(): Promise<void> {
    this.#held = false;
  }

  async destroy(): Promise<void> {
    this.walState?.close();
    this.walState = null;
    this.#connection?.clear();
    this.#db?.close();
    this.#db = null;
    this.#connection = null;
  }
}

/** prepared statements kept per connection; our queries are few and repeat */
const STATEMENT_CACHE_SIZE = 256;

/** A prepared statement and whether it returns rows (asked once: `columns()` allocates per call). */
interface Prepared {
  stmt: StatementSync;
  returnsRows: boolean;
}

class NodeSqliteConnection implements DatabaseConnection {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, Prepared>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  clear(): void {
    this.#statements.clear();
  }

  #prepare(sqlText: string): Prepared {
    let prepared = this.#statements.get(sqlText);
    if (prepared) {
      // keep recently used statements at the end of the insertion order
      this.#statements.delete(sqlText);
    } else {
      const stmt = this.#db.prepare(sqlText);
      prepared = { stmt, returnsRows: stmt.columns().length > 0 };
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.#statements.keys().next().value;
        if (oldest !== undefined) this.#statements.delete(oldest);
      }
    }
    this.#statements.set(sqlText, prepared);
    return prepared;
  }

  /** The rows of a statement that returns rows (hot reads, outside Kysely's executor). */
  readRows(sqlText: string, parameters: readonly unknown[]): unknown[] {
    return this.#prepare(sqlText).stmt.all(...parameters.map(toSqliteValue));
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const { stmt, returnsRows } = this.#prepare(compiledQuery.sql);
    const params = compiledQuery.parameters.map(toSqliteValue);
    if (returnsRows) {
      return { rows: stmt.all(...params) as R[] };
    }
    const { changes, lastInsertRowid } = stmt.run(...params);
    return { rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) };
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(compiledQuery.query)) throw new Error("SQLite streaming supports SELECT queries only");
    // a fresh statement: iterating one from the cache would be reset by a nested use
    const stmt = this.#db.prepare(compiledQuery.sql);
    for (const row of stmt.iterate(...compiledQuery.parameters.map(toSqliteValue))) {
      yield { rows: [row as R] };
    }
  }
}

/** node:sqlite binds null, numbers, bigints, strings and bytes only. */
function toSqliteValue(value: unknown): SQLInputValue {
  if (value === undefined || value === null) return null;
  if (value instanceof Date) return formatSqliteTimestamp(value);
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "string") return value;
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`cannot bind a ${typeof value} to SQLite`);
}
