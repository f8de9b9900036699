// Queries built and compiled once per engine, then run with new values: building a query with
// Kysely's builder costs more than running it (measured on the narinfo lookup, a three-table
// join: 280 µs through the builder, 80 µs for the same prepared statement on SQLite). Hot
// queries (narinfo, NAR, cache by name) are written with the builder as usual, with named
// placeholders for the values that change; their compiled text and parameter order are kept.
import { CompiledQuery, SelectQueryNode, type Compilable, type Kysely } from "kysely";
import type { Db, Engine } from "../connect.ts";
import type { Database } from "../schema.ts";
import { registerHotStatement } from "../statement-names.ts";

const MARK = "\u0000attic-placeholder:";

/** Placeholders: each property stands for the value of that name when the query runs. */
export type Placeholders<P> = { readonly [K in keyof P]: P[K] };

export interface PreparedQuery<P, R> {
  /** The rows of the query for these values. */
  run(db: Db, values: P): Promise<R[]>;
}

export function prepareQuery<P extends Record<string, unknown>, R>(
  build: (kysely: Kysely<Database>, $: Placeholders<P>) => Compilable<R>,
): PreparedQuery<P, R> {
  const compiled = new Map<Engine, { query: CompiledQuery<R>; slots: (keyof P | null)[]; read: boolean }>();
  const placeholders = new Proxy({} as Placeholders<P>, { get: (_t, name) => `${MARK}${String(name)}` });

  function compile(db: Db) {
    let entry = compiled.get(db.engine);
    if (!entry) {
      const query = build(db.kysely, placeholders).compile();
      const slots = query.parameters.map((v) => (typeof v === "string" && v.startsWith(MARK) ? (v.slice(MARK.length) as keyof P) : null));
      entry = { query, slots, read: SelectQueryNode.is(query.query) };
      compiled.set(db.engine, entry);
      registerHotStatement(query.sql);
    }
    return entry;
  }

  return {
    async run(db, values) {
      const { query, slots, read } = compile(db);
      const parameters = query.parameters.map((v, i) => {
        const slot = slots[i];
        return slot === null || slot === undefined ? v : values[slot];
      });
      if (read && db.hotRead) {
        const rows = db.hotRead(query.sql, parameters);
        if (rows !== undefined) return (await rows) as R[];
      }
      const result = await db.kysely.executeQuery<R>({ ...query, parameters });
      return result.rows;
    },
  };
}

/**
 * A hot write (or read) whose SQL text is written out once per engine and never varies: a batch
 * travels as one parameter (a JSON array read with `json_each` on SQLite, an array on
 * PostgreSQL, see `batchParam`), so the text is the same whatever the batch's size. SQLite keeps
 * it prepared (the driver's statement cache); PostgreSQL runs it as a named prepared statement
 * (statement-names.ts), parsed and planned once per connection. No query builder on the way.
 */
export interface FixedStatement {
  run<R>(db: Db, parameters: readonly unknown[]): Promise<{ rows: R[]; changes: bigint }>;
}

export function fixedStatement(text: Readonly<Record<Engine, string>>): FixedStatement {
  for (const t of Object.values(text)) registerHotStatement(t);
  return {
    async run<R>(db: Db, parameters: readonly unknown[]) {
      const result = await db.kysely.executeQuery<R>(CompiledQuery.raw(text[db.engine], [...parameters]));
      return { rows: result.rows, changes: result.numAffectedRows ?? 0n };
    },
  };
}

/** A batch of values as one parameter of a fixed statement: JSON text on SQLite, an array on PostgreSQL. */
export function batchParam(db: Db, values: readonly unknown[]): unknown {
  return db.engine === "sqlite" ? JSON.stringify(values) : values;
}
