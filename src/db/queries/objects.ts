// Queries on `object`: the hot narinfo/NAR lookups, get-missing-paths and the upsert at the end
// of an upload.
import { sql } from "kysely";
import type { Db } from "../connect.ts";
import type { CacheRow, ChunkRow, NarRow, ObjectRow } from "../schema.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";
import { prepareQuery, type Placeholders } from "./prepared.ts";
import { toBool, toInt } from "../values.ts";
import { CHUNK_COLUMNS, OBJECT_COLUMNS, prefixed, toChunkRow, toObjectRow, unprefix } from "./rows.ts";

/** What serving a narinfo or NAR needs of a cache, an object and its NAR (a narrow row is a cheap row). */
export type ServedCache = Pick<CacheRow, "id" | "name" | "keypair" | "is_public" | "store_dir" | "priority">;
export type ServedObject = Pick<ObjectRow, "id" | "store_path_hash" | "store_path" | "references" | "system" | "deriver" | "sigs" | "ca">;
export type ServedNar = Pick<NarRow, "id" | "nar_hash" | "nar_size" | "compression" | "num_chunks">;

/** A live cache by name, and its object with this store path hash whose NAR is valid (or null). */
export interface CacheObjectLookup {
  cache: ServedCache;
  /** the cache has upstreams configured (pull-through: a path it lacks may be fetched) */
  hasUpstreams: boolean;
  match: { object: ServedObject; nar: ServedNar; /** a chunk of the NAR is known lost: a re-push heals it */ incomplete: boolean } | null;
}

/**
 * The hot path of narinfo and NAR requests in one round trip: the cache row (needed to check
 * permission before anything is revealed) and, when present, the object and its valid NAR.
 * Null when there is no live cache of that name.
 */
const cacheAndObjectQuery = prepareQuery((k, $: Placeholders<{ cacheName: string; hash: string }>) =>
  k
    .selectFrom("cache")
    .leftJoin("object", (join) => join.onRef("object.cache_id", "=", "cache.id").on("object.store_path_hash", "=", $.hash))
    .leftJoin("nar", (join) => join.onRef("nar.id", "=", "object.nar_id").on("nar.state", "=", "V"))
    .select([
      "cache.id as c_id", "cache.name as c_name", "cache.keypair as c_keypair", "cache.is_public as c_is_public",
      "cache.store_dir as c_store_dir", "cache.priority as c_priority",
      "object.id as o_id", "object.store_path as o_store_path", "object.references as o_references", "object.system as o_system",
      "object.deriver as o_deriver", "object.sigs as o_sigs", "object.ca as o_ca",
      "nar.id as n_id", "nar.nar_hash as n_nar_hash", "nar.nar_size as n_nar_size", "nar.compression as n_compression",
      "nar.num_chunks as n_num_chunks",
      // a chunk known lost (its chunkref nulled): one probe of a partial index that is almost always empty
      (eb) =>
        eb
          .exists(eb.selectFrom("chunkref").select("chunkref.id").whereRef("chunkref.nar_id", "=", "nar.id").where("chunkref.chunk_id", "is", null))
          .as("n_lost"),
      (eb) => eb.exists(eb.selectFrom("attic_ts_upstream").select("attic_ts_upstream.cache_id").whereRef("attic_ts_upstream.cache_id", "=", "cache.id")).as("c_has_upstreams"),
    ])
    .where("cache.name", "=", $.cacheName)
    .where("cache.deleted_at", "is", null)
    .limit(1),
);

export async function findCacheAndObject(db: Db, cacheName: string, storePathHash: string): Promise<CacheObjectLookup | null> {
  const [r] = await cacheAndObjectQuery.run(db, { cacheName, hash: storePathHash });
  if (!r) return null;
  const cache: ServedCache = {
    id: toInt(r.c_id),
    name: r.c_name,
    keypair: r.c_keypair,
    is_public: toBool(r.c_is_public),
    store_dir: r.c_store_dir,
    priority: toInt(r.c_priority),
  };
  const hasUpstreams = toBool(r.c_has_upstreams);
  if (r.o_id === null || r.n_id === null) return { cache, hasUpstreams, match: null };
  return {
    cache,
    hasUpstreams,
    match: {
      object: {
        id: toInt(r.o_id),
        store_path_hash: storePathHash,
        store_path: r.o_store_path!,
        references: r.o_references!,
        system: r.o_system ?? null,
        deriver: r.o_deriver ?? null,
        sigs: r.o_sigs!,
        ca: r.o_ca ?? null,
      },
      nar: {
        id: toInt(r.n_id),
        nar_hash: r.n_nar_hash!,
        nar_size: toInt(r.n_nar_size),
        compression: r.n_compression!,
        num_chunks: toInt(r.n_num_chunks),
      },
      incomplete: toBool(r.n_lost),
    },
  };
}

