// What a failed upload leaves: its pending NAR row and the chunks it created are removed once its
// writes have settled. When the database was unreachable (a restart), the cleanup runs again once
// it is back (leftovers.ts), so that a retry of the push does not wait for our pending rows to go
// stale; otherwise GC reaps pending rows after the grace period.
import type { Db } from "../../db/connect.ts";
import { deletePendingNar } from "../../db/queries/nars.ts";
import { NarError } from "../../nix/nar/parser.ts";
import { requestError, unavailableReason } from "../errors.ts";
import { BUSY_WINDOW_MS, type ChunkStore, type CreatedChunks } from "./chunks.ts";
import { LeftoverCleanup } from "./leftovers.ts";

export class UploadCleanup {
  private readonly leftovers = new LeftoverCleanup(BUSY_WINDOW_MS);
  private readonly db: Db;
  private readonly chunks: ChunkStore;

  constructor(db: Db, chunks: ChunkStore) {
    this.db = db;
    this.chunks = chunks;
  }

  /** Drop the cleanups not yet run (shutdown). */
  close(): void {
    this.leftovers.close();
  }

  /** A failed chunked upload: its pending NAR row (if not valid after all) and the chunks it created. */
  async discardNar(narId: number, created: CreatedChunks): Promise<void> {
    try {
      // pending only: had the final commit gone through unseen (the connection lost during it), the NAR is valid and stays
      await deletePendingNar(this.db, narId);
      await this.chunks.discard(created);
    } catch (err) {
      this.later(narId, created, err);
    }
  }

  /** A failed whole upload: the chunk it created. */
  async discardChunks(created: CreatedChunks): Promise<void> {
    await this.chunks.discard(created).catch((e: unknown) => this.later(null, created, e));
  }

  private later(narId: number | null, created: CreatedChunks, err: unknown): void {
    if (!unavailableReason(err)) return;
    this.leftovers.schedule(async () => {
      if (narId !== null) await deletePendingNar(this.db, narId);
      await this.chunks.discard(created);
    });
  }
}

/** Structural NAR errors on a short body are reported as upstream reports a short body. */
export function asUploadError(err: unknown, received: number, claimed: number, shortMessage: string): unknown {
  if (err instanceof NarError) {
    if (received < claimed) return requestError(shortMessage);
    return requestError(`Invalid NAR: ${err.message}`);
  }
  return err;
}
