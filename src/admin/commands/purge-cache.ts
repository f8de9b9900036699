// `atticadm purge-cache NAME` (ours): remove a soft-deleted cache for good, so that its name can
// be used again. Its objects are removed with it (the database cascades); the NARs and chunks
// they leave unreferenced are freed by the next garbage collection. A live cache is refused.
import { loadConfig } from "../../server/config/load.ts";
import { openDatabase } from "../../db/connect.ts";
import { getCacheByName, purgeDeletedCache } from "../../db/queries/caches.ts";
import type { AdminCtx } from "../context.ts";
import { UserError } from "../errors.ts";

export async function run(name: string, ctx: AdminCtx): Promise<void> {
  const { config } = await loadConfig({ path: ctx.configPath, env: ctx.env });
  const db = await openDatabase(config.database.url, { poolSize: 1 });
  try {
    const cache = await getCacheByName(db, name, { includeDeleted: true });
    if (!cache) throw new UserError(`there is no cache named "${name}"`);
    if (cache.deleted_at === null) {
      throw new UserError(`the cache "${name}" is not deleted; destroy it first (attic cache destroy ${name})`);
    }
    if (!(await purgeDeletedCache(db, name))) throw new UserError(`the cache "${name}" could not be purged`);
    ctx.stdout.write(`Purged the deleted cache "${name}"; the name can be used again. Run the garbage collector to free its storage.\n`);
  } finally {
    await db.close();
  }
}
