// The chaos run (issue 15): concurrent pushes of overlapping closures (real Nix store paths,
// NARs sharing chunks) from several clients into two `atticd --mode api-server` replicas and a
// `--mode garbage-collector` (every second, a retention that never expires these objects and a
// short grace period for pending rows), on a PostgreSQL cluster of its own and an S3 bucket behind
// a fault-injecting proxy. Meanwhile a replica is SIGKILLed at random moments and restarted on
// its port, PostgreSQL is restarted once (`-m immediate`), and S3 fails a share of requests.
//
// Clients are the real push code of `attic` (ApiClient + uploadWithRetry, its transient-error
// rule and backoff, NARs streamed from `nix-store --dump`); a client that gets no answer from
// its replica moves to the other one, as a load balancer would take a dead backend out.
// Afterwards, with the faults stopped and a collection run past the grace period,
// chaos-checks.ts checks what must hold. bench/chaos.ts and test/integration/chaos.test.ts run
// it at two sizes.
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiClient } from "../../src/client/api.ts";
import { ApiError, NetworkError } from "../../src/client/errors.ts";
import { NixCliStore } from "../../src/client/nix-store.ts";
import { isTransient, uploadWithRetry, type UploadApi } from "../../src/client/push/upload.ts";
import { openDatabase } from "../../src/db/connect.ts";
import { runAtticd, spawnAtticd, spawnAtticdAll, type AtticdProcess } from "./atticd-process.ts";
import { buildChaosClosures } from "./chaos-closures.ts";
import { checkAfterChaos, type CheckResult, type Pushed } from "./chaos-checks.ts";
import { startPostgres } from "./postgres.ts";
import { startFaultProxy, type Fault, type SeenRequest } from "./s3-fault-proxy.ts";
import { prepareServer } from "./server.ts";
import { atticClaims, ALL, mintHs256 } from "./tokens.ts";

export interface ChaosOptions {
  /** upload-path pushes in all (each a path into a cache) */
  uploads: number;
  clients: number;
  /** uploads in flight per client (`attic push -j`) */
  jobs: number;
  caches: number;
  /** attempts per upload (attic push: 3), with its backoff */
  attempts: number;
  /** a replica is killed every so many ms (uniform in the range) */
  killEveryMs: [number, number];
  /** share of S3 requests that fail */
  faultRate: number;
  /** seconds after which the collector reaps pending rows */
  graceSeconds: number;
  seed: number;
  log: (line: string) => void;
}

export interface ChaosReport extends CheckResult {
  planned: number;
  acknowledged: number;
  /** uploads whose retries ran out (transient errors only; anything else is a problem) */
  gaveUp: number;
  retries: number;
  kills: number;
  /** upload requests in flight on a replica when it was killed */
  cutByKills: number;
  pgRestarts: number;
  faults: Record<string, number>;
  /** what the last collection printed */
  finalGc: string;
  /** why attempts failed: an HTTP status and error kind, or NetworkError */
  retryReasons: Record<string, number>;
  /** pending rows of dead uploads the periodic collector reaped during the run */
  staleReaped: { nars: number; chunks: number };
  /** the replicas' and collector's log lines at level error, by message */
  serverErrors: Record<string, number>;
  seconds: number;
}

