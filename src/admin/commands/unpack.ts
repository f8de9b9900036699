// `atticadm unpack [--delete-now]` (ours, docs/compaction.md): the way back to upstream's layout.
// Every chunk in a pack is written as its own object and its row repointed; packs left empty are
// retired (GC deletes them after the grace period, or --delete-now does at once). The work is
// done by admin/repair/unpack.ts; this shell opens the configured database and storage and prints.
import { openDatabase } from "../../db/connect.ts";
import { loadConfig } from "../../server/config/load.ts";
import { openStorage } from "../repair/open-storage.ts";
import { unpackAll } from "../repair/unpack.ts";
import type { AdminCtx } from "../context.ts";
import { UserError } from "../errors.ts";

export async function run(options: { deleteNow: boolean }, ctx: AdminCtx): Promise<void> {
  const { config } = await loadConfig({ path: ctx.configPath, env: ctx.env });
  const db = await openDatabase(config.database.url, { poolSize: 2 });
  const storage = await openStorage(config);
  try {
    const r = await unpackAll({ db, storage }, options, (line) => ctx.stdout.write(`${line}\n`));
    if (!r) throw new UserError("a garbage collector is running (it holds the gc lease); run unpack again once it has finished");
    ctx.stdout.write(
      `Unpacked ${r.chunks} chunks (${r.bytes} bytes) into objects of their own; ${r.packsRetired} packs retired` +
        `${options.deleteNow ? `, ${r.packsDeleted} deleted` : " (garbage collection deletes them after garbage-collection.pack-retire-grace)"}.\n`,
    );
    if (r.failures > 0) {
      throw new UserError(`${r.failures} chunks could not be read or did not match their hash and stay in their packs; run atticadm verify --repair, then unpack again`);
    }
    if (r.leftValid + r.leftPending > 0) {
      throw new UserError(
        `${r.leftValid + r.leftPending} chunks are still in packs (${r.leftPending} being written): set storage.packs = false on every atticd, restart them, and run unpack again`,
      );
    }
  } finally {
    await storage.close?.();
    await db.close();
  }
}
