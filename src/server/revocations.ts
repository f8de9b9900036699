// The revocation list as one replica sees it (ours, issue 18). Revocations live in the database
// (attic_ts_revocation) so that `atticadm revoke-token` reaches every replica without a restart:
// each replica re-reads the live list when its copy is older than `maxAgeMs` (2 s), on the first
// request with a token after that. The check runs on every authenticated request, after the
// verified-token cache (verified-tokens.ts), which remembers signatures only: a revoked token
// is refused within maxAgeMs plus one request, whatever that cache holds.
import type { Db } from "../db/connect.ts";
import { listRevocations } from "../db/queries/revocations.ts";
import type { Claims } from "../token/claims.ts";

export const REVOCATION_REFRESH_MS = 2000;

interface Snapshot {
  jtis: Set<string>;
  /** subject → the latest issue time (ms) at or before which its tokens are revoked */
  subjects: Map<string, number>;
  loadedAt: number;
}

export class RevocationList {
  readonly #db: Db;
  readonly #maxAgeMs: number;
  readonly #clock: () => number;
  #snapshot: Snapshot | null = null;
  #loading: Promise<Snapshot> | null = null;

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
    if (!snapshot || this.#clock() - snapshot.loadedAt > this.#maxAgeMs) return undefined;
    return revokedIn(snapshot, claims);
  }

  #refresh(): Promise<Snapshot> {
    // one read at a time however many requests find the copy stale
    this.#loading ??= (async () => {
      try {
        const started = this.#clock();
        const rows = await listRevocations(this.#db, new Date(started));
        const snapshot: Snapshot = { jtis: new Set(), subjects: new Map(), loadedAt: started };
        for (const r of rows) {
          // a row with a jti revokes that token alone (its sub is only shown by list-revocations)
          if (r.jti !== null) snapshot.jtis.add(r.jti);
          else if (r.sub !== null) {
            const before = r.issuedBefore?.getTime() ?? Number.MAX_SAFE_INTEGER;
            snapshot.subjects.set(r.sub, Math.max(before, snapshot.subjects.get(r.sub) ?? 0));
          }
        }
        this.#snapshot = snapshot;
        return snapshot;
      } finally {
        this.#loading = null;
      }
    })();
    return this.#loading;
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
