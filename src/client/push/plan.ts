// Deciding what to push (upstream `PushPlan::plan`): the closure of the roots (unless
// --no-closure), their metadata, minus paths signed by one of the cache's upstream keys
// (unless --ignore-upstream-cache-filter), minus what the cache already holds, asked in one
// get-missing-paths request (split only when it would exceed the server's body limit).
import { batches } from "../../util/concurrency.ts";
import type { PathInfo } from "../nix-path-info.ts";
import type { LocalStore } from "../nix-store.ts";

/** get-missing-paths bodies stay far below the server's 2 MiB JSON limit (~35 bytes a hash). */
const MISSING_PATHS_BATCH = 50_000;

export interface PlanDeps {
  store: Pick<LocalStore, "closurePathInfos" | "pathInfos" | "storeDir">;
  api: { getMissingPaths(cache: string, hashes: string[]): Promise<string[]> };
  cache: string;
  /** the cache's `upstream_cache_key_names` */
  upstreamKeyNames: readonly string[];
}

export interface PlanOptions {
  noClosure: boolean;
  ignoreUpstreamFilter: boolean;
}

export interface PushPlan {
  /** paths to upload */
  paths: PathInfo[];
  numAllPaths: number;
  numAlreadyCached: number;
  numUpstream: number;
}

export function hashOfPath(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1, path.lastIndexOf("/") + 33);
}

export function signedByUpstream(info: PathInfo, upstreamKeyNames: readonly string[]): boolean {
  return info.sigs.some((sig) => {
    const colon = sig.indexOf(":");
    return colon !== -1 && upstreamKeyNames.includes(sig.slice(0, colon));
  });
}

export async function planPush(roots: string[], deps: PlanDeps, options: PlanOptions): Promise<PushPlan> {
  if (roots.length === 0) return { paths: [], numAllPaths: 0, numAlreadyCached: 0, numUpstream: 0 };
  // One Nix call either way: metadata of the roots, or of their whole closure.
  const infos = options.noClosure ? await deps.store.pathInfos(roots) : await deps.store.closurePathInfos(roots);
  const numAllPaths = infos.length;

  const candidates = options.ignoreUpstreamFilter ? infos : infos.filter((i) => !signedByUpstream(i, deps.upstreamKeyNames));
  const numUpstream = numAllPaths - candidates.length;
  if (candidates.length === 0) return { paths: [], numAllPaths, numAlreadyCached: 0, numUpstream };

  const missing = new Set<string>();
  for (const batch of batches(candidates.map((i) => hashOfPath(i.path)), MISSING_PATHS_BATCH)) {
    for (const h of await deps.api.getMissingPaths(deps.cache, batch)) missing.add(h);
  }
  const paths = candidates.filter((i) => missing.has(hashOfPath(i.path)));
  return { paths, numAllPaths, numAlreadyCached: candidates.length - paths.length, numUpstream };
}
