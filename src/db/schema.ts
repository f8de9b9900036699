// The tables as upstream Attic leaves them after all its migrations (spec section 7), plus our
// own nullable columns (`cache.max_size`, `nar.held_at`, `chunk.held_at`; see migrations/own.ts).
// Column types describe what queries may bind; what a SELECT returns differs per engine
// (SQLite: text timestamps, 0/1 booleans), so queries hand out the normalized `*Row` types.
import type { ColumnType, Generated, Insertable } from "kysely";

/** A timestamp column: bound as a Date on both engines, read back as Date (PG) or text (SQLite). */
export type Timestamp = ColumnType<Date | string, Date, Date>;
type NullableTimestamp = ColumnType<Date | string | null, Date | null | undefined, Date | null>;
type Bool = ColumnType<boolean | number, boolean, boolean>;

/**
 * `nar.state` / `chunk.state` (CHAR(1)), upstream's letters, written as these literals in queries:
 * `V` valid, `P` pending (an upload is writing it), `D` deleted (GC is removing its file), and `C`
 * (confirmed deduplicated), which upstream defines but never writes.
 */
export type RowState = "V" | "P" | "C" | "D";

export interface CacheTable {
  id: Generated<number>;
  name: string;
  keypair: string;
  is_public: Bool;
  store_dir: string;
  priority: number;
  /** JSON array of key names */
  upstream_cache_key_names: string;
  created_at: Timestamp;
  deleted_at: NullableTimestamp;
  /** seconds; NULL means the global default, 0 disables time-based GC */
  retention_period: number | null;
  /** ours: maximum logical size in bytes (sum of NAR sizes), NULL = no per-cache quota */
  max_size: number | null;
}

export interface NarTable {
  id: Generated<number>;
  state: RowState;
  /** typed base16, `sha256:<hex>` */
  nar_hash: string;
  nar_size: number;
  /** narinfo compression name: none, br, xz, zstd */
  compression: string;
  num_chunks: Generated<number>;
  holders_count: Generated<number>;
  created_at: Timestamp;
  /** ours: when holders_count was last raised; lets GC see through holds leaked by a crash */
  held_at: NullableTimestamp;
}

export interface ObjectTable {
  id: Generated<number>;
  cache_id: number;
  nar_id: number;
  store_path_hash: string;
  store_path: string;
  /** JSON array of store path base names */
  references: string;
  system: string | null;
  deriver: string | null;
  /** JSON array of signatures */
  sigs: string;
  ca: string | null;
  created_at: Timestamp;
  last_accessed_at: NullableTimestamp;
  created_by: string | null;
  /** ours: NAR downloads of this path (NULL until the first) */
  download_count: number | null;
}

export interface ChunkTable {
  id: Generated<number>;
  state: RowState;
  /** sha256 of the uncompressed chunk, `sha256:<hex>` */
  chunk_hash: string;
  chunk_size: number;
  /** sha256 of the stored (compressed) bytes; NULL while pending */
  file_hash: string | null;
  file_size: number | null;
  compression: string;
  /** upstream's RemoteFile JSON */
  remote_file: string;
  remote_file_id: string;
  holders_count: Generated<number>;
  created_at: Timestamp;
  /** ours: see NarTable.held_at */
  held_at: NullableTimestamp;
  /** ours: the pack holding the chunk's bytes (attic_ts_pack.id); NULL: one object at remote_file */
  pack_id: ColumnType<number | null, number | null | undefined, number | null>;
  /** ours: where the chunk's bytes start in its pack; they are file_size bytes long */
  pack_offset: ColumnType<number | null, number | null | undefined, number | null>;
}

/** `attic_ts_pack.state` (docs/packs.md) */
export const PACK_OPEN = "P";
export const PACK_SEALED = "V";
export const PACK_RETIRED = "R";
export const PACK_DELETING = "D";
/** being written by the compactor (docs/compaction.md): no chunk points at it until it turns V */
export const PACK_COMPACTING = "C";
export type PackState = "P" | "V" | "R" | "D" | "C";

/** ours: a pack file (local) or object (S3) holding many chunks back to back */
export interface PackTable {
  id: Generated<number>;
  state: PackState;
  /** upstream's RemoteFile JSON, as for a chunk: `<uuid>.pack` */
  remote_file: string;
  remote_file_id: string;
  /** bytes written (durable once sealed) */
  size: Counter;
  /** chunks appended */
  chunks: Counter;
  created_at: Timestamp;
  sealed_at: NullableTimestamp;
  /** set when compaction moved its live chunks away: deleted after the readers' grace */
  retired_at: NullableTimestamp;
}

