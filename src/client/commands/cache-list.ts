// `attic cache list [SERVER]` (ours; upstream's open PR #367): the caches the server's token can
// see, one per line: name, visibility, size and object count. Data, so on stdout.
import { ApiClient } from "../api.ts";
import { parseServerName } from "../cache-ref.ts";
import { configPath, defaultServer, loadConfig, serverToken } from "../config.ts";
import { print, say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";
import { humanBytes } from "../human.ts";

export type CacheListOptions = { server?: string };

export async function run(options: CacheListOptions, ctx: Ctx): Promise<void> {
  const config = await loadConfig(configPath(ctx.env));
  let serverName: string;
  let server;
  if (options.server === undefined) [serverName, server] = defaultServer(config);
  else {
    serverName = parseServerName(options.server);
    server = config.servers.get(serverName);
    if (server === undefined) throw new UserError(`Server "${serverName}" does not exist`);
  }
  const api = new ApiClient(server.endpoint, await serverToken(server));
  const reply = await api.listCaches();
  if (reply.caches.length === 0) {
    say(ctx, `No caches visible on "${serverName}".`);
    return;
  }
  const info = new Map((reply.cache_info ?? []).map((c) => [c.name, c]));
  const width = Math.max(...reply.caches.map((n) => n.length));
  for (const name of reply.caches) {
    const c = info.get(name);
    // an upstream server with PR #367 sends names only
    if (c === undefined) print(ctx, name);
    else print(ctx, `${name.padEnd(width)}  ${c.is_public ? "public " : "private"}  ${humanBytes(c.size).padStart(10)}  ${c.object_count} object${c.object_count === 1 ? "" : "s"}`);
  }
}
