// Compaction end to end (issue 25, acceptance), with real Nix, the real `attic` client and atticd
// processes: (1) the garbage collector is SIGKILLed in the middle of a compaction, at three moments
// (a new pack half written, a new pack stored before the rows move, the rows moved before the old
// packs are deleted); a run to completion then leaves exactly the objects the database names, and
// every path still pulls intact. (2) A compaction runs while Nix pulls paths whose chunks it moves
// and `attic push` pushes paths that share those chunks: everything succeeds and pulls intact.
// Both on a store first written one object per chunk (today's layout), which the first run packs.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { nixBuild, nixEnv, scriptDrv } from "../helpers/nix.ts";
import { runAtticadm, runAtticd, spawnAtticd } from "../helpers/atticd-process.ts";
import { expectedNames, packStates, storedNames } from "../helpers/pack-store.ts";
import { pullIntact } from "../helpers/pull-intact.ts";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";
import type { StorageDriver } from "../../src/storage/types.ts";

const ATTIC = fileURLToPath(new URL("../../src/bin/attic.ts", import.meta.url));
const PAUSE = fileURLToPath(new URL("../helpers/pause-storage.ts", import.meta.url));
const chunking = { threshold: 1, min: 16384, avg: 65536, max: 262144 };
const KiB = 1024;

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

/** `n` paths of 1.5 MB of random bytes each (a `tag` makes them new to this test run's store). */
async function randomPaths(tag: string, n: number): Promise<string[]> {
  const drvs = Array.from({ length: n }, (_, i) =>
    scriptDrv(`attic-compact-${tag}-${i}`, `mkdir -p $out/share; echo ${tag}-${i} > $out/name; head -c 1500000 /dev/urandom > $out/share/random.bin`),
  );
  return nixBuild(`[ ${drvs.map((d) => `(${d})`).join(" ")} ]`);
}

/**
 * Paths that hold the random bytes of `bases` (or their first `prefixBytes`) plus a file of their own:
 * their NARs share most chunks (or the chunks of that prefix) with the bases'.
 */
async function sharingPaths(tag: string, bases: string[], prefixBytes?: number): Promise<string[]> {
  const copy = prefixBytes === undefined ? "cp $base/share/random.bin $out/share/random.bin" : `head -c ${prefixBytes} $base/share/random.bin > $out/share/random.bin`;
  const drvs = bases.map((b, i) => scriptDrv(`attic-compact-${tag}-share-${i}`, `mkdir -p $out/share; echo ${tag} > $out/own; ${copy}`, { base: b }));
  return nixBuild(`[ ${drvs.map((d) => `(${d})`).join(" ")} ]`);
}

interface Client {
  run(args: string[]): Promise<string>;
  home: string;
}

function client(): Client {
  const home = mkdtempSync(join(tmpdir(), "attic-e2e-compact-"));
  const env = nixEnv({
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    NIX_CONFIG: "build-users-group =",
    ATTIC_LOG_LEVEL: "warn",
  });
  return {
    home,
    run: (args) =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [ATTIC, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
        child.once("error", reject);
        child.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`attic ${args.join(" ")}: exit ${code}\n${out}`))));
      }),
  };
}

async function deletePaths(s: TestServer, cache: string, paths: string[]): Promise<void> {
  const res = await s.fetch("/_api/v1/delete-paths", {
    method: "POST",
    token: s.rootToken(),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ cache, store_path_hashes: paths.map((p) => basename(p).slice(0, 32)) }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** The first `n` of `paths` whose chunks all lie in sealed packs (compaction leaves the open pack alone). */
async function inSealedPacks(s: TestServer, paths: string[], n: number): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    const rows = await s.db.kysely
      .selectFrom("object")
      .innerJoin("chunkref", "chunkref.nar_id", "object.nar_id")
      .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
      .leftJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
      .select("attic_ts_pack.state as state")
      .where("object.store_path_hash", "=", basename(path).slice(0, 32))
      .execute();
    if (rows.length > 0 && rows.every((r) => r.state === "V")) found.push(path);
    if (found.length === n) return found;
  }
  throw new Error(`fewer than ${n} pushed paths lie in sealed packs only`);
}

