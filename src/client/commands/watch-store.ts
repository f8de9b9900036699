// `attic watch-store CACHE`: push store paths as they become valid, until SIGINT/SIGTERM.
// Nix removes `<path>.lock` once it has registered a path it built or substituted, so we
// watch the store dir (non-recursively, as upstream) for lock files that disappear.
import { existsSync, watch } from "node:fs";
import { say, type Ctx } from "../context.ts";
import { storePathFromBaseName } from "../../nix/store-path.ts";
import type { PlanOptions } from "../push/plan.ts";
import { PushSession } from "../push/session.ts";
import { failureError, setUpPush } from "../push/setup.ts";

export type WatchStoreOptions = {
  cache: string;
  noClosure?: boolean;
  ignoreUpstreamCacheFilter?: boolean;
  jobs: number;
  chunkSize?: number;
  forcePreamble?: boolean;
};

/** The store path a removed lock file stood for, or null when it is not one we push. */
export function storePathOfLockFile(fileName: string, storeDir: string): string | null {
  if (!fileName.endsWith(".lock")) return null;
  const base = fileName.slice(0, -".lock".length);
  if (base.endsWith(".drv") || base.endsWith("-source")) return null;
  try {
    return storePathFromBaseName(storeDir, base).path;
  } catch {
    return null;
  }
}

/** Lock removals come in bursts; checking validity once per burst keeps Nix calls few. */
const VALIDITY_CHECK_DELAY_MS = 200;

export async function run(options: WatchStoreOptions, ctx: Ctx): Promise<void> {
  const setup = await setUpPush(ctx, options);
  const { store, reporter, pusher } = setup;
  const planOptions: PlanOptions = {
    noClosure: options.noClosure === true,
    ignoreUpstreamFilter: options.ignoreUpstreamCacheFilter === true,
  };
  const session = new PushSession(pusher, setup.planDeps, planOptions, {
    onPlan: (plan) => reporter.addPlanned(plan.paths.length, plan.paths.reduce((n, i) => n + i.narSize, 0)),
    onError: (err) => reporter.line(`❌ ${err instanceof Error ? err.message : String(err)}`),
  });

  let candidates = new Set<string>();
  let checkTimer: NodeJS.Timeout | null = null;
  let checking: Promise<void> = Promise.resolve();
  const check = (): void => {
    checkTimer = null;
    const paths = [...candidates];
    candidates = new Set();
    checking = checking.then(async () => {
      try {
        session.queue(await store.validPaths(paths));
      } catch (err) {
        reporter.line(`❌ ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  };

  const watcher = watch(store.storeDir, { persistent: true }, (event, fileName) => {
    if (event !== "rename" || fileName === null) return;
    const path = storePathOfLockFile(fileName, store.storeDir);
    if (path === null || existsSync(`${store.storeDir}/${fileName}`)) return;
    candidates.add(path);
    checkTimer ??= setTimeout(check, VALIDITY_CHECK_DELAY_MS);
  });
  const stopped = new Promise<void>((resolve) => {
    watcher.once("error", (err) => {
      reporter.line(`Error during watch: ${err.message}`);
      resolve();
    });
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });

  say(ctx, `👀 Pushing new store paths to "${setup.cache}" on "${setup.serverName}"`);
  try {
    await stopped;
  } finally {
    watcher.close();
    if (checkTimer !== null) {
      clearTimeout(checkTimer);
      check();
    }
    await checking;
    await session.close();
    reporter.close();
  }
  const failed = pusher.failures.length + session.planErrors;
  if (failed > 0) throw failureError(failed);
}
