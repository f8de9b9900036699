// `attic cache info CACHE`: the cache's configuration, labels right-aligned as upstream.
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";
import { humanBytes } from "../human.ts";

export type CacheInfoOptions = { cache: string };

export async function run(options: CacheInfoOptions, ctx: Ctx): Promise<void> {
  const { cache, api } = await connect(ctx, options.cache);
  const c = await api.getCacheConfig(cache);
  const line = (label: string, value: unknown): void => {
    if (value !== undefined) say(ctx, `${label.padStart(21)}: ${String(value)}`);
  };
  line("Public", c.is_public);
  line("Public Key", c.public_key);
  line("Binary Cache Endpoint", c.substituter_endpoint);
  line("API Endpoint", c.api_endpoint);
  line("Store Directory", c.store_dir);
  line("Priority", c.priority);
  // Rust's `{:?}` of a Vec<String>: ["a", "b"]
  line("Upstream Cache Keys", c.upstream_cache_key_names === undefined ? undefined : `[${c.upstream_cache_key_names.map((k) => JSON.stringify(k)).join(", ")}]`);
  if (c.retention_period !== undefined) {
    line("Retention Period", c.retention_period === "Global" ? "Global Default" : c.retention_period.Period);
  }
  // Ours (no upstream line): shown only when a quota is set, so upstream's output is unchanged.
  if (typeof c.max_size === "number") line("Max Size", `${humanBytes(c.max_size)} (${c.max_size} bytes)`);
  // Ours (issue 27): one line per pull-through upstream, in the order they are asked
  for (const [i, u] of (c.upstreams ?? []).entries()) line(i === 0 ? "Pull-through From" : "", `${u.url} (trusts ${u.keys.join(", ")})`);
}