/** The packs holding the chunks of each path. */
async function packsOf(s: TestServer, paths: string[]): Promise<Map<string, Set<number>>> {
  const out = new Map<string, Set<number>>();
  for (const path of paths) {
    const rows = await s.db.kysely
      .selectFrom("object")
      .innerJoin("chunkref", "chunkref.nar_id", "object.nar_id")
      .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
      .select("chunk.pack_id as pack")
      .where("object.store_path_hash", "=", basename(path).slice(0, 32))
      .execute();
    out.set(path, new Set(rows.flatMap((r) => (r.pack === null ? [] : [Number(r.pack)]))));
  }
  return out;
}

/**
 * `n` paths in sealed packs only, at least one of whose packs also holds chunks of a path not
 * chosen: deleting them leaves holes that a compaction must copy around (packs holding nothing
 * else would be dropped whole, without a read, however the uploads' appends interleaved).
 */
async function holesAmongLive(s: TestServer, paths: string[], n: number): Promise<string[]> {
  const candidates = (await Promise.all(paths.map((p) => inSealedPacks(s, [p], 1).catch(() => [])))).flat();
  const packs = await packsOf(s, paths);
  const pick = (from: number, chosen: string[]): string[] | null => {
    if (chosen.length === n) {
      const dead = new Set(chosen.flatMap((p) => [...packs.get(p)!]));
      const live = paths.filter((p) => !chosen.includes(p)).flatMap((p) => [...packs.get(p)!]);
      return live.some((pack) => dead.has(pack)) ? chosen : null;
    }
    for (let i = from; i < candidates.length; i++) {
      const found = pick(i + 1, [...chosen, candidates[i]!]);
      if (found) return found;
    }
    return null;
  };
  const found = pick(0, []);
  if (!found) throw new Error(`no ${n} paths in sealed packs share a pack with a path kept`);
  return found;
}

