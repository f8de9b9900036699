// Lookups of the hot read paths (a cache by name for nix-cache-info; a cache and an object for a
// narinfo) kept per process while nothing is committed to the database, by this process or any
// other (`db.committedState`: the WAL-index header on SQLite, db/sqlite-wal-state.ts; the change
// signal on PostgreSQL, db/change-signal.ts, heard by db/postgres-change-listener.ts). A result is
// kept only when the state read before the query equals the state read after it, so it is
// exactly what the database held then; it is served only while the state is still that one. Any
// commit (a changed row, a rotated key, a deleted path, a cache made private, an upload; on
// PostgreSQL, a commit that changes what these lookups read) makes every entry stale at once,
// and the next request reads the database again. While the state is unknown (a PostgreSQL
// replica not listening), every lookup reads the database. On PostgreSQL a commit reaches a
// replica as a notification, not within the request: see docs/decisions.md ("Replicas keep hot
// lookups between requests") for the window that leaves and why it is the one we accept.
//
// Only database rows are kept here: who the caller is (token, revocation, expiry) and what they
// may do is checked on every request, after the lookup.
import type { Db } from "../db/connect.ts";
import { LruCache } from "./lru.ts";

interface Entry<V> {
  state: string;
  value: V;
}

export class CommittedLookups<V> {
  readonly #db: Db;
  readonly #entries: LruCache<string, Entry<V>>;

  /** `capacity` in the units of `weigh` (bytes, roughly), as LruCache. */
  constructor(db: Db, capacity: number, weigh: (key: string, value: V) => number) {
    this.#db = db;
    this.#entries = new LruCache(capacity, (key, entry) => weigh(key, entry.value));
  }

  /** The value under `key` as the database holds it now: kept, or `load`ed (and kept when it can be). */
  async get(key: string, load: () => Promise<V>): Promise<V> {
    const state = this.#db.committedState?.() ?? null;
    if (state === null) return load();
    const kept = this.#entries.get(key);
    if (kept !== undefined && kept.state === state) return kept.value;
    const value = await load();
    if (this.#db.committedState!() === state) this.#entries.set(key, { state, value });
    return value;
  }
}