export interface NarChunk {
  seq: number;
  /** null when the chunk is gone or not valid: the NAR is incomplete */
  chunk: ChunkRow | null;
}

/** How many chunks a NAR links, how many of them are valid, and their stored size in total. */
export interface NarChunkSummary {
  refs: number;
  present: number;
  /** sum of the valid chunks' file sizes; null when one of them has no recorded size */
  fileSize: number | null;
}

/** One aggregate query: enough to answer 503 IncompleteNar or set Content-Length before streaming. */
export async function narChunkSummary(db: Db, narId: number): Promise<NarChunkSummary> {
  const row = await db.kysely
    .selectFrom("chunkref")
    .leftJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
    .select((eb) => [
      eb.fn.countAll().as("refs"),
      eb.fn.count("chunk.id").as("present"),
      eb.fn.count("chunk.file_size").as("sized"),
      eb.fn.sum("chunk.file_size").as("total"),
    ])
    .where("chunkref.nar_id", "=", narId)
    .executeTakeFirstOrThrow();
  const refs = Number(row.refs);
  const present = Number(row.present);
  return { refs, present, fileSize: Number(row.sized) === refs ? Number(row.total ?? 0) : null };
}

/** What streaming a NAR needs of each chunk row (a narrow row is a cheap row: 9,000 per 600 MB NAR). */
export type ServedChunk = Pick<ChunkRow, "id" | "remote_file" | "remote_file_id" | "file_size" | "chunk_size"> & {
  /** the chunk's pack (docs/packs.md): its id, RemoteFile JSON and the chunk's offset in it; all null for a chunk stored as one object */
  pack_id?: number | null;
  pack_remote_file?: string | null;
  pack_offset?: number | null;
};

/**
 * A page of a NAR's served chunks after `$.after` (a seq, or a chunkref id with `byRef`). The
 * page size is written into the statement (one prepared query per size: only CHUNK_PAGE in
 * practice), as SQLite plans a statement with `limit ?` anew on every run. By chunkref id, the
 * index on `nar_id` (SQLite keeps its entries in rowid order) yields a page without sorting every
 * chunkref of the NAR, where ordering by `seq` sorts them all for each page (a 9,000-chunk NAR:
 * 35 pages, each sorting 9,000 rows).
 */
function servedChunksQuery(byRef: boolean, limit: number): ReturnType<typeof buildServedChunksQuery> {
  const key = `${byRef ? "ref" : "seq"}:${limit}`;
  let query = servedChunksQueries.get(key);
  if (!query) servedChunksQueries.set(key, (query = buildServedChunksQuery(byRef, limit)));
  return query;
}

function buildServedChunksQuery(byRef: boolean, limit: number) {
  const column = byRef ? "chunkref.id" : "chunkref.seq";
  return prepareQuery((k, $: Placeholders<{ narId: number; after: number }>) =>
    k
      .selectFrom("chunkref")
      .leftJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
      .leftJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
      .select([
        "chunkref.seq as seq",
        "chunkref.id as ref",
        "chunk.id as id",
        "chunk.remote_file as remote_file",
        "chunk.remote_file_id as remote_file_id",
        "chunk.file_size as file_size",
        "chunk.chunk_size as chunk_size",
        "chunk.pack_id as pack_id",
        "chunk.pack_offset as pack_offset",
        "attic_ts_pack.remote_file as pack_remote_file",
      ])
      .where("chunkref.nar_id", "=", $.narId)
      .where(column, ">", $.after)
      .orderBy(column)
      .limit(limit),
  );
}
const servedChunksQueries = new Map<string, ReturnType<typeof buildServedChunksQuery>>();

/**
 * A page of a NAR's chunks for streaming it, in order after `afterSeq` (at most `limit`): a 4 GiB NAR
 * has some 65,000 chunks, which a download walks through without holding all their rows. `chunk` is
 * null for a chunk that is gone.
 */
export async function findServedChunks(db: Db, narId: number, afterSeq: number, limit: number): Promise<{ seq: number; ref: number; chunk: ServedChunk | null }[]> {
  return servedRows(await servedChunksQuery(false, limit).run(db, { narId, after: afterSeq }));
}

/**
 * A pager over the NAR's served chunks (findServedChunks' pages) that follows chunkref ids: the
 * chunkrefs of a NAR are inserted in `seq` order, so the page after one that ended at ref R is
 * usually the next rows by id after R, found without a sort. A page whose rows are not the
 * next seqs in order (chunkrefs inserted out of order), and the last page, are read again by `seq`.
 */
