// Running a shared cache (issue 18) on SQLite and PostgreSQL with real storage: deleting paths
// (a NAR shared by two caches is freed only when the second drops it), pins (a pinned path and
// its closure survive a 1-second retention and a quota while an unpinned path goes), and
// `GET /_api/v1/cache-config` (a `team-*` token lists only the team's caches). Outsiders learn
// nothing from any of the new routes (401 as for the old ones).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { runGarbageCollectionOnce, type GcConfig } from "../../src/gc/index.ts";
import { attic } from "../helpers/attic-in-process.ts";

const GC: GcConfig = { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null };
const ahead = (ms: number) => () => new Date(Date.now() + ms);
const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
]);

for (const backend of backends) {
  describe(`shared cache: delete, pins, cache list (${backendName(backend)})`, () => {
    let s: TestServer;
    before(async () => {
      // one object per chunk: this test counts chunk files; dead packs are dropped by compaction (docs/packs.md)
      s = await startServer({ backend, chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, storageExtra: "packs = false" });
    });
    after(async () => s.stop());

    const json = (method: string, body: unknown, token?: string) => ({ method, token, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const push = async (cache: string, fx: NarFixture, references: string[] = []) => {
      const res = await uploadNar(s, fx, { cache, token: s.rootToken(), references });
      assert.equal(res.status, 200, await res.text());
    };
    const narinfo = async (cache: string, fx: NarFixture) => (await s.fetch(`/${cache}/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status;
    const chunkFiles = () => readdirSync(join(s.dir, "storage"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name !== "VERSION").length;
    const deletePaths = (cache: string, fxs: NarFixture[], token = s.rootToken()) =>
      s.fetch("/_api/v1/delete-paths", json("POST", { cache, store_path_hashes: fxs.map((f) => f.storePathHash) }, token));
    const baseName = (fx: NarFixture) => fx.storePath.slice("/nix/store/".length);

    test("deleting a path shared by two caches frees nothing until the second cache drops it", async () => {
      await createCacheViaApi(s, "del-a");
      await createCacheViaApi(s, "del-b");
      const fx = narFixture(seededBytes(400_000, 7), "shared");
      await push("del-a", fx);
      await push("del-b", fx);
      const files = chunkFiles();
      assert.ok(files >= 3, `${files} chunk files`);

      const first = await deletePaths("del-a", [fx, narFixture(Buffer.from("never pushed"))]);
      assert.equal(first.status, 200);
      assert.deepEqual(await first.json(), { deleted_paths: [fx.storePathHash] });
      assert.equal(await narinfo("del-a", fx), 404);
      assert.equal(await narinfo("del-b", fx), 200);
      let report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
      assert.equal(report.nars, 0);
      assert.equal(report.chunks, 0);
      assert.equal(chunkFiles(), files, "nothing freed while del-b holds the path");
      const nar = await s.fetch(`/del-b/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
      assert.equal(nar.status, 200);
      assert.equal(Buffer.from(await nar.arrayBuffer()).length > 0, true);

      assert.deepEqual(await (await deletePaths("del-b", [fx])).json(), { deleted_paths: [fx.storePathHash] });
      report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
      assert.equal(report.nars, 1);
      assert.equal(report.chunks, files);
      assert.equal(chunkFiles(), 0);
    });

    test("delete needs `d`: outsiders get 401 (existing or not), pullers 403, a missing cache 404 for a token with d", async () => {
      await createCacheViaApi(s, "del-c");
      const fx = narFixture(Buffer.from("keep me"), "keep");
      await push("del-c", fx);
      const codes = async (cache: string, token?: string) => {
        const res = await deletePaths(cache, [fx], token ?? "");
        return [res.status, ((await res.json()) as { error: string }).error];
      };
      assert.deepEqual(await codes("del-c", s.token({ other: { r: 1, d: 1 } })), [401, "Unauthorized"]);
      assert.deepEqual(await codes("no-such", s.token({ other: { r: 1, d: 1 } })), [401, "Unauthorized"]);
      assert.deepEqual(await codes("del-c", s.token({ "del-c": { r: 1, w: 1 } })), [403, "AccessError"]);
      assert.deepEqual(await codes("no-such", s.token({ "*": { d: 1 } })), [404, "NoSuchCache"]);
      const anon = await s.fetch("/_api/v1/delete-paths", json("POST", { cache: "del-c", store_path_hashes: [fx.storePathHash] }));
      assert.equal(anon.status, 401);
      assert.equal(await narinfo("del-c", fx), 200);
      const bad = await s.fetch("/_api/v1/delete-paths", json("POST", { cache: "del-c", store_path_hashes: ["../../etc/passwd"] }, s.rootToken()));
      assert.equal(bad.status, 422);
      const ok = await deletePaths("del-c", [fx], s.token({ "del-c": { d: 1 } }));
      assert.equal(ok.status, 200);
      assert.equal(await narinfo("del-c", fx), 404);
    });

    test("a pinned path and its closure survive a GC with retention 1 s while an unpinned one goes; unpinned, they go too", async () => {
      await createCacheViaApi(s, "pinned");
      const dep = narFixture(seededBytes(50_000, 11), "dep");
      const root = narFixture(seededBytes(50_000, 12), "system");
      const loose = narFixture(seededBytes(50_000, 13), "loose");
      await push("pinned", dep);
      await push("pinned", root, [baseName(dep), baseName(root)]);
      await push("pinned", loose);
      const cq = s.token({ pinned: { r: 1, cq: 1 } });
      const pin = await s.fetch("/_api/v1/pins/pinned/prod", json("PUT", { store_path: root.storePath }, cq));
      assert.equal(pin.status, 200, await pin.clone().text());
      const info = (await pin.json()) as { name: string; store_path: string; paths: number };
      assert.deepEqual([info.name, info.store_path, info.paths], ["prod", root.storePath, 2]);
      // pinning needs cq; listing needs pull; outsiders get 401
      assert.equal((await s.fetch("/_api/v1/pins/pinned/x", json("PUT", { store_path: root.storePath }, s.token({ pinned: { r: 1, w: 1 } })))).status, 403);
      assert.equal((await s.fetch("/_api/v1/pins/pinned/x", json("PUT", { store_path: root.storePath }, s.token({ other: { cq: 1 } })))).status, 401);
      assert.equal((await s.fetch("/_api/v1/pins/pinned", { token: s.token({ other: { r: 1 } }) })).status, 401);
      assert.equal((await s.fetch("/_api/v1/pins/pinned/x", json("PUT", { store_path: narFixture(Buffer.from("absent")).storePath }, cq))).status, 404);
      const listed = (await (await s.fetch("/_api/v1/pins/pinned", { token: s.token({ pinned: { r: 1 } }) })).json()) as { pins: { name: string; paths: number }[] };
      assert.deepEqual(listed.pins.map((p) => [p.name, p.paths]), [["prod", 2]]);

      const retention = await s.fetch("/_api/v1/cache-config/pinned", json("PATCH", { retention_period: { Period: 1 } }, s.rootToken()));
      assert.equal(retention.status, 200);
      let report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC, now: ahead(1100) });
      assert.equal(report.objectsExpired, 1);
      assert.deepEqual([await narinfo("pinned", root), await narinfo("pinned", dep), await narinfo("pinned", loose)], [200, 200, 404]);

      // a quota of 1 byte evicts nothing pinned either
      await s.fetch("/_api/v1/cache-config/pinned", json("PATCH", { max_size: 1 }, s.rootToken()));
      report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { ...GC, maxSize: 1 } });
      assert.equal(report.objectsOverQuota, 0);
      assert.deepEqual([await narinfo("pinned", root), await narinfo("pinned", dep)], [200, 200]);

      assert.equal((await s.fetch("/_api/v1/pins/pinned/prod", { method: "DELETE", token: cq })).status, 200);
      const again = await s.fetch("/_api/v1/pins/pinned/prod", { method: "DELETE", token: cq });
      assert.equal(again.status, 404);
      assert.equal(((await again.json()) as { error: string }).error, "NoSuchPin");
      await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC, now: ahead(1100) });
      assert.deepEqual([await narinfo("pinned", root), await narinfo("pinned", dep)], [404, 404]);
    });

    test("cache list: a team-* token lists only the team's caches, with size and object count; anonymous sees public ones", async () => {
      await createCacheViaApi(s, "team-a");
      await createCacheViaApi(s, "team-b");
      await createCacheViaApi(s, "secret-x");
      await createCacheViaApi(s, "gone");
      await s.fetch("/_api/v1/cache-config/gone", { method: "DELETE", token: s.rootToken() });
      const fx = narFixture(seededBytes(20_000, 21), "tool");
      await push("team-a", fx);
      const list = async (token?: string) => {
        const res = await s.fetch("/_api/v1/cache-config", token ? { token } : {});
        assert.equal(res.status, 200);
        return (await res.json()) as { caches: string[]; cache_info: { name: string; is_public: boolean; size: number; object_count: number }[] };
      };
      const team = await list(s.token({ "team-*": { r: 1 } }));
      assert.deepEqual(team.caches, ["team-a", "team-b"]);
      assert.deepEqual(team.cache_info, [
        { name: "team-a", is_public: false, size: fx.narSize, object_count: 1 },
        { name: "team-b", is_public: false, size: 0, object_count: 0 },
      ]);
      assert.deepEqual((await list()).caches, []);
      assert.ok(!(await list(s.rootToken())).caches.includes("gone"), "destroyed caches are not listed");
      await createCacheViaApi(s, "team-pub", { is_public: true });
      assert.deepEqual((await list()).caches, ["team-pub"]);
    });

    test("the CLI: attic cache list, attic delete, attic pin / pins / unpin", async () => {
      await createCacheViaApi(s, "cli");
      const fx = narFixture(seededBytes(10_000, 31), "hello");
      await push("cli", fx);
      const home = mkdtempSync(join(tmpdir(), "attic-cli-"));
      try {
        const env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home };
        const run = (...args: string[]) => attic(args, env);
        await run("login", "local", s.url, s.token({ "cli*": { r: 1, w: 1, d: 1, cq: 1 } }));
        // the other public cache of this server is visible to anyone, so to this token too
        assert.equal((await run("cache", "list")).stdout, `cli       private    9.88 KiB  1 object\nteam-pub  public          0 B  0 objects\n`);
        assert.match((await run("pin", "cli", "web", fx.storePath)).stderr, new RegExp(`📌 Pinned ${fx.storePath} as "web" in "cli" on "local" \\(1 paths kept\\)`));
        assert.match((await run("pins", "cli")).stdout, new RegExp(`^web\\s+${fx.storePath}\\s+\\(1 paths, by tester, `));
        assert.match((await run("unpin", "cli", "web")).stderr, /Unpinned "web" in "cli" on "local"/);
        // a hash that differs from the pushed one in its first character (the fixture's hash may itself start with "0")
        const absent = (fx.storePathHash.startsWith("0") ? "1" : "0") + fx.storePathHash.slice(1);
        const del = await run("delete", "cli", fx.storePath, absent);
        assert.match(del.stderr, new RegExp(`🗑️ ${fx.storePath}\\n➖ ${absent} \\(not in the cache\\)\\nDeleted 1 of 2 paths from "cli" on "local"\\.`));
        assert.equal(await narinfo("cli", fx), 404);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    });
  });
}
