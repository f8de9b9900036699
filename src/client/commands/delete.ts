// `attic delete CACHE PATH…` (ours): remove store paths from a cache, with the `delete`
// permission. Other caches keep their copies; the server frees the data at its next garbage
// collection once no cache uses it.
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";
import { storePathHash } from "../path-hashes.ts";

export type DeleteOptions = { cache: string; paths: string[] };

export async function run(options: DeleteOptions, ctx: Ctx): Promise<void> {
  const { serverName, cache, api } = await connect(ctx, options.cache);
  const wanted = await Promise.all(options.paths.map((p) => storePathHash(p, ctx)));
  const deleted = new Set(await api.deletePaths(cache, wanted.map((w) => w.hash)));
  for (const w of wanted) say(ctx, deleted.has(w.hash) ? `🗑️ ${w.display}` : `➖ ${w.display} (not in the cache)`);
  say(ctx, `Deleted ${deleted.size} of ${wanted.length} paths from "${cache}" on "${serverName}".`);
}
