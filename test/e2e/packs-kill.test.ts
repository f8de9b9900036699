// An atticd SIGKILLed in the middle of a push leaves its open pack behind (issue 25): locally a
// pack file holding the chunks of the paths it acknowledged (fsynced, valid) and maybe bytes after
// them; on S3 a pack row whose bytes died in the process's memory. Its lease on the pack runs out,
// and the next garbage-collection run takes the pack over: sealed at the end of its valid chunks
// (local), or removed (S3, no chunk in it). Then no pack is left open, storage holds exactly what
// the database names, and every path the killed atticd acknowledged pulls intact with real Nix.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { nixBuild, nixEnv, scriptDrv } from "../helpers/nix.ts";
import { runAtticadm, runAtticd, spawnAtticd } from "../helpers/atticd-process.ts";
import { expectedNames, packStates, storedNames } from "../helpers/pack-store.ts";
import { pullIntact } from "../helpers/pull-intact.ts";

const ATTIC = fileURLToPath(new URL("../../src/bin/attic.ts", import.meta.url));
const chunking = { threshold: 1, min: 16384, avg: 65536, max: 262144 };

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

/** `n` paths of random bytes (`bytes` each); the last one `lastBytes`, so the push is still busy with it when atticd is killed. */
async function randomPaths(tag: string, n: number, bytes: number, lastBytes: number): Promise<string[]> {
  const drvs = Array.from({ length: n }, (_, i) =>
    scriptDrv(`attic-packkill-${tag}-${i}`, `mkdir -p $out/share; echo ${tag}-${i} > $out/name; head -c ${i === n - 1 ? lastBytes : bytes} /dev/urandom > $out/share/random.bin`),
  );
  return nixBuild(`[ ${drvs.map((d) => `(${d})`).join(" ")} ]`);
}

function attic(home: string, args: string[]): { done: Promise<string>; kill(): void } {
  const env = nixEnv({ HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_CACHE_HOME: join(home, ".cache"), XDG_DATA_HOME: join(home, ".local", "share"), ATTIC_LOG_LEVEL: "warn" });
  const child = spawn(process.execPath, [ATTIC, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
  const done = new Promise<string>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`attic ${args.join(" ")}: exit ${code}\n${out}`))));
  });
  return { done, kill: () => child.kill("SIGKILL") };
}

/** The store paths among `paths` the cache holds (their upload was acknowledged). */
async function acknowledged(s: TestServer, paths: string[]): Promise<string[]> {
  const rows = await s.db.kysely
    .selectFrom("object")
    .select("store_path_hash")
    .where("store_path_hash", "in", paths.map((p) => basename(p).slice(0, 32)))
    .execute();
  const held = new Set(rows.map((r) => r.store_path_hash));
  return paths.filter((p) => held.has(basename(p).slice(0, 32)));
}

async function until(what: string, check: () => Promise<boolean>, log: () => string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

for (const backend of backends) {
  describe(`an atticd killed mid-push (${backendName(backend)})`, () => {
    test("kill -9 of atticd in the middle of a push, then a GC run: no pack left open, nothing leaked, every acknowledged path pulls intact", async () => {
      // the test server serves the pulls afterwards; the atticd process that is killed shares its database and storage
      const s = await startServer({ backend, chunking, gc: `interval = "0"` });
      const home = mkdtempSync(join(tmpdir(), "attic-e2e-packkill-"));
      const configPath = join(s.dir, "killed.toml");
      writeFileSync(configPath, s.configToml);
      const atticd = await spawnAtticd({ configPath });
      let push: ReturnType<typeof attic> | null = null;
      try {
        await createCacheViaApi(s, "k", { is_public: true });
        const paths = await randomPaths(`${Date.now()}`, 6, 1_500_000, 20_000_000);
        await attic(home, ["login", "local", atticd.url, s.rootToken()]).done;
        push = attic(home, ["push", "-j", "1", "local:k", ...paths]);
        const pushing = push.done.catch((err: Error) => err);
        // killed while an upload has appended to an open pack (the big last path), after some paths were acknowledged
        await until(
          "a few paths acknowledged and a pack open",
          async () => (await acknowledged(s, paths)).length >= 3 && ((await packStates(s.db)).P ?? 0) > 0,
          () => atticd.stderr(),
        );
        atticd.child.kill("SIGKILL");
        await atticd.exited;
        push.kill();
        await pushing;
        const acked = await acknowledged(s, paths);
        assert.ok(acked.length >= 3 && acked.length < paths.length, `killed mid-push: ${acked.length} of ${paths.length} acknowledged`);
        const open = await s.db.kysely.selectFrom("attic_ts_pack").select("id").where("state", "=", "P").execute();
        assert.ok(open.length > 0, "the killed atticd left an open pack");
        const validInOpen = await s.db.kysely
          .selectFrom("chunk")
          .select("id")
          .where("pack_id", "in", open.map((p) => p.id))
          .where("state", "=", "V")
          .execute();
        if (backend.storage === "local") assert.ok(validInOpen.length > 0, "locally, acknowledged paths have chunks in the open pack");
        else assert.equal(validInOpen.length, 0, "on S3 no chunk turns valid in a pack before it is stored");

        // a GC run before the killed atticd's pack leases run out leaves its packs alone
        const early = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
        assert.equal(early.code, 0, early.stderr);
        assert.equal((await packStates(s.db)).P, open.length, "packs whose lease is alive stay open");

        // the leases run out, as their TTL (30 s) would make them
        await s.db.kysely.updateTable("attic_ts_lease").set({ expires_at: new Date(0) }).where("name", "like", "pack:%").execute();
        const gc = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
        assert.equal(gc.code, 0, gc.stderr);
        const states = await packStates(s.db);
        assert.equal(states.P, undefined, `no pack left open: ${JSON.stringify(states)}\n${gc.stderr}`);
        assert.equal(states.D, undefined, "no pack left half removed");
        if (backend.storage === "local") {
          const sealed = await s.db.kysely.selectFrom("attic_ts_pack").select(["size", "chunks"]).where("id", "in", open.map((p) => p.id)).execute();
          assert.equal(sealed.length, open.length, "the open pack holding valid chunks is sealed, not removed");
        }
        assert.deepEqual(await storedNames(s.config, s.dir), await expectedNames(s.db), "storage holds exactly what the database names");
        const verify = await runAtticadm(["-f", configPath, "verify", "--nars"]);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        await pullIntact(s, "k", acked);

        // the next run finds nothing more to do with them, and a new push into a fresh pack still works
        // (new paths: the killed upload's pending chunks stay busy for the busy window, as after any crash)
        const again = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
        assert.equal(again.code, 0, again.stderr);
        const more = await randomPaths(`${Date.now()}-more`, 2, 1_500_000, 1_500_000);
        await attic(home, ["login", "local", s.url, s.rootToken()]).done;
        await attic(home, ["push", "local:k", ...more]).done;
        await pullIntact(s, "k", [...acked, ...more]);
      } finally {
        push?.kill();
        atticd.child.kill("SIGKILL");
        rmSync(home, { recursive: true, force: true });
        await s.stop();
      }
    });
  });
}