export function servedChunkPager(db: Db, narId: number): (afterSeq: number, limit: number) => Promise<{ seq: number; chunk: ServedChunk | null }[]> {
  /** the chunkref id of the row at each seq a page ended on (-1: before the first) */
  const refAt = new Map<number, number>([[-1, 0]]);
  return async (afterSeq, limit) => {
    const afterRef = refAt.get(afterSeq);
    let page = afterRef === undefined ? null : servedRows(await servedChunksQuery(true, limit).run(db, { narId, after: afterRef }));
    // a full page of the next seqs is exactly the page asked for; a short one might miss a row
    // stored out of order, so the last page is read by seq (one sort per download, not one per page)
    if (!page || page.length < limit || page.some((row, i) => row.seq !== afterSeq + 1 + i)) page = await findServedChunks(db, narId, afterSeq, limit);
    const last = page.at(-1);
    if (last) refAt.set(last.seq, last.ref);
    return page;
  };
}

function servedRows(rows: Awaited<ReturnType<ReturnType<typeof buildServedChunksQuery>["run"]>>): { seq: number; ref: number; chunk: ServedChunk | null }[] {
  return rows.map((r) => ({
    seq: toInt(r.seq),
    ref: toInt(r.ref),
    chunk:
      r.id === null
        ? null
        : {
            id: toInt(r.id),
            remote_file: r.remote_file!,
            remote_file_id: r.remote_file_id!,
            file_size: r.file_size === null ? null : toInt(r.file_size),
            chunk_size: toInt(r.chunk_size!),
            pack_id: r.pack_id === null ? null : toInt(r.pack_id),
            pack_remote_file: r.pack_remote_file ?? null,
            pack_offset: r.pack_offset === null ? null : toInt(r.pack_offset),
          },
  }));
}

/**
 * The chunks that occur more than once in the NAR (a NAR repeating content: the JDK's identical
 * license files), with their number of occurrences: a download keeps their bytes from the first
 * occurrence instead of reading each repeat with a range of its own (docs/packs.md).
 */
export async function findRepeatedChunks(db: Db, narId: number): Promise<Map<number, number>> {
  const rows = await db.kysely
    .selectFrom("chunkref")
    .select((eb) => ["chunk_id", eb.fn.countAll().as("n")])
    .where("nar_id", "=", narId)
    .where("chunk_id", "is not", null)
    .groupBy("chunk_id")
    .having((eb) => eb.fn.countAll(), ">", 1)
    .execute();
  return new Map(rows.map((r) => [toInt(r.chunk_id!), Number(r.n)]));
}

/** A NAR's valid chunks by where they are stored: per pack, the pack and the end of the last of the NAR's chunks in it; and how many are stored one per object. */
export interface NarStorageSummary {
  packs: { packId: number; remoteFile: string; end: number }[];
  unpacked: number;
}

/** One grouped query: what a download's preflight checks on cheap storage, without reading every chunk row (download/preflight.ts). */
export async function narStorageSummary(db: Db, narId: number): Promise<NarStorageSummary> {
  const rows = await db.kysely
    .selectFrom("chunkref")
    .innerJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
    .leftJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
    .select((eb) => [
      "chunk.pack_id as pack_id",
      eb.fn.max("attic_ts_pack.remote_file").as("remote_file"),
      eb.fn.max(sql<number>`"chunk"."pack_offset" + coalesce("chunk"."file_size", 0)`).as("end"),
      eb.fn.countAll().as("n"),
    ])
    .where("chunkref.nar_id", "=", narId)
    .groupBy("chunk.pack_id")
    .execute();
  const summary: NarStorageSummary = { packs: [], unpacked: 0 };
  for (const r of rows) {
    if (r.pack_id === null || r.remote_file === null) summary.unpacked += Number(r.n);
    else summary.packs.push({ packId: toInt(r.pack_id), remoteFile: r.remote_file, end: Number(r.end) });
  }
  return summary;
}

export async function findNarChunks(db: Db, narId: number, page: { afterSeq?: number; limit?: number } = {}): Promise<NarChunk[]> {
  const rows = await db.kysely
    .selectFrom("chunkref")
    .leftJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
    .select(["chunkref.seq as seq", ...prefixed("chunk", CHUNK_COLUMNS, "k_")])
    .where("chunkref.nar_id", "=", narId)
    .$if(page.afterSeq !== undefined, (q) => q.where("chunkref.seq", ">", page.afterSeq!))
    .orderBy("chunkref.seq")
    .$if(page.limit !== undefined, (q) => q.limit(page.limit!))
    .execute();
  return rows.map((raw) => {
    const r = raw as Record<string, unknown>;
    const chunk = unprefix(r, "k_");
    return { seq: Number(r.seq), chunk: chunk ? toChunkRow(chunk) : null };
  });
}

/**
 * The hashes (deduplicated, any order) that the cache does not hold as a servable object: no
 * object, or one whose NAR is not valid or has lost a chunk (a NULL chunkref, see repair.ts), so
 * that the next push uploads it again. The lost-chunk test is a probe of a partial index.
 */
