// `attic cache create CACHE`: always with a server-generated keypair, as upstream.
import type { CreateCacheRequest } from "../../api/v1.ts";
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";

export type CacheCreateOptions = {
  cache: string;
  public?: boolean;
  storeDir: string;
  priority: number;
  upstreamCacheKeyName: string[];
};

export async function run(options: CacheCreateOptions, ctx: Ctx): Promise<void> {
  const { serverName, cache, api } = await connect(ctx, options.cache);
  const request: CreateCacheRequest = {
    keypair: "Generate",
    is_public: options.public === true,
    store_dir: options.storeDir,
    priority: options.priority,
    upstream_cache_key_names: options.upstreamCacheKeyName,
  };
  await api.createCache(cache, request);
  say(ctx, `✨ Created cache "${cache}" on "${serverName}"`);
}
