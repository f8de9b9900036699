// Repair end to end (issue 15, item 7; upstream #101, #110): one chunk file of a stored
// multi-chunk path is deleted by hand. Its NAR download is a 503 IncompleteNar (never a short
// 200), get-missing-paths reports the path, `attic push` (the real CLI) uploads it again, and
// real Nix then pulls the closure intact.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createCacheViaApi, startServer } from "../helpers/server.ts";
import { buildTestClosure, nix, NIX_OPTS } from "../helpers/nix.ts";
import { nixEnv } from "../helpers/nix.ts";
import { shardedPath } from "../../src/storage/local-layout.ts";
import type { LocalStorage } from "../../src/storage/local.ts";

const ATTIC = join(import.meta.dirname, "..", "..", "src", "bin", "attic.ts");

function attic(env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ATTIC, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("repair: a lost chunk file is healed by the next push", () => {
  test("503 before any byte, reported missing, re-pushed with attic, pulled intact by Nix", async () => {
    // one object per chunk (packs = false): the test loses one chunk file
    const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, storageExtra: "packs = false" });
    const home = mkdtempSync(join(tmpdir(), "attic-e2e-repair-"));
    const env = nixEnv({
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_DATA_HOME: join(home, ".local", "share"),
      NIX_CONFIG: "build-users-group =",
      ATTIC_LOG_LEVEL: "warn",
    });
    const run = async (args: string[]) => {
      const r = await attic(env, args);
      assert.equal(r.code, 0, `attic ${args.join(" ")}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    let store: string | undefined;
    try {
      await createCacheViaApi(s, "heal", { is_public: true });
      const { top, dep } = await buildTestClosure();
      await run(["login", "local", s.url, s.rootToken()]);
      await run(["push", "local:heal", top]);

      // one chunk in the middle of dep's NAR (1.5 MB of random data: many chunks) loses its file
      const depHash = basename(dep).slice(0, 32);
      const chunks = await s.db.kysely
        .selectFrom("object")
        .innerJoin("chunkref", "chunkref.nar_id", "object.nar_id")
        .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
        .select(["chunkref.seq", "chunk.remote_file"])
        .where("object.store_path_hash", "=", depHash)
        .orderBy("chunkref.seq")
        .execute();
      assert.ok(chunks.length >= 4, `dep has ${chunks.length} chunks`);
      const victim = JSON.parse(chunks[2]!.remote_file) as { Local: { name: string } };
      rmSync(shardedPath((s.storage as LocalStorage).root, victim.Local.name));

      // the download answers 503 IncompleteNar before any body byte
      const res = await s.fetch(`/heal/nar/${depHash}.nar`);
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, "IncompleteNar");

      // get-missing-paths reports dep, and only dep
      const hashes = [top, dep].map((p) => basename(p).slice(0, 32));
      const missing = await s.fetch("/_api/v1/get-missing-paths", {
        method: "POST",
        token: s.rootToken(),
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ cache: "heal", store_path_hashes: hashes }),
      });
      assert.equal(missing.status, 200);
      assert.deepEqual(((await missing.json()) as { missing_paths: string[] }).missing_paths, [depHash]);

      // the next push uploads it again
      const again = await run(["push", "local:heal", top]);
      assert.match(again.stderr, /Pushing 1 paths? to "heal"/, again.stderr);
      assert.equal((await s.fetch(`/heal/nar/${depHash}.nar`)).status, 200);

      // and real Nix pulls the whole closure intact
      const key = ((await (await s.fetch("/_api/v1/cache-config/heal", { token: s.rootToken() })).json()) as { public_key: string }).public_key;
      store = mkdtempSync(join(tmpdir(), "attic-e2e-store-"));
      await nix("nix-store", [
        "--store", store, "-r", top, ...NIX_OPTS,
        "--option", "substituters", `${s.url}/heal`,
        "--option", "trusted-public-keys", key,
        "--option", "require-sigs", "true",
      ]);
      assert.equal(readFileSync(join(store, top, "dep-ref"), "utf8").trim(), dep);
      assert.equal(readlinkSync(join(store, top, "hello")), `${dep}/bin/hello`);
      assert.ok(readFileSync(join(store, dep, "share/random.bin")).equals(readFileSync(join(dep, "share/random.bin"))));
    } finally {
      if (store) rmSync(store, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
      await s.stop();
    }
  });
});