async function until(what: string, check: () => boolean | Promise<boolean>, log: () => string, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const backend of backends) {
  describe(`compaction end to end (${backendName(backend)})`, () => {
    test("kill -9 of the garbage collector in the middle of a compaction, at three moments, then a run to completion: nothing lost, nothing leaked", async () => {
      const s = await startServer({
        backend,
        chunking,
        storageExtra: `pack-size = "4 MiB"`,
        gc: `interval = "0"\ncompaction-threshold = 1\npack-retire-grace = "0"`,
      });
      const c = client();
      try {
        await createCacheViaApi(s, "k", { is_public: true });
        const tag = `kill-${Date.now()}`;
        const pushed = await randomPaths(tag, 9);
        await c.run(["login", "local", s.url, s.rootToken()]);
        await c.run(["push", "local:k", ...pushed]);
        // the first path to go lies in sealed packs (compaction leaves the open one alone); a path
        // sharing the first half of its random bytes keeps live chunks beside about 750 KB of dead
        // ones in them, whatever the layout (local packs hold many uploads; an S3 pack may hold only
        // the upload that sealed it)
        const [victim] = (await inSealedPacks(s, pushed, 1)) as [string];
        const paths = [victim, ...pushed.filter((p) => p !== victim)];
        const [sharing] = await sharingPaths(`${tag}-half`, [victim], 750_000);
        await c.run(["push", "local:k", sharing!]);
        // one path goes before the first run (holes to compact, whether the push wrote packs or one object per chunk)
        await deletePaths(s, "k", paths.slice(0, 1));
        const kept = [...paths.slice(3), sharing!];

        const configPath = join(s.dir, "gc.toml");
        writeFileSync(configPath, s.configToml);
        const marker = join(s.dir, "paused");
        const killAt = async (at: string, skip = 0) => {
          const gc = await spawnAtticd({
            configPath,
            mode: "garbage-collector-once",
            readyText: null,
            env: { NODE_OPTIONS: `--import=${PAUSE}`, ATTIC_TEST_PAUSE_AT: at, ATTIC_TEST_PAUSE_SKIP: String(skip), ATTIC_TEST_PAUSE_MARKER: marker },
          });
          await until(`the collector to reach "${at}"`, () => existsSync(marker) || gc.child.exitCode !== null, gc.stderr);
          assert.ok(existsSync(marker), `the collector exited before "${at}":\n${gc.stderr()}`);
          gc.child.kill("SIGKILL");
          await gc.exited;
          rmSync(marker);
          // the killed collector's gc lease runs out, as its TTL (2 minutes) would make it
          await s.db.kysely.updateTable("attic_ts_lease").set({ expires_at: new Date(0) }).where("name", "=", "gc").execute();
        };

        await killAt("writing");
        assert.equal((await packStates(s.db)).C, 1, "a compaction pack was being written");
        await killAt("durable", 0);
        assert.equal((await packStates(s.db)).C, 1, "a compaction pack was stored, its rows not moved");
        const packed = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
        assert.equal(packed.code, 0, packed.stderr);
        // two more paths go: the next run moves live chunks out of packs with holes, and is killed before deleting the old packs
        await deletePaths(s, "k", paths.slice(1, 3));
        await killAt("deleting");
        assert.ok(((await packStates(s.db)).R ?? 0) > 0, "rows moved, old packs retired and not yet deleted");
        await pullIntact(s, "k", kept);

        const done = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
        assert.equal(done.code, 0, done.stderr);
        const states = await packStates(s.db);
        assert.equal(states.C, undefined, "no compaction pack left behind");
        assert.equal(states.R, undefined, "no retired pack left (grace 0)");
        assert.deepEqual(await storedNames(s.config, s.dir), await expectedNames(s.db), "storage holds exactly what the database names");
        const verify = await runAtticadm(["-f", configPath, "verify", "--nars"]);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        await pullIntact(s, "k", kept);
      } finally {
        rmSync(c.home, { recursive: true, force: true });
        await s.stop();
      }
    });

    test("a compaction while Nix pulls and attic pushes paths whose chunks it moves: all succeed, all intact", async () => {
      const s = await startServer({ backend, chunking, storageExtra: `pack-size = "4 MiB"` });
      const c = client();
      try {
        await createCacheViaApi(s, "m", { is_public: true });
        const paths = await randomPaths(`move-${Date.now()}`, 6);
        await c.run(["login", "local", s.url, s.rootToken()]);
        await c.run(["push", "local:m", ...paths]);
        const gone = await holesAmongLive(s, paths, 2);
        await deletePaths(s, "m", gone);
        const kept = paths.filter((p) => !gone.includes(p));
        const sharing = await sharingPaths(`move-${Date.now()}`, kept);

        // the collector's reads of old packs wait until the pulls and the push have started, then go
        // slowly, so the clients run while it moves chunks (whatever the machine's speed)
        let readsWaiting = 0;
        let startReading = (): void => undefined;
        const clientsStarted = new Promise<void>((resolve) => (startReading = resolve));
        const slow: StorageDriver = Object.assign(Object.create(s.storage) as StorageDriver, {
          getRange: async (...args: Parameters<StorageDriver["getRange"]>) => {
            readsWaiting++;
            await clientsStarted;
            await new Promise((r) => setTimeout(r, 150));
            return s.storage.getRange(...args);
          },
          read: undefined,
          readRange: undefined,
          get: async (...args: Parameters<StorageDriver["get"]>) => {
            await new Promise((r) => setTimeout(r, 20));
            return s.storage.get(...args);
          },
        });
        let compacting = true;
        const gc = runGarbageCollectionOnce({
          db: s.db,
          storage: slow,
          config: {
            defaultRetentionPeriod: 0,
            staleGracePeriod: 3600,
            maxSize: null,
            compaction: { threshold: 0.01, maxRewriteBytes: 2 ** 30, packSize: 512 * KiB, retiredGraceMs: 3600_000, packLoose: true },
          },
        }).finally(() => (compacting = false));
        await until("the compaction to read its first old pack", () => readsWaiting > 0 || !compacting, () => "");
        assert.ok(compacting, "the compaction was still running when the clients started");
        const clients = Promise.all([pullIntact(s, "m", kept), c.run(["push", "local:m", ...sharing])]);
        startReading();
        await clients;
        const report = await gc;
        assert.ok(report.compaction.chunksMoved > 0, JSON.stringify(report.compaction));
        assert.equal(report.compaction.failures, 0);

        await pullIntact(s, "m", [...kept, ...sharing]);
        // past the grace period the old packs go (two runs: the first one packs what the push stored meanwhile); everything still pulls
        for (const hours of [1, 2]) {
          await runGarbageCollectionOnce({
            db: s.db,
            storage: s.storage,
            config: { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null, compaction: { threshold: 0.01, maxRewriteBytes: 2 ** 30, packSize: 512 * KiB, retiredGraceMs: 3600_000, packLoose: true } },
            now: () => new Date(Date.now() + hours * 3601_000),
          });
        }
        assert.equal((await packStates(s.db)).R, undefined);
        assert.deepEqual(await storedNames(s.config, s.dir), await expectedNames(s.db));
        await pullIntact(s, "m", [...kept, ...sharing]);
      } finally {
        rmSync(c.home, { recursive: true, force: true });
        await s.stop();
      }
    });
  });
}
