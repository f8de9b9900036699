// The revocation list as one replica sees it (ours, issue 18). Revocations live in the database
// (attic_ts_revocation) so that `atticadm revoke-token` reaches every replica without a restart.
// A replica keeps the list it read while nothing is committed to the database (`db.committedState`:
// SQLite's WAL-index header, PostgreSQL's change signal, which fires on every change of the
// revocation table), and reads it again on the first request with a token after any commit: a
// token revoked by any process is refused on the next request. Where that signal is unknown (a
// PostgreSQL replica whose listening connection is down), the copy is re-read when it is older
// than `maxAgeMs` (2 s). The check runs on every authenticated request, after the verified-token
// cache (verified-tokens.ts), which remembers signatures only.
import type { Db } from "../db/connect.ts";
import { listRevocations } from "../db/queries/revocations.ts";
import type { Claims } from "../token/claims.ts";

export const REVOCATION_REFRESH_MS = 2000;

interface Snapshot {
  jtis: Set<string>;
  /** subject → the latest issue time (ms) at or before which its tokens are revoked */
  subjects: Map<string, number>;
  loadedAt: number;
  /** the committed state it was read in (null: unknown, the age rule applies) */
  state: string | null;
}

export class RevocationList {
  readonly #db: Db;
  readonly #maxAgeMs: number;
  readonly #clock: () => number;
  #snapshot: Snapshot | null = null;
  #loading: { state: string | null; snapshot: Promise<Snapshot> } | null = null;

  constructor(db: Db, opts: { maxAgeMs?: number; clock?: () => number } = {}) {
    this.#db = db;
    this.#maxAgeMs = opts.maxAgeMs ?? REVOCATION_REFRESH_MS;
    this.#clock = opts.clock ?? Date.now;
  }

  /** Whether the (verified) token is revoked. Throws when the list cannot be read. */
  async isRevoked(claims: Claims): Promise<boolean> {
    return this.isRevokedNow(claims) ?? revokedIn(await this.#refresh(), claims);
  }

  /** Without waiting: whether the token is revoked, or undefined when the list must be read first. */
  isRevokedNow(claims: Claims): boolean | undefined {
    const snapshot = this.#snapshot;
    if (!snapshot) return undefined;
    const state = this.#db.committedState?.() ?? null;
    if (state !== null ? snapshot.state !== state : this.#clock() - snapshot.loadedAt > this.#maxAgeMs) return undefined;
    return revokedIn(snapshot, claims);
  }

  #refresh(): Promise<Snapshot> {
    // requests that find the copy stale in the same committed state share one read; one that
    // comes after a commit waits for a read that began after it
    const before = this.#db.committedState?.() ?? null;
    if (this.#loading && this.#loading.state === before) return this.#loading.snapshot;
    const snapshot = this.#read(before);
    const loading = { state: before, snapshot };
    this.#loading = loading;
    const done = () => {
      if (this.#loading === loading) this.#loading = null;
    };
    snapshot.then(done, done);
    return snapshot;
  }

  async #read(before: string | null): Promise<Snapshot> {
    const started = this.#clock();
    const rows = await listRevocations(this.#db, new Date(started));
    const after = this.#db.committedState?.() ?? null;
    const snapshot: Snapshot = { jtis: new Set(), subjects: new Map(), loadedAt: started, state: before !== null && after === before ? before : null };
    for (const r of rows) {
      // a row with a jti revokes that token alone (its sub is only shown by list-revocations)
      if (r.jti !== null) snapshot.jtis.add(r.jti);
      else if (r.sub !== null) {
        const issuedBefore = r.issuedBefore?.getTime() ?? Number.MAX_SAFE_INTEGER;
        snapshot.subjects.set(r.sub, Math.max(issuedBefore, snapshot.subjects.get(r.sub) ?? 0));
      }
    }
    this.#snapshot = snapshot;
    return snapshot;
  }
}

function revokedIn(snapshot: Snapshot, claims: Claims): boolean {
  if (claims.jti !== undefined && snapshot.jtis.has(claims.jti)) return true;
  if (claims.sub !== undefined) {
    const before = snapshot.subjects.get(claims.sub);
    if (before !== undefined) {
      // upstream's tokens carry no iat: their nbf is the issue time; neither means "issued before anything"
      const issued = claims.iat ?? claims.nbf;
      if (issued === undefined || issued * 1000 <= before) return true;
    }
  }
  return false;
}
