// What `push` and `watch-store` share: connect, read the cache's config (switching to the
// `api_endpoint` it advertises, as upstream), and build the store, reporter and workers.
import type { CacheConfig } from "../../api/v1.ts";
import { connect } from "../connect.ts";
import type { Ctx } from "../context.ts";
import { UserError } from "../errors.ts";
import { NixCliStore, type LocalStore } from "../nix-store.ts";
import { createReporter, type PushReporter } from "../progress.ts";
import type { PlanDeps } from "./plan.ts";
import { PartSizer } from "./part-size.ts";
import { Pusher } from "./pusher.ts";
import { SessionJournal } from "./session-journal.ts";

export interface PushSetupOptions {
  cache: string;
  jobs: number;
  forcePreamble?: boolean;
  /** `--chunk-size`: the part size wanted; 0: never in parts; unset: the server's maximum */
  chunkSize?: number;
  /** aborts uploads in flight (push); watch-store lets them finish instead */
  signal?: AbortSignal;
}

export interface PushSetup {
  serverName: string;
  cache: string;
  cacheConfig: CacheConfig;
  store: LocalStore;
  reporter: PushReporter;
  pusher: Pusher;
  planDeps: PlanDeps;
}

export function checkJobs(jobs: number): void {
  if (jobs === 0) throw new UserError("The number of jobs cannot be 0");
}

export async function setUpPush(ctx: Ctx, options: PushSetupOptions, store: LocalStore = new NixCliStore(ctx.env)): Promise<PushSetup> {
  checkJobs(options.jobs);
  const { serverName, cache, api } = await connect(ctx, options.cache);
  const cacheConfig = await api.getCacheConfig(cache);
  if (cacheConfig.api_endpoint !== undefined) api.setEndpoint(cacheConfig.api_endpoint);
  const partSize = partSizeFor(cacheConfig, options.chunkSize);
  const reporter = createReporter(ctx.stderr, ctx.env, ctx.stdout);
  const pusher = new Pusher({
    store,
    api,
    cache,
    forcePreamble: options.forcePreamble === true,
    partSize,
    sizer: new PartSizer(partSize),
    journal: SessionJournal.forEnv(ctx.env, api.endpoint),
    reporter,
    jobs: options.jobs,
    signal: options.signal,
  });
  const planDeps: PlanDeps = { store, api, cache, upstreamKeyNames: cacheConfig.upstream_cache_key_names ?? [] };
  return { serverName, cache, cacheConfig, store, reporter, pusher, planDeps };
}

/** The part size of upload sessions (messages as upstream's PR #342 client), or null for single requests. */
export function partSizeFor(cacheConfig: CacheConfig, wanted: number | undefined): number | null {
  const max = cacheConfig.upload_chunking?.max_chunk_size;
  const offered = typeof max === "number" && Number.isSafeInteger(max) && max > 0 ? max : null;
  if (wanted === 0) return null;
  if (wanted === undefined) return offered;
  if (offered === null) throw new UserError("Chunked transport upload is not enabled by server");
  if (wanted > offered) throw new UserError(`Chunk size exceeds server limit (${offered} bytes)`);
  return wanted;
}

export function failureError(failed: number): UserError {
  return new UserError(`Failed to push ${failed} ${failed === 1 ? "path" : "paths"}`);
}
