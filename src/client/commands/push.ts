// `attic push CACHE [PATHS…] [--stdin]`: push closures to a cache (upstream command/push.rs).
import { createInterface } from "node:readline";
import { say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";
import { planPush, type PlanOptions, type PushPlan } from "../push/plan.ts";
import { PushSession } from "../push/session.ts";
import { checkJobs, failureError, setUpPush, type PushSetup } from "../push/setup.ts";
import { resolveStorePath } from "../resolve-path.ts";

export type PushOptions = {
  cache: string;
  paths: string[];
  stdin?: boolean;
  noClosure?: boolean;
  ignoreUpstreamCacheFilter?: boolean;
  jobs: number;
  chunkSize?: number;
  forcePreamble?: boolean;
};

export async function run(options: PushOptions, ctx: Ctx): Promise<void> {
  checkJobs(options.jobs);
  if (options.stdin === true && options.paths.length > 0) {
    throw new UserError("Paths cannot be given as arguments together with --stdin");
  }
  if (options.stdin !== true && options.paths.length === 0) {
    say(ctx, "🤷 Nothing specified.");
    if (ctx.stdin.isTTY !== true) say(ctx, "Hint: Pass --stdin to read the list of store paths from standard input.");
    return;
  }

  const setup = await setUpPush(ctx, { ...options, signal: ctx.signal });
  const planOptions: PlanOptions = {
    noClosure: options.noClosure === true,
    ignoreUpstreamFilter: options.ignoreUpstreamCacheFilter === true,
  };
  try {
    if (options.stdin === true) await pushStdin(setup, planOptions, ctx);
    else await pushStatic(setup, options.paths, planOptions, ctx);
  } finally {
    setup.reporter.close();
  }
}

function pushingLine(setup: PushSetup, plan: PushPlan): string {
  return `⚙️ Pushing ${plan.paths.length} paths to "${setup.cache}" on "${setup.serverName}" (${plan.numAlreadyCached} already cached, ${plan.numUpstream} in upstream)...`;
}

function allDoneLine(cached: number, upstream: number): string {
  return `✅ All done! (${cached} already cached, ${upstream} in upstream)`;
}

async function pushStatic(setup: PushSetup, paths: string[], planOptions: PlanOptions, ctx: Ctx): Promise<void> {
  const roots: string[] = [];
  for (const p of paths) roots.push((await resolveStorePath(p, setup.store.storeDir, ctx.cwd)).path);
  const plan = await planPush(roots, setup.planDeps, planOptions);
  if (plan.paths.length === 0) {
    setup.reporter.line(plan.numAllPaths === 0 ? "🤷 Nothing selected." : allDoneLine(plan.numAlreadyCached, plan.numUpstream));
    return;
  }
  setup.reporter.line(pushingLine(setup, plan));
  setup.reporter.addPlanned(plan.paths.length, plan.paths.reduce((n, i) => n + i.narSize, 0));
  for (const info of plan.paths) setup.pusher.queue(info);
  await setup.pusher.wait();
  ctx.signal.throwIfAborted();
  if (setup.pusher.failures.length > 0) throw failureError(setup.pusher.failures.length);
  setup.reporter.line(allDoneLine(plan.numAlreadyCached, plan.numUpstream));
}

async function pushStdin(setup: PushSetup, planOptions: PlanOptions, ctx: Ctx): Promise<void> {
  let cached = 0;
  let upstream = 0;
  let planned = 0;
  let badLines = 0;
  const session = new PushSession(setup.pusher, setup.planDeps, planOptions, {
    onPlan: (plan) => {
      cached += plan.numAlreadyCached;
      upstream += plan.numUpstream;
      planned += plan.numAllPaths;
      if (plan.paths.length === 0) return;
      setup.reporter.line(pushingLine(setup, plan));
      setup.reporter.addPlanned(plan.paths.length, plan.paths.reduce((n, i) => n + i.narSize, 0));
    },
    onError: (err) => setup.reporter.line(`❌ ${err instanceof Error ? err.message : String(err)}`),
  });

  const lines = createInterface({ input: ctx.stdin, crlfDelay: Infinity });
  const onAbort = (): void => lines.close();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const raw of lines) {
      const line = raw.trim();
      if (line === "") continue;
      try {
        session.queue([(await resolveStorePath(line, setup.store.storeDir, ctx.cwd)).path]);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        badLines++;
        setup.reporter.line(`❌ ${err.message}`);
      }
    }
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    await session.close();
  }
  ctx.signal.throwIfAborted();

  const failed = setup.pusher.failures.length + session.planErrors + badLines;
  if (failed > 0) throw failureError(failed);
  if (planned === 0) setup.reporter.line("🤷 Nothing selected.");
  else setup.reporter.line(allDoneLine(cached, upstream));
}
