// `attic cache configure CACHE`: a PATCH with only what the flags set. Unlike upstream,
// `retention_period` is sent only when a retention flag is given (decision 6), so configuring
// needs the `cq` permission only when retention changes and never resets it by accident.
// `max_size` (our addition) works the same way.
import { DurationParseError, parseDuration } from "../../api/duration.ts";
import type { CacheConfig, UpstreamConfig } from "../../api/v1.ts";
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";
import { parseSize } from "../human.ts";

export type CacheConfigureOptions = {
  cache: string;
  regenerateKeypair?: boolean;
  public?: boolean;
  private?: boolean;
  storeDir?: string;
  priority?: number;
  upstreamCacheKeyName?: string[];
  retentionPeriod?: string;
  resetRetentionPeriod?: boolean;
  maxSize?: string;
  resetMaxSize?: boolean;
  upstream?: string[];
  upstreamKey?: string[];
  removeUpstream?: string[];
  clearUpstreams?: boolean;
};

const U32_MAX = 0xffff_ffff;

export function buildPatch(options: CacheConfigureOptions): CacheConfig {
  if (options.public === true && options.private === true) {
    throw new UserError("`--public` and `--private` cannot be set at the same time.");
  }
  if (options.retentionPeriod !== undefined && options.resetRetentionPeriod === true) {
    throw new UserError("`--retention-period` and `--reset-retention-period` cannot be set at the same time.");
  }
  if (options.maxSize !== undefined && options.resetMaxSize === true) {
    throw new UserError("`--max-size` and `--reset-max-size` cannot be set at the same time.");
  }

  const patch: CacheConfig = {};
  if (options.regenerateKeypair === true) patch.keypair = "Generate";
  if (options.public === true) patch.is_public = true;
  else if (options.private === true) patch.is_public = false;
  if (options.storeDir !== undefined) patch.store_dir = options.storeDir;
  if (options.priority !== undefined) patch.priority = options.priority;
  if (options.upstreamCacheKeyName !== undefined) patch.upstream_cache_key_names = options.upstreamCacheKeyName;
  if (options.retentionPeriod !== undefined) patch.retention_period = { Period: retentionSeconds(options.retentionPeriod) };
  else if (options.resetRetentionPeriod === true) patch.retention_period = "Global";
  if (options.maxSize !== undefined) patch.max_size = parseSize(options.maxSize);
  else if (options.resetMaxSize === true) patch.max_size = null;

  if (Object.keys(patch).length === 0 && !changesUpstreams(options)) {
    throw new UserError("Nothing to configure: give at least one setting (see `attic cache configure --help`).");
  }
  return patch;
}

function changesUpstreams(o: CacheConfigureOptions): boolean {
  return (o.upstream?.length ?? 0) > 0 || (o.removeUpstream?.length ?? 0) > 0 || o.clearUpstreams === true;
}

const trimSlash = (u: string) => u.trim().replace(/\/+$/, "");

/** The cache's upstream list after the flags: cleared, removed, then added or re-keyed, in order. */
export function editUpstreams(current: readonly UpstreamConfig[], options: CacheConfigureOptions): UpstreamConfig[] {
  const keys = options.upstreamKey ?? [];
  if (keys.length > 0 && (options.upstream?.length ?? 0) === 0) throw new UserError("`--upstream-key` needs the `--upstream` it is for.");
  let list = options.clearUpstreams === true ? [] : current.map((u) => ({ url: u.url, keys: [...u.keys] }));
  const removed = new Set((options.removeUpstream ?? []).map(trimSlash));
  for (const url of removed) {
    if (!list.some((u) => u.url === url)) throw new UserError(`The cache has no upstream ${url}.`);
  }
  list = list.filter((u) => !removed.has(u.url));
  for (const raw of options.upstream ?? []) {
    const url = trimSlash(raw);
    const existing = list.find((u) => u.url === url);
    if (existing) {
      if (keys.length > 0) existing.keys = [...keys];
    } else {
      if (keys.length === 0) throw new UserError(`Give the upstream's public key with --upstream-key (for cache.nixos.org: cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=).`);
      list.push({ url, keys: [...keys] });
    }
  }
  return list;
}

function retentionSeconds(s: string): number {
  let secs: number;
  try {
    secs = parseDuration(s);
  } catch (err) {
    if (err instanceof DurationParseError) throw new UserError(`Invalid retention period: ${err.message}`);
    throw err;
  }
  if (secs > U32_MAX) throw new UserError(`Invalid retention period "${s}": at most ${U32_MAX} seconds (about 136 years)`);
  return secs;
}

export async function run(options: CacheConfigureOptions, ctx: Ctx): Promise<void> {
  const patch = buildPatch(options);
  const { serverName, cache, api } = await connect(ctx, options.cache);
  if (changesUpstreams(options)) {
    const current = options.clearUpstreams === true && (options.upstream?.length ?? 0) === 0 ? [] : ((await api.getCacheConfig(cache)).upstreams ?? []);
    patch.upstreams = editUpstreams(current, options);
  }
  await api.configureCache(cache, patch);
  say(ctx, `✅ Configured "${cache}" on "${serverName}"`);
}
