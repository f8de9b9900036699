// `attic unpin CACHE NAME` (ours): remove a pin; its paths are subject to GC again. Needs the
// `configure_cache_retention` permission.
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";

export type UnpinOptions = { cache: string; name: string };

export async function run(options: UnpinOptions, ctx: Ctx): Promise<void> {
  const { serverName, cache, api } = await connect(ctx, options.cache);
  await api.unpin(cache, options.name);
  say(ctx, `Unpinned "${options.name}" in "${cache}" on "${serverName}"`);
}
