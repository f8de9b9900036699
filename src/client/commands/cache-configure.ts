// `attic cache configure CACHE`: a PATCH with only what the flags set. Unlike upstream,
// `retention_period` is sent only when a retention flag is given (decision 6), so configuring
// needs the `cq` permission only when retention changes and never resets it by accident.
// `max_size` (our addition) works the same way.
import { DurationParseError, parseDuration } from "../../api/duration.ts";
import type { CacheConfig } from "../../api/v1.ts";
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

  if (Object.keys(patch).length === 0) {
    throw new UserError("Nothing to configure: give at least one setting (see `attic cache configure --help`).");
  }
  return patch;
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
  await api.configureCache(cache, patch);
  say(ctx, `✅ Configured "${cache}" on "${serverName}"`);
}
