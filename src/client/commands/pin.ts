// `attic pin CACHE NAME PATH`, `attic unpin CACHE NAME`, `attic pins CACHE` (ours): named pins
// keep a path and its closure in the cache out of retention and quota GC. Pinning and unpinning
// need the `configure_cache_retention` permission; listing needs pull.
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";
import { storePathHash } from "../path-hashes.ts";

export type PinOptions = { cache: string; name: string; path: string };

export async function run(options: PinOptions, ctx: Ctx): Promise<void> {
  const { serverName, cache, api } = await connect(ctx, options.cache);
  const { hash } = await storePathHash(options.path, ctx);
  const pin = await api.pin(cache, options.name, hash);
  say(ctx, `📌 Pinned ${pin.store_path} as "${pin.name}" in "${cache}" on "${serverName}" (${pin.paths} paths kept)`);
}