export async function getMissingPaths(db: Db, cacheName: string, hashes: readonly string[]): Promise<string[]> {
  const wanted = [...new Set(hashes)];
  const present = new Set<string>();
  const size = maxBatch(db, 1);
  for (let i = 0; i < wanted.length; i += size) {
    const batch = wanted.slice(i, i + size);
    const rows = await db.kysely
      .selectFrom("object")
      .innerJoin("cache", "cache.id", "object.cache_id")
      .innerJoin("nar", "nar.id", "object.nar_id")
      .select("object.store_path_hash")
      .where("cache.name", "=", cacheName)
      .where("cache.deleted_at", "is", null)
      .where("nar.state", "=", "V")
      .where("object.store_path_hash", "in", batch)
      .where((eb) =>
        eb.not(eb.exists(eb.selectFrom("chunkref").select("chunkref.id").whereRef("chunkref.nar_id", "=", "nar.id").where("chunkref.chunk_id", "is", null))),
      )
      .execute();
    for (const r of rows) present.add(r.store_path_hash);
  }
  return wanted.filter((h) => !present.has(h));
}

export interface UpsertObjectRow {
  cache_id: number;
  nar_id: number;
  store_path_hash: string;
  store_path: string;
  /** JSON array */
  references: string;
  system?: string | null;
  deriver?: string | null;
  /** JSON array */
  sigs: string;
  ca?: string | null;
  created_by?: string | null;
  /** default: now */
  created_at?: Date;
}

/**
 * Insert the object, or replace the metadata of the same path in the same cache: a re-push
 * points it at the new NAR, sets created_at to now and clears last_accessed_at (upstream #132).
 */
export async function upsertObject(db: Db, row: UpsertObjectRow): Promise<number> {
  const inserted = await db.kysely
    .insertInto("object")
    .values({
      cache_id: row.cache_id,
      nar_id: row.nar_id,
      store_path_hash: row.store_path_hash,
      store_path: row.store_path,
      references: row.references,
      system: row.system ?? null,
      deriver: row.deriver ?? null,
      sigs: row.sigs,
      ca: row.ca ?? null,
      created_at: row.created_at ?? new Date(),
      last_accessed_at: null,
      created_by: row.created_by ?? null,
    })
    .onConflict((oc) =>
      oc.columns(["cache_id", "store_path_hash"]).doUpdateSet((eb) => ({
        nar_id: eb.ref("excluded.nar_id"),
        store_path: eb.ref("excluded.store_path"),
        references: eb.ref("excluded.references"),
        system: eb.ref("excluded.system"),
        deriver: eb.ref("excluded.deriver"),
        sigs: eb.ref("excluded.sigs"),
        ca: eb.ref("excluded.ca"),
        created_at: eb.ref("excluded.created_at"),
        last_accessed_at: eb.ref("excluded.last_accessed_at"),
        created_by: eb.ref("excluded.created_by"),
      })),
    )
    .returning("id")
    .executeTakeFirstOrThrow();
  return inserted.id;
}

/**
 * A NAR download counts as a use (retention and LRU quota); narinfo requests do not. The same
 * statement counts the download for the dashboard's most downloaded paths.
 */
export async function bumpLastAccessed(db: Db, objectId: number): Promise<void> {
  await db.kysely
    .updateTable("object")
    .set((eb) => ({ last_accessed_at: new Date(), download_count: eb(eb.fn.coalesce("download_count", sql<number>`0`), "+", 1) }))
    .where("id", "=", objectId)
    .execute();
}

export async function getObject(db: Db, cacheId: number, storePathHash: string): Promise<ObjectRow | null> {
  const row = await db.kysely
    .selectFrom("object")
    .select(OBJECT_COLUMNS)
    .where("cache_id", "=", cacheId)
    .where("store_path_hash", "=", storePathHash)
    .executeTakeFirst();
  return row ? toObjectRow(row) : null;
}

/**
 * Remove these paths from one cache (ours: `attic delete`). Only the cache's objects go; their
 * NARs and chunks stay until GC finds no object of any cache pointing at them. Returns the hashes
 * that were present and are now gone.
 */
export async function deleteObjectsByHash(db: Db, cacheId: number, hashes: readonly string[]): Promise<string[]> {
  const deleted: string[] = [];
  for (const batch of batches([...new Set(hashes)], maxBatch(db, 1) - 1)) {
    const rows = await db.kysely
      .deleteFrom("object")
      .where("cache_id", "=", cacheId)
      .where("store_path_hash", "in", batch)
      .returning("store_path_hash")
      .execute();
    for (const r of rows) deleted.push(r.store_path_hash);
  }
  return deleted;
}