export interface ChunkRefTable {
  id: Generated<number>;
  nar_id: number;
  /** zero-based position of the chunk in the NAR */
  seq: number;
  /** NULL when the chunk was deleted (ON DELETE SET NULL): the NAR is incomplete */
  chunk_id: number | null;
}

/** upstream SeaORM's migration record; only upstream's 15 version strings go here */
export interface SeaqlMigrationsTable {
  version: string;
  applied_at: number;
}

/** our own migration record, kept apart so upstream's migrator never sees unknown versions */
export interface OwnMigrationsTable {
  name: string;
  applied_at: number;
}

/** ours: a named lease held by one process until it expires (e.g. the garbage collector) */
export interface LeaseTable {
  name: string;
  owner: string;
  expires_at: Timestamp;
}

/** ours: an upload session (an upload in parts) */
export type UploadSessionState = "uploading" | "pending" | "failed" | "completed";

export interface UploadSessionTable {
  /** a UUID */
  id: string;
  cache_id: number;
  created_by: string | null;
  /** the upload info (JSON) */
  upload_info: string;
  chunk_size: number;
  num_parts: number;
  state: UploadSessionState;
  /** why it failed */
  message: string | null;
  /** the upload result (JSON) once completed */
  result: string | null;
  /** the atticd process holding the session's pipeline */
  owner: string;
  created_at: Timestamp;
  /** the client's last request */
  updated_at: Timestamp;
  /** the owner's last sign of life */
  alive_at: Timestamp;
}

/** ours: a build log (`PUT /<cache>/log/<drv>`), zstd-compressed */
export interface BuildLogTable {
  id: Generated<number>;
  cache_id: number;
  /** the derivation's base name, `<hash>-<name>.drv` */
  drv: string;
  /** uncompressed bytes */
  size: number;
  data: Uint8Array;
  created_at: Timestamp;
}

/** ours: a realisation of a content-addressed derivation output (`/<cache>/realisations/<id>.doi`) */
export interface RealisationTable {
  id: Generated<number>;
  cache_id: number;
  /** `sha256:<hash>!<output>` */
  output_id: string;
  /** the JSON document as Nix wrote it */
  content: string;
  created_at: Timestamp;
}

/** ours: the `.ls` listing of a NAR, zstd-compressed JSON */
export interface NarListingTable {
  nar_id: number;
  data: Uint8Array;
}

/** ours: a NAR file `nix copy` uploaded (`<filehash>.nar.<ext>`), standing for a path of the cache and its NAR */
export interface NixFileTable {
  cache_id: number;
  file_name: string;
  store_path_hash: string;
  nar_id: number;
}

/** ours: a revoked token (by `jti`) or subject (tokens of `sub` issued at or before `issued_before`) */
export interface RevocationTable {
  id: Generated<number>;
  jti: string | null;
  sub: string | null;
  issued_before: NullableTimestamp;
  /** after this the row is useless (the token has expired) and GC removes it; NULL = kept */
  expires_at: NullableTimestamp;
  created_at: Timestamp;
  reason: string | null;
}

/** ours: a named pin in a cache, keeping its paths (attic_ts_pin_path) out of retention and quota GC */
export interface PinTable {
  id: Generated<number>;
  cache_id: number;
  name: string;
  store_path: string;
  created_at: Timestamp;
  created_by: string | null;
}

export interface PinPathTable {
  pin_id: number;
  store_path_hash: string;
}

/** ours: per-cache aggregates for the dashboard (queries/stats.ts) */
export interface CacheStatsTable {
  cache_id: number;
  objects: number;
  logical_bytes: number;
  stored_bytes: number;
  updated_at: Timestamp;
}

type Counter = ColumnType<number, number | undefined, number>;

/** ours: per cache and UTC day (`YYYY-MM-DD`) */
export interface DailyTable {
  cache_id: number;
  day: string;
  pushes: Counter;
  /** NAR bytes pushed (uncompressed) */
  pushed_bytes: Counter;
  /** uncompressed bytes of the chunks those pushes stored anew (the rest was deduplicated) */
  new_chunk_bytes: Counter;
  /** compressed bytes those new chunks take in storage */
  new_file_bytes: Counter;
  downloads: Counter;
  downloaded_bytes: Counter;
  /** the cache's size after the day's last change */
  logical_bytes: number | null;
  stored_bytes: number | null;
}

