// Raw result rows (engine-shaped) to the normalized row types, and the column lists that joined
// queries select under a prefix so that equal column names of different tables do not collide.
import { sql, type AliasedRawBuilder } from "kysely";
import type { CacheRow, ChunkRow, NarRow, ObjectRow, RowState } from "../schema.ts";
import { parseNullableTimestamp, parseTimestamp, toBool, toInt, toNullableInt } from "../values.ts";

type Raw = Record<string, unknown>;

export const CACHE_COLUMNS = [
  "id", "name", "keypair", "is_public", "store_dir", "priority", "upstream_cache_key_names",
  "created_at", "deleted_at", "retention_period", "max_size",
] as const;
export const NAR_COLUMNS = [
  "id", "state", "nar_hash", "nar_size", "compression", "num_chunks", "holders_count", "created_at", "held_at",
] as const;
export const OBJECT_COLUMNS = [
  "id", "cache_id", "nar_id", "store_path_hash", "store_path", "references", "system", "deriver", "sigs", "ca",
  "created_at", "last_accessed_at", "created_by",
] as const;
export const CHUNK_COLUMNS = [
  "id", "state", "chunk_hash", "chunk_size", "file_hash", "file_size", "compression", "remote_file",
  "remote_file_id", "holders_count", "created_at", "held_at",
] as const;

/** `table.col AS prefix_col` for each column, for one joined SELECT. */
export function prefixed(table: string, columns: readonly string[], prefix: string): AliasedRawBuilder<unknown, string>[] {
  return columns.map((c) => sql.ref(`${table}.${c}`).as(`${prefix}${c}`));
}

/** The columns of one table out of a joined row, without the prefix; null when a LEFT JOIN found nothing. */
export function unprefix(raw: Raw, prefix: string): Raw | null {
  if (raw[`${prefix}id`] === null || raw[`${prefix}id`] === undefined) return null;
  const out: Raw = {};
  for (const [k, v] of Object.entries(raw)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

const str = (v: unknown): string => {
  if (typeof v !== "string") throw new TypeError(`expected text, got ${typeof v}`);
  return v;
};
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : str(v));
/** CHAR(1) comes back padded on neither engine, but trim defensively. */
const state = (v: unknown): RowState => str(v).trim() as RowState;

export function toCacheRow(r: Raw): CacheRow {
  return {
    id: toInt(r.id),
    name: str(r.name),
    keypair: str(r.keypair),
    is_public: toBool(r.is_public),
    store_dir: str(r.store_dir),
    priority: toInt(r.priority),
    upstream_cache_key_names: str(r.upstream_cache_key_names),
    created_at: parseTimestamp(r.created_at),
    deleted_at: parseNullableTimestamp(r.deleted_at),
    retention_period: toNullableInt(r.retention_period),
    max_size: toNullableInt(r.max_size),
  };
}

export function toNarRow(r: Raw): NarRow {
  return {
    id: toInt(r.id),
    state: state(r.state),
    nar_hash: str(r.nar_hash),
    nar_size: toInt(r.nar_size),
    compression: str(r.compression),
    num_chunks: toInt(r.num_chunks),
    holders_count: toInt(r.holders_count),
    created_at: parseTimestamp(r.created_at),
    held_at: parseNullableTimestamp(r.held_at),
  };
}

export function toObjectRow(r: Raw): ObjectRow {
  return {
    id: toInt(r.id),
    cache_id: toInt(r.cache_id),
    nar_id: toInt(r.nar_id),
    store_path_hash: str(r.store_path_hash),
    store_path: str(r.store_path),
    references: str(r.references),
    system: strOrNull(r.system),
    deriver: strOrNull(r.deriver),
    sigs: str(r.sigs),
    ca: strOrNull(r.ca),
    created_at: parseTimestamp(r.created_at),
    last_accessed_at: parseNullableTimestamp(r.last_accessed_at),
    created_by: strOrNull(r.created_by),
  };
}

export function toChunkRow(r: Raw): ChunkRow {
  return {
    id: toInt(r.id),
    state: state(r.state),
    chunk_hash: str(r.chunk_hash),
    chunk_size: toInt(r.chunk_size),
    file_hash: strOrNull(r.file_hash),
    file_size: toNullableInt(r.file_size),
    compression: str(r.compression),
    remote_file: str(r.remote_file),
    remote_file_id: str(r.remote_file_id),
    holders_count: toInt(r.holders_count),
    created_at: parseTimestamp(r.created_at),
    held_at: parseNullableTimestamp(r.held_at),
  };
}