/** mulberry32: a schedule that a seed reproduces */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NO_BAR = { advance() {}, restart() {} };

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const random = prng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const s3Endpoint = process.env.ATTIC_TEST_S3_ENDPOINT;
  if (!s3Endpoint) throw new Error("ATTIC_TEST_S3_ENDPOINT is not set");

  const closures = await buildChaosClosures("attic-chaos");
  opts.log(`${closures.infos.size} store paths built (${closures.tops.length} closures)`);
  const cluster = await startPostgres();
  const proxy = await startFaultProxy(s3Endpoint);
  const setup = await prepareServer({
    backend: { db: "postgres", storage: "s3" },
    pgClusterUrl: cluster.url,
    s3Endpoint: proxy.endpoint,
    gc: `interval = "1s"\ndefault-retention-period = "1 day"\nstale-grace-period = "${opts.graceSeconds}s"`,
  });
  const configPath = join(setup.dir, "server.toml");
  writeFileSync(configPath, setup.configToml);
  const procs: AtticdProcess[] = [];
  const db = await openDatabase(setup.databaseUrl);
  try {
    const migrated = await runAtticd(["-f", configPath, "--mode", "db-migrations"]);
    if (migrated.code !== 0) throw new Error(`db-migrations: ${migrated.stderr}`);
    const [a, b, gc] = await spawnAtticdAll([
      { configPath, mode: "api-server" },
      { configPath, mode: "api-server" },
      // at info, so that its reports (stale rows reaped) can be counted
      { configPath, mode: "garbage-collector", readyText: null, env: { ATTIC_LOG_LEVEL: "info" } },
    ]);
    const replicas: AtticdProcess[] = [a!, b!];
    procs.push(a!, b!, gc!);
    const urls = replicas.map((r) => r.url);
    const token = mintHs256(setup.secret, atticClaims("chaos", { "*": ALL }));

    const caches = Array.from({ length: opts.caches }, (_, i) => `chaos${i}`);
    const keys = new Map<string, string>();
    const admin = new ApiClient(urls[0]!, token);
    for (const cache of caches) {
      await admin.createCache(cache, { keypair: "Generate", is_public: true, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
      keys.set(cache, (await admin.getCacheConfig(cache)).public_key!);
    }

    // the plan: closures of random roots into random caches, split among the clients
    const plan: { client: number; cache: string; path: string }[] = [];
    while (plan.length < opts.uploads) {
      const client = Math.floor(random() * opts.clients);
      const cache = pick(caches);
      for (const path of closures.closures.get(pick(closures.tops))!) {
        if (plan.length < opts.uploads) plan.push({ client, cache, path });
      }
    }

    // S3 faults, counted by kind
    const faults: Record<string, number> = {};
    proxy.rule = (req: SeenRequest): Fault => {
      if (random() >= opts.faultRate) return undefined;
      const r = random();
      const fault: Fault & object =
        r < 0.35 ? { status: 500, code: "InternalError" } : r < 0.6 ? { status: 503, code: "SlowDown" } : req.method === "GET" && r < 0.8 ? { cutAfterBytes: 100 } : { reset: true };
      const kind = "status" in fault ? String(fault.status) : "reset" in fault ? "reset" : "cut";
      faults[kind] = (faults[kind] ?? 0) + 1;
      return fault;
    };

    // a replica killed at random moments and restarted on its port
    let uploading = true;
    let kills = 0;
    let cutByKills = 0;
    /** upload requests in flight per replica: how many a kill cuts off */
    const inFlight = replicas.map(() => 0);
    const restart = async (i: number) => {
      const port = Number(new URL(urls[i]!).port);
      for (let tries = 0; ; tries++) {
        try {
          replicas[i] = await spawnAtticd({ configPath, mode: "api-server", port });
          procs.push(replicas[i]!);
          return;
        } catch (err) {
          // PostgreSQL may be restarting, the port not yet free
          if (tries >= 20) throw err;
          await sleep(500);
        }
      }
    };
    const pendingRows = async () => {
      const nars = await db.kysely.selectFrom("nar").select("id").where("state", "=", "P").execute();
      const chunks = await db.kysely.selectFrom("chunk").select("id").where("state", "=", "P").execute();
      return `${nars.length} NARs, ${chunks.length} chunks`;
    };
    const killer = (async () => {
      for (;;) {
        await sleep(opts.killEveryMs[0] + random() * (opts.killEveryMs[1] - opts.killEveryMs[0]));
        if (!uploading) return;
        const i = Math.floor(random() * replicas.length);
        const cut = inFlight[i]!;
        cutByKills += cut;
        await replicas[i]!.stop("SIGKILL");
        kills++;
        await sleep(200 + random() * 1300);
        await restart(i);
        opts.log(`replica ${i} killed with ${cut} uploads in flight and restarted; pending rows now: ${await pendingRows().catch(() => "(database down)")}`);
      }
    })();

    // PostgreSQL restarted once, as a crash, when about a third of the uploads are acknowledged
    let acknowledged = 0;
    let pgRestarts = 0;
    const pgRestarter = (async () => {
      while (uploading && acknowledged < plan.length / 3) await sleep(100);
      if (!uploading) return;
      opts.log(`PostgreSQL stopped (-m immediate) after ${acknowledged} acknowledgements`);
      cluster.stopServer("immediate");
      await sleep(1000);
      cluster.startServer();
      pgRestarts++;
    })();

    const store = new NixCliStore({ ...process.env, NIX_REMOTE: "" });
    const apis = urls.map((u) => new ApiClient(u, token));
    const pushed: Pushed[] = [];
    let retries = 0;
    /** why attempts failed: an HTTP status and error kind, or NetworkError */
    const retryReasons: Record<string, number> = {};
    let gaveUp = 0;
    const problems: string[] = [];
    // each client pushes to a replica of its own, and retries on the other one when it got no
    // answer
    const push = async (client: number, cache: string, path: string) => {
      let attempt = 0;
      let target = client % apis.length;
      const api: UploadApi = {
        uploadPath: async (info, nar, options) => {
          attempt++;
          const used = target;
          inFlight[used]!++;
          try {
            return await apis[used]!.uploadPath(info, nar, options);
          } catch (err) {
            const reason = err instanceof ApiError ? `${err.status} ${err.kind ?? ""}`.trim() : (err as Error).name;
            retryReasons[reason] = (retryReasons[reason] ?? 0) + 1;
            if (err instanceof NetworkError) target = (used + 1) % apis.length;
            throw err;
          } finally {
            inFlight[used]!--;
          }
        },
      };
      try {
        await uploadWithRetry(closures.infos.get(path)!, { store, api, cache, forcePreamble: false, retry: { attempts: opts.attempts, baseDelayMs: 500 } }, NO_BAR);
        pushed.push({ cache, path, acknowledged: true });
        acknowledged++;
      } catch (err) {
        pushed.push({ cache, path, acknowledged: false });
        if (isTransient(err)) gaveUp++;
        else problems.push(`push of ${cache}:${path} failed at attempt ${attempt} without a transient error: ${(err as Error).message}`);
        opts.log(`gave up ${cache}:${path} after ${attempt} attempts: ${(err as Error).message}`);
      } finally {
        retries += attempt - 1;
      }
    };
    const progress = setInterval(() => opts.log(`${acknowledged}/${plan.length} acknowledged, ${retries} retries, ${kills} kills`), 5000);
    await Promise.all(
      Array.from({ length: opts.clients }, async (_, client) => {
        const mine = plan.filter((p) => p.client === client);
        let next = 0;
        await Promise.all(
          Array.from({ length: opts.jobs }, async () => {
            while (next < mine.length) {
              const job = mine[next++]!;
              await push(client, job.cache, job.path);
            }
          }),
        );
      }),
    );
    clearInterval(progress);
    uploading = false;
    await Promise.all([killer, pgRestarter]);
    proxy.rule = undefined;
    const uploadsEnded = Date.now();
    opts.log(`uploads done: ${acknowledged}/${plan.length} acknowledged, ${retries} retries, ${kills} kills; faults ${JSON.stringify(faults)}`);

    // the collector ran throughout; now one run past the grace period, as an operator would
    if (gc!.child.exitCode !== null || gc!.child.signalCode !== null) problems.push(`the collector died:\n${gc!.stderr().slice(-3000)}`);
    await gc!.stop();
    await sleep(Math.max(0, opts.graceSeconds * 1000 + 2000 - (Date.now() - uploadsEnded)));
    const once = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
    if (once.code !== 0 || !/Garbage collection finished/.test(once.stderr)) problems.push(`garbage-collector-once did not run (${once.code}): ${once.stderr}`);
    opts.log(once.stderr.trim());

    const checked = await checkAfterChaos(pushed, { replicas: replicas.map((r) => r.url), token, keys, closures: closures.closures, db, bucket: setup.bucket!, s3Endpoint });
    for (const r of replicas) if (r.child.exitCode !== null || r.child.signalCode !== null) problems.push(`replica ${r.url} died:\n${r.stderr().slice(-3000)}`);
    const stale = { nars: 0, chunks: 0 };
    for (const line of gc!.stderr().split("\n")) {
      const report = line.startsWith("{") ? (JSON.parse(line) as { gc?: { staleNars: number; staleChunks: number } }).gc : undefined;
      stale.nars += report?.staleNars ?? 0;
      stale.chunks += report?.staleChunks ?? 0;
    }
    const serverErrors: Record<string, number> = {};
    for (const line of procs.map((p) => p.stderr()).join("\n").split("\n")) {
      if (!/^\{"level":(50|60)/.test(line)) continue;
      const { msg, error, err } = JSON.parse(line) as { msg: string; error?: unknown; err?: { message?: string } };
      const what = `${msg}: ${String(error ?? err?.message ?? "").slice(0, 160)}`;
      serverErrors[what] = (serverErrors[what] ?? 0) + 1;
    }
    return {
      ...checked,
      problems: [...problems, ...checked.problems],
      planned: plan.length,
      acknowledged,
      gaveUp,
      retries,
      retryReasons,
      staleReaped: stale,
      kills,
      cutByKills,
      pgRestarts,
      faults,
      finalGc: once.stderr.trim(),
      serverErrors,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop("SIGKILL")));
    await db.close();
    await proxy.close();
    cluster.stop();
    rmSync(setup.dir, { recursive: true, force: true });
  }
}