/** ours: one row per garbage-collection run, with the server-wide storage it left */
export interface GcRunTable {
  id: Generated<number>;
  finished_at: Timestamp;
  duration_ms: Counter;
  objects_removed: Counter;
  nars_removed: Counter;
  chunks_removed: Counter;
  bytes_freed: Counter;
  objects: Counter;
  logical_bytes: Counter;
  nars: Counter;
  nar_bytes: Counter;
  chunks: Counter;
  chunk_bytes: Counter;
  stored_bytes: Counter;
}

/** ours: a cache's pull-through upstreams, in order (issue 27) */
export interface UpstreamTable {
  cache_id: number;
  position: number;
  /** base URL without a trailing slash, e.g. https://cache.nixos.org */
  url: string;
  /** JSON array of trusted public keys (`name:base64`) */
  keys: string;
}

/** ours: a narinfo found at an upstream and verified, until its NAR is fetched (issue 27) */
export interface UpstreamNarinfoTable {
  cache_id: number;
  store_path_hash: string;
  upstream_url: string;
  /** the upstream's narinfo text, as received */
  narinfo: string;
  created_at: Timestamp;
}

/** ours: per-cache pull-through figures for the dashboard (issue 27) */
export interface PullStatsTable {
  cache_id: number;
  /** paths fetched from an upstream and stored */
  fetched_paths: Counter;
  /** their NAR bytes (uncompressed) */
  fetched_nar_bytes: Counter;
  /** bytes received from upstreams (as sent, compressed) */
  upstream_bytes: Counter;
  /** narinfo misses answered from an upstream / not found at any */
  upstream_found: Counter;
  upstream_missed: Counter;
}

export interface Database {
  cache: CacheTable;
  nar: NarTable;
  object: ObjectTable;
  chunk: ChunkTable;
  chunkref: ChunkRefTable;
  seaql_migrations: SeaqlMigrationsTable;
  attic_ts_migrations: OwnMigrationsTable;
  attic_ts_lease: LeaseTable;
  attic_ts_upload_session: UploadSessionTable;
  attic_ts_build_log: BuildLogTable;
  attic_ts_realisation: RealisationTable;
  attic_ts_nar_listing: NarListingTable;
  attic_ts_nix_file: NixFileTable;
  attic_ts_revocation: RevocationTable;
  attic_ts_pin: PinTable;
  attic_ts_pin_path: PinPathTable;
  attic_ts_cache_stats: CacheStatsTable;
  attic_ts_daily: DailyTable;
  attic_ts_gc_run: GcRunTable;
  attic_ts_pack: PackTable;
  attic_ts_upstream: UpstreamTable;
  attic_ts_upstream_narinfo: UpstreamNarinfoTable;
  attic_ts_pull_stats: PullStatsTable;
}

export interface CacheRow {
  id: number;
  name: string;
  keypair: string;
  is_public: boolean;
  store_dir: string;
  priority: number;
  upstream_cache_key_names: string;
  created_at: Date;
  deleted_at: Date | null;
  retention_period: number | null;
  max_size: number | null;
}

export interface NarRow {
  id: number;
  state: RowState;
  nar_hash: string;
  nar_size: number;
  compression: string;
  num_chunks: number;
  holders_count: number;
  created_at: Date;
  held_at: Date | null;
}

export interface ObjectRow {
  id: number;
  cache_id: number;
  nar_id: number;
  store_path_hash: string;
  store_path: string;
  references: string;
  system: string | null;
  deriver: string | null;
  sigs: string;
  ca: string | null;
  created_at: Date;
  last_accessed_at: Date | null;
  created_by: string | null;
}

export interface ChunkRow {
  id: number;
  state: RowState;
  chunk_hash: string;
  chunk_size: number;
  file_hash: string | null;
  file_size: number | null;
  compression: string;
  remote_file: string;
  remote_file_id: string;
  holders_count: number;
  created_at: Date;
  held_at: Date | null;
}

export interface PackRow {
  id: number;
  state: PackState;
  remote_file: string;
  remote_file_id: string;
  size: number;
  chunks: number;
  created_at: Date;
  sealed_at: Date | null;
  retired_at: Date | null;
}

export interface ChunkRefRow {
  id: number;
  nar_id: number;
  seq: number;
  chunk_id: number | null;
}

export type NewCache = Insertable<CacheTable>;
export type NewObject = Insertable<ObjectTable>;
