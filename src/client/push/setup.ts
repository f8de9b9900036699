// What `push` and `watch-store` share: connect, read the cache's config (switching to the
// `api_endpoint` it advertises, as upstream), and build the store, reporter and workers.
import type { CacheConfig } from "../../api/v1.ts";
import { connect } from "../connect.ts";
import type { Ctx } from "../context.ts";
import { UserError } from "../errors.ts";
import { NixCliStore, type LocalStore } from "../nix-store.ts";
import { createReporter, type PushReporter } from "../progress.ts";
import type { PlanDeps } from "./plan.ts";
import { Pusher } from "./pusher.ts";

export interface PushSetupOptions {
  cache: string;
  jobs: number;
  forcePreamble?: boolean;
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
  const reporter = createReporter(ctx.stderr, ctx.env, ctx.stdout);
  const pusher = new Pusher({
    store,
    api,
    cache,
    forcePreamble: options.forcePreamble === true,
    reporter,
    jobs: options.jobs,
    signal: options.signal,
  });
  const planDeps: PlanDeps = { store, api, cache, upstreamKeyNames: cacheConfig.upstream_cache_key_names ?? [] };
  return { serverName, cache, cacheConfig, store, reporter, pusher, planDeps };
}

export function failureError(failed: number): UserError {
  return new UserError(`Failed to push ${failed} ${failed === 1 ? "path" : "paths"}`);
}
