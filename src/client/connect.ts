// The steps most commands start with: load the config, resolve `[server:]cache`, and build
// an API client with the server's token.
import { ApiClient } from "./api.ts";
import { parseCacheRef } from "./cache-ref.ts";
import { configPath, loadConfig, resolveCache, serverToken } from "./config.ts";
import type { Ctx } from "./context.ts";

export interface Connection {
  serverName: string;
  cache: string;
  api: ApiClient;
  /** whether a token is configured for the server */
  token: string | null;
}

export async function connect(ctx: Ctx, cacheRef: string): Promise<Connection> {
  const ref = parseCacheRef(cacheRef);
  const config = await loadConfig(configPath(ctx.env));
  const { serverName, server, cache } = resolveCache(config, ref);
  const token = await serverToken(server);
  return { serverName, cache, api: new ApiClient(server.endpoint, token), token };
}
