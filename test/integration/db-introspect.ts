// Reading a database's schema back (columns, indexes, foreign keys) on either engine, for the DB
// conformance suite. Test code may look at the engine; src/ outside src/db may not.
import { sql, type RawBuilder } from "kysely";
import type { Db } from "../../src/db/connect.ts";
import { CHUNK_COLUMNS, toChunkRow } from "../../src/db/queries/rows.ts";
import type { ChunkRow } from "../../src/db/schema.ts";

export interface ColumnInfo {
  name: string;
  type: string;
  notNull: boolean;
  default: string | null;
}
export interface IndexInfo {
  name: string;
  table: string;
  columns: string[];
  unique: boolean;
}
export interface ForeignKeyInfo {
  table: string;
  column: string;
  refTable: string;
  refColumn: string;
  onDelete: string;
}

async function rows(db: Db, query: RawBuilder<unknown>): Promise<Record<string, unknown>[]> {
  return (await query.execute(db.kysely)).rows as Record<string, unknown>[];
}

export async function columnsOf(db: Db, table: string): Promise<ColumnInfo[]> {
  if (db.engine === "sqlite") {
    const r = await rows(db, sql`SELECT name, type, "notnull" AS nn, dflt_value FROM pragma_table_info(${table}) ORDER BY cid`);
    // SQLite type names are case-insensitive, and recent versions report `integer` as `INTEGER`
    // whatever the DDL said (the DDL text itself is upstream's, lowercase)
    return r.map((c) => ({ name: String(c.name), type: String(c.type).replace(/^INTEGER$/, "integer"), notNull: c.nn === 1, default: c.dflt_value === null ? null : String(c.dflt_value) }));
  }
  const r = await rows(
    db,
    sql`SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS nn,
               pg_get_expr(d.adbin, d.adrelid) AS dflt
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = current_schema() AND c.relname = ${table} AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum`,
  );
  return r.map((c) => ({ name: String(c.name), type: String(c.type), notNull: c.nn === true, default: c.dflt === null ? null : String(c.dflt) }));
}

export async function indexesOf(db: Db, tables: string[]): Promise<IndexInfo[]> {
  const out: IndexInfo[] = [];
  if (db.engine === "sqlite") {
    for (const table of tables) {
      for (const idx of await rows(db, sql`SELECT name, "unique" AS uniq FROM pragma_index_list(${table})`)) {
        const cols = await rows(db, sql`SELECT name FROM pragma_index_info(${String(idx.name)}) ORDER BY seqno`);
        out.push({ name: String(idx.name), table, columns: cols.map((c) => String(c.name)), unique: idx.uniq === 1 });
      }
    }
    return out;
  }
  const r = await rows(
    db,
    sql`SELECT ic.relname AS name, tc.relname AS tbl, ix.indisunique AS uniq,
               (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                  FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum) AS cols
          FROM pg_index ix
          JOIN pg_class ic ON ic.oid = ix.indexrelid
          JOIN pg_class tc ON tc.oid = ix.indrelid
          JOIN pg_namespace n ON n.oid = tc.relnamespace
         WHERE n.nspname = current_schema()`,
  );
  for (const i of r) {
    if (!tables.includes(String(i.tbl))) continue;
    out.push({ name: String(i.name), table: String(i.tbl), columns: String(i.cols).split(","), unique: i.uniq === true });
  }
  return out;
}

export async function foreignKeysOf(db: Db, tables: string[]): Promise<ForeignKeyInfo[]> {
  const out: ForeignKeyInfo[] = [];
  if (db.engine === "sqlite") {
    for (const table of tables) {
      for (const fk of await rows(db, sql`SELECT "table" AS ref, "from" AS col, "to" AS refcol, on_delete FROM pragma_foreign_key_list(${table})`)) {
        out.push({ table, column: String(fk.col), refTable: String(fk.ref), refColumn: String(fk.refcol), onDelete: String(fk.on_delete) });
      }
    }
    return out;
  }
  const actions: Record<string, string> = { c: "CASCADE", n: "SET NULL", a: "NO ACTION", r: "RESTRICT", d: "SET DEFAULT" };
  const r = await rows(
    db,
    sql`SELECT tc.relname AS tbl, rc.relname AS ref, con.confdeltype AS del,
               (SELECT attname FROM pg_attribute WHERE attrelid = con.conrelid AND attnum = con.conkey[1]) AS col,
               (SELECT attname FROM pg_attribute WHERE attrelid = con.confrelid AND attnum = con.confkey[1]) AS refcol
          FROM pg_constraint con
          JOIN pg_class tc ON tc.oid = con.conrelid
          JOIN pg_class rc ON rc.oid = con.confrelid
          JOIN pg_namespace n ON n.oid = tc.relnamespace
         WHERE con.contype = 'f' AND n.nspname = current_schema()`,
  );
  for (const fk of r) {
    if (!tables.includes(String(fk.tbl))) continue;
    out.push({ table: String(fk.tbl), column: String(fk.col), refTable: String(fk.ref), refColumn: String(fk.refcol), onDelete: actions[String(fk.del)] ?? String(fk.del) });
  }
  return out;
}

// Single rows by id, and deletes that production never does one at a time (GC deletes in batches):
// the suite uses them to check states, holds and the cascades the schema declares.

export async function getChunk(db: Db, id: number): Promise<ChunkRow | null> {
  const row = await db.kysely.selectFrom("chunk").select(CHUNK_COLUMNS).where("id", "=", id).executeTakeFirst();
  return row ? toChunkRow(row) : null;
}

/** chunkrefs pointing at it become NULL (ON DELETE SET NULL): their NARs turn incomplete. */
export async function deleteChunk(db: Db, id: number): Promise<boolean> {
  const result = await db.kysely.deleteFrom("chunk").where("id", "=", id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Chunkrefs go with it (ON DELETE CASCADE), and so do objects pointing at it. */
export async function deleteNar(db: Db, id: number): Promise<boolean> {
  const result = await db.kysely.deleteFrom("nar").where("id", "=", id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
