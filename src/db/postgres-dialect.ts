// PostgreSQL through `pg`, imported only when a postgres:// URL is configured. The pool has its
// own type parsers (nothing global changes): int8 as number (ids and byte sizes stay far below
// 2^53), timestamptz as Date (pg's default).
import { PostgresDialect, type CompiledQuery, type DatabaseConnection, type Dialect, type Driver, type PostgresDialectConfig } from "kysely";
import type { HotReads } from "./engines/dialect.ts";
import type { ClientConfig, Pool, QueryConfig } from "pg";
import { hotStatementName } from "./statement-names.ts";
import { PostgresChangeListener } from "./postgres-change-listener.ts";
import { mayChangeWatched } from "./change-signal.ts";

const INT8_OID = 20;
/** application_name of the change listener's connection (pg_stat_activity shows it; tests cut it) */
export const CHANGE_LISTENER_NAME = "attic-ts change listener";

export interface PostgresSetup {
  dialect: Dialect;
  pool: Pool;
}

export async function createPostgresDialect(url: string, poolSize: number, log?: (msg: string) => void): Promise<PostgresSetup> {
  const pg = (await import("pg")).default;
  const onClientError = (err: Error) => log?.(`PostgreSQL connection lost: ${err.message}`);
  // pg emits 'error' on a client whose server goes away (a restart, a crash, an admin's
  // pg_terminate_backend), also while the client is checked out of the pool, where pg-pool does
  // not listen; an 'error' nobody hears ends the process. So every client the pool makes (and
  // Kysely's cancel client, which is the pool's Client too) listens for its whole life. The query
  // in flight fails on its own (a 503 upstream), and the client, no longer queryable, is dropped
  // by the pool when it is released; the next checkout connects afresh.
  class ListenedClient extends pg.Client {
    constructor(config?: string | ClientConfig) {
      super(config);
      this.on("error", onClientError);
    }

    // Kysely calls query(text, values); a hot statement goes as a named prepared statement
    // (statement-names.ts), parsed and planned once per connection
    override query(...args: unknown[]): never {
      const query = super.query as unknown as (...a: unknown[]) => never;
      const [text, values] = args;
      if (args.length === 2 && typeof text === "string" && Array.isArray(values)) {
        const name = hotStatementName(text);
        if (name) return query.call(this, { name, text, values } satisfies QueryConfig);
      }
      return query.apply(this, args);
    }
  }
  const pool = new pg.Pool({
    Client: ListenedClient,
    connectionString: url,
    max: poolSize,
    // a down database must fail requests quickly (503) rather than queue them forever
    connectionTimeoutMillis: 10_000,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") => {
        if (oid === INT8_OID && format !== "binary") return (v: string) => parseInt8(v);
        return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
      }) as typeof pg.types.getTypeParser,
    },
  });
  // an idle client losing its server: pg-pool drops it and re-emits the error here, where it
  // must be heard too (the client's own listener has logged it)
  pool.on("error", () => {});
  // the change signal's own connection, made on the first hot lookup that asks (atticd's request
  // paths), never by atticadm or a collector
  const changes = new PostgresChangeListener(() => new ListenedClient({ connectionString: url, application_name: CHANGE_LISTENER_NAME }), { log });
  return { dialect: new HotReadingPostgresDialect({ pool }, pool, changes), pool };
}

/**
 * Hot reads straight from the pool (a checkout, the named statement, the release), as Kysely would
 * send them; what is committed, as the change listener hears it.
 */
class HotReadingPostgresDialect extends PostgresDialect implements HotReads {
  readonly #pool: Pool;
  readonly #changes: PostgresChangeListener;

  constructor(config: PostgresDialectConfig, pool: Pool, changes: PostgresChangeListener) {
    super(config);
    this.#pool = pool;
    this.#changes = changes;
  }

  /**
   * The driver, telling the change listener of this process's own writes to what the signal
   * watches as they complete: a request that follows one of them (a chunk marked lost, a cache
   * reconfigured) never waits for the notification to come back from the server.
   */
  override createDriver(): Driver {
    const driver = super.createDriver();
    const changes = this.#changes;
    const destroy = driver.destroy.bind(driver);
    driver.destroy = async () => {
      await changes.close();
      await destroy();
    };
    const commit = driver.commitTransaction.bind(driver);
    driver.commitTransaction = async (connection) => {
      try {
        await commit(connection);
      } finally {
        changes.localCommit();
      }
    };
    const acquire = driver.acquireConnection.bind(driver);
    driver.acquireConnection = async () => {
      const connection = await acquire();
      if (!heardConnections.has(connection)) {
        heardConnections.add(connection);
        const execute = connection.executeQuery.bind(connection);
        connection.executeQuery = async <R>(query: CompiledQuery) => {
          try {
            return await execute<R>(query);
          } finally {
            if (mayChangeWatched(query.query)) changes.localCommit();
          }
        };
      }
      return connection;
    };
    return driver;
  }

  committedState(): string | null {
    return this.#changes.current();
  }

  hotRead(text: string, parameters: readonly unknown[]): Promise<unknown[]> | undefined {
    const name = hotStatementName(text);
    if (!name) return undefined;
    return this.#pool.query({ name, text, values: [...parameters] }).then((r) => r.rows as unknown[]);
  }
}

/** Connections whose writes already tell the change listener (Kysely reuses one per pool client). */
const heardConnections = new WeakSet<DatabaseConnection>();

function parseInt8(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${v} exceeds the safe integer range`);
  return n;
}
