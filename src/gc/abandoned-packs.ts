// Open packs whose writer is gone (docs/packs.md, "A writer that died"): an atticd holds a lease
// on each pack it has open (server/upload/pack-leases.ts); once that lease has run out, the one
// collector (under the "gc" lease) takes the pack over. A pack some of whose chunks turned valid
// (local: they were fsynced) is sealed at the end of the last of them, and compaction treats it as
// any sealed pack from then on; a pack no chunk ever turned valid in (on S3 always: its bytes were
// in the dead process's memory) is marked D, and its object (if any) and row go with the leftovers
// of a crashed compaction, in the same run.
import type { Db } from "../db/connect.ts";
import { abandonedOpenPacks, takeOverOpenPack } from "../db/queries/pack-gc.ts";

export interface AbandonedPacks {
  /** sealed at the end of their valid chunks */
  sealed: number;
  /** holding no chunk: marked for removal */
  emptied: number;
}

/** Take over the open packs whose writer is gone; `staleBefore` judges packs opened without a lease. */
export async function takeOverAbandonedPacks(db: Db, now: Date, staleBefore: Date | undefined, signal: AbortSignal): Promise<AbandonedPacks> {
  const result: AbandonedPacks = { sealed: 0, emptied: 0 };
  for (const id of await abandonedOpenPacks(db, now, staleBefore)) {
    signal.throwIfAborted();
    const outcome = await takeOverOpenPack(db, id, now);
    if (outcome === "sealed") result.sealed++;
    else if (outcome === "empty") result.emptied++;
  }
  return result;
}
