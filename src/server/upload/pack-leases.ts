// The pack hooks of an atticd's PackWriter (docs/packs.md), with a lease on every pack it has open:
// taken with the pack's row, renewed by one statement for all of them every third of the TTL,
// released when the pack is sealed or discarded. A pack whose lease ran out belongs to a process
// that is gone (killed, crashed): the garbage collector seals it at the end of its valid chunks or
// removes it (gc/abandoned-packs.ts), as the NAR claim lease lets another upload take over a NAR.
import { randomUUID } from "node:crypto";
import type { Db } from "../../db/connect.ts";
import { deleteOpenPack, insertPack, releasePackLease, renewPackLeases, sealPack } from "../../db/queries/packs.ts";
import type { PackHooks } from "../../storage/packs.ts";

/** A pack lease not renewed for this long belongs to a process that is gone. */
export const PACK_LEASE_TTL_MS = 30_000;

export function leasedPackHooks(db: Db, ttlMs = PACK_LEASE_TTL_MS): PackHooks {
  const owner = randomUUID();
  const open = new Set<number>();
  let timer: NodeJS.Timeout | null = null;
  const closed = async (id: number): Promise<void> => {
    open.delete(id);
    if (open.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
    // a release lost with the database only leaves a lease that runs out: the pack is not open any more
    await releasePackLease(db, id, owner).catch(() => {});
  };
  return {
    async open(pack) {
      const id = await insertPack(db, { remote_file: JSON.stringify(pack.remoteFile), remote_file_id: pack.remoteFileId }, { owner, ttlMs });
      open.add(id);
      // a renewal that fails (the database out of reach) is not fatal: if the pack is taken over
      // meanwhile, its chunks cannot turn valid (markPackedChunksValid) and those uploads fail
      timer ??= setInterval(() => void renewPackLeases(db, owner, ttlMs).catch(() => {}), Math.max(10, Math.floor(ttlMs / 3)));
      timer.unref();
      return id;
    },
    async sealed(id, size, chunks) {
      await sealPack(db, id, size, chunks);
      await closed(id);
    },
    async discarded(id) {
      await deleteOpenPack(db, id);
      await closed(id);
    },
  };
}
