// The lease on a NAR claim: while an upload stores a new NAR, its process renews a short lease
// named after the NAR's hash. Another upload of the same NAR waits only while the lease lives
// (claimNar), and GC leaves the pending NAR alone while it does (reapStalePending); an upload
// whose process died is taken over within CLAIM_TTL_MS instead of after the busy window.
import { randomUUID } from "node:crypto";
import type { Db } from "../../db/connect.ts";
import { releaseLease, renewLease } from "../../db/queries/leases.ts";
import { narClaimLeaseName } from "../../db/queries/nars.ts";

/** A claim not renewed for this long belongs to a process that is gone. */
export const CLAIM_TTL_MS = 10_000;

export class NarClaimLease {
  /** this upload, as the lease's holder */
  readonly owner = randomUUID();
  readonly ttlMs: number;
  readonly #db: Db;
  #timer: NodeJS.Timeout | null = null;
  #name: string | null = null;

  constructor(db: Db, ttlMs = CLAIM_TTL_MS) {
    this.#db = db;
    this.ttlMs = ttlMs;
  }

  /** The options claimNar takes the lease with. */
  get claim(): { owner: string; ttlMs: number } {
    return { owner: this.owner, ttlMs: this.ttlMs };
  }

  /** The claim of `narHash` was granted: keep its lease alive until stop(). */
  hold(narHash: string): void {
    this.#name = narClaimLeaseName(narHash);
    const name = this.#name;
    // a failed renewal (the database out of reach) is not fatal: the upload goes on, and if
    // its rows are taken meanwhile it fails with UploadRowsReaped, which the client retries
    this.#timer = setInterval(() => void renewLease(this.#db, name, this.owner, this.ttlMs).catch(() => {}), Math.max(10, Math.floor(this.ttlMs / 3)));
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#name !== null) await releaseLease(this.#db, this.#name, this.owner).catch(() => {});
    this.#name = null;
  }
}
