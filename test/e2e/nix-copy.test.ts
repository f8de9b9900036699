// Pushing with Nix itself (issue 17): `nix copy --to http://…/CACHE` with the token as netrc
// password, for every compression Nix can write, then `nix-store --store <dir> -r` pulls the
// closure back with signatures required; a second copy to another cache stores no new chunk; a
// token without push permission makes `nix copy` fail visibly; `nix store ls`/`cat` read the
// server; `nix store copy-log` then `nix log --store`; a ranged curl equals the slice.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { buildTestClosure, dumpNar, nix, NIX_COMMAND, NIX_OPTS, nixBuild, runNix, scriptDrv } from "../helpers/nix.ts";

const run = promisify(execFile);

/** A netrc giving `token` for 127.0.0.1, in a folder removed by the caller. */
function netrcWith(token: string): { file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "attic-e2e-copy-"));
  const file = join(dir, "netrc");
  writeFileSync(file, `machine 127.0.0.1\npassword ${token}\n`, { mode: 0o600 });
  return { file, dir };
}

function nixCopy(s: TestServer, cache: string, netrc: string, paths: string[], query = "") {
  return runNix("nix", [...NIX_COMMAND, "copy", ...NIX_OPTS, "--option", "netrc-file", netrc, "--to", `${s.url}/${cache}${query}`, ...paths]);
}

async function publicKeyOf(s: TestServer, cache: string): Promise<string> {
  const res = await s.fetch(`/_api/v1/cache-config/${cache}`, { token: s.rootToken() });
  return ((await res.json()) as { public_key: string }).public_key;
}

async function pullBack(s: TestServer, cache: string, netrc: string, path: string): Promise<string> {
  const store = mkdtempSync(join(tmpdir(), "attic-e2e-store-"));
  await nix("nix-store", [
    "--store", store, "-r", path, ...NIX_OPTS,
    "--option", "substituters", `${s.url}/${cache}`,
    "--option", "trusted-public-keys", await publicKeyOf(s, cache),
    "--option", "require-sigs", "true",
    "--option", "netrc-file", netrc,
  ]);
  return store;
}

async function counter(s: TestServer, name: string): Promise<number> {
  const line = (await s.app.metrics.render()).split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

describe("nix copy --to http://…/CACHE", () => {
  // xz is Nix's default (no ?compression=)
  for (const compression of ["xz", "zstd", "bzip2", "br", "none"]) {
    test(`${compression}: pushed with Nix, pulled back with signatures required`, async () => {
      const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 } });
      const { file: netrc, dir } = netrcWith(s.token({ "*": { r: 1, w: 1 } }));
      try {
        await createCacheViaApi(s, "one");
        const { top, dep } = await buildTestClosure();
        // zstd: also a pushed .ls (write-nar-listing) and a narinfo signed by the pusher's own key
        const key = join(dir, "client.sec");
        if (compression === "zstd") writeFileSync(key, await nix("nix", [...NIX_COMMAND, "key", "generate-secret", "--key-name", "client-1"]));
        const query = { xz: "", zstd: `?compression=zstd&write-nar-listing=true&secret-key=${key}` }[compression] ?? `?compression=${compression}`;
        const copied = await nixCopy(s, "one", netrc, [top], query);
        assert.equal(copied.code, 0, copied.stderr);
        assert.equal(await counter(s, "attic_uploads_total"), 3);
        if (compression === "zstd") {
          const narinfo = await (await s.fetch(`/one/${basename(top).slice(0, 32)}.narinfo`, { token: s.rootToken() })).text();
          const sigs = narinfo.split("\n").filter((l) => l.startsWith("Sig: "));
          assert.deepEqual(sigs.map((l) => l.slice(5).split(":")[0]), ["one", "client-1"], "the cache's signature first, then the pusher's");
        }
        const store = await pullBack(s, "one", netrc, top);
        try {
          assert.ok(readFileSync(join(store, dep, "share/random.bin")).equals(readFileSync(join(dep, "share/random.bin"))));
          assert.equal(readFileSync(join(store, top, "dep-ref"), "utf8").trim(), dep);
        } finally {
          rmSync(store, { recursive: true, force: true });
        }
        // nothing left in staging
        assert.deepEqual(readdirSafe(join(s.dir, "staging", "one")), []);
        if (compression === "xz") {
          // the same closure into another cache: every NAR deduplicated, not one chunk more
          await createCacheViaApi(s, "two");
          const chunks = await counter(s, "attic_chunks_uploaded_total");
          const again = await nixCopy(s, "two", netrc, [top]);
          assert.equal(again.code, 0, again.stderr);
          assert.equal(await counter(s, "attic_chunks_uploaded_total"), chunks);
          assert.equal(await counter(s, "attic_uploads_deduplicated_total"), 3);
          const store2 = await pullBack(s, "two", netrc, top);
          rmSync(store2, { recursive: true, force: true });
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
        await s.stop();
      }
    });
  }

  test("a token without push permission: nix copy fails and shows the 403; without a token the 401; push-only works", async () => {
    const s = await startServer();
    const pullOnly = netrcWith(s.token({ ro: { r: 1 } }));
    const none = netrcWith("not-a-token");
    try {
      await createCacheViaApi(s, "ro");
      const { lib } = await buildTestClosure();
      const refused = await nixCopy(s, "ro", pullOnly.file, [lib]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /403/);
      const anonymous = await nixCopy(s, "ro", none.file, [lib]);
      assert.notEqual(anonymous.code, 0);
      assert.match(anonymous.stderr, /401/);
      const narinfo = await s.fetch(`/ro/${basename(lib).slice(0, 32)}.narinfo`, { token: s.rootToken() });
      assert.equal(narinfo.status, 404);
      // a push-only token: Nix takes the 403s on nix-cache-info and narinfo for "absent" and pushes
      const pushOnly = netrcWith(s.token({ ro: { w: 1 } }));
      try {
        const pushed = await nixCopy(s, "ro", pushOnly.file, [lib]);
        assert.equal(pushed.code, 0, pushed.stderr);
        assert.equal((await s.fetch(`/ro/${basename(lib).slice(0, 32)}.narinfo`, { token: s.rootToken() })).status, 200);
      } finally {
        rmSync(pushOnly.dir, { recursive: true, force: true });
      }
    } finally {
      rmSync(pullOnly.dir, { recursive: true, force: true });
      rmSync(none.dir, { recursive: true, force: true });
      await s.stop();
    }
  });

  test("nix store ls/cat, the .ls listing as Nix writes it, build logs, a ranged NAR download", async () => {
    const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, compression: { type: "none" } });
    const { file: netrc, dir } = netrcWith(s.token({ "*": { r: 1, w: 1 } }));
    try {
      await createCacheViaApi(s, "files");
      const { dep } = await buildTestClosure();
      assert.equal((await nixCopy(s, "files", netrc, [dep])).code, 0);
      const store = `${s.url}/files`;
      const opts = [...NIX_OPTS, "--option", "netrc-file", netrc];

      const listed = await nix("nix", [...NIX_COMMAND, "store", "ls", ...opts, "--store", store, "-R", dep]);
      assert.equal(listed, await nix("nix", [...NIX_COMMAND, "store", "ls", ...opts, "-R", dep]));
      const hello = await nix("nix", [...NIX_COMMAND, "store", "cat", ...opts, "--store", store, `${dep}/bin/hello`]);
      assert.equal(hello, readFileSync(join(dep, "bin/hello"), "utf8").trim());

      // our listing equals the one Nix writes itself into a file:// cache
      const fileCache = mkdtempSync(join(tmpdir(), "attic-e2e-filecache-"));
      try {
        await nix("nix", [...NIX_COMMAND, "copy", ...NIX_OPTS, "--to", `file://${fileCache}?write-nar-listing=true&compression=none`, dep]);
        const hash = basename(dep).slice(0, 32);
        const ours = await s.fetch(`/files/${hash}.ls`, { token: s.rootToken() });
        assert.equal(ours.status, 200);
        assert.deepEqual(await ours.json(), JSON.parse(readFileSync(join(fileCache, `${hash}.ls`), "utf8")));
      } finally {
        rmSync(fileCache, { recursive: true, force: true });
      }

      // a build log: copied with Nix, read back with Nix
      const tag = randomBytes(6).toString("hex");
      const drvExpr = scriptDrv(`attic-log-${tag}`, `echo building ${tag}; echo second line; mkdir $out`);
      const [out] = await nixBuild(drvExpr);
      const drv = await nix("nix-store", ["--query", "--deriver", out!]);
      await nix("nix", [...NIX_COMMAND, "store", "copy-log", ...opts, "--to", store, drv]);
      // `nix log` of an output path finds the derivation through the narinfo's Deriver
      assert.equal((await nixCopy(s, "files", netrc, [out!])).code, 0);
      const log = await nix("nix", [...NIX_COMMAND, "log", ...opts, "--store", store, out!]);
      assert.match(log, new RegExp(`building ${tag}\\s+second line`));

      // ranges of a multi-chunk NAR (stored uncompressed, so the file is the NAR)
      const nar = await dumpNar(dep);
      const url = `${s.url}/files/nar/${basename(dep).slice(0, 32)}.nar`;
      const auth = ["-H", `Authorization: Bearer ${s.rootToken()}`];
      for (const [from, to] of [[0, 99], [70_000, 400_000], [nar.length - 10, nar.length - 1]] as const) {
        const { stdout } = await run("curl", ["-sf", ...auth, "-r", `${from}-${to}`, url], { encoding: "buffer", maxBuffer: 1 << 26 });
        assert.ok(stdout.equals(nar.subarray(from, to + 1)), `range ${from}-${to}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await s.stop();
    }
  });
});

describe("realisations of content-addressed derivations", () => {
  test("nix copy writes the realisation; nix build in another store substitutes the output through it", async () => {
    const s = await startServer();
    const { file: netrc, dir } = netrcWith(s.token({ "*": { r: 1, w: 1 } }));
    const other = mkdtempSync(join(tmpdir(), "attic-e2e-store-"));
    try {
      await createCacheViaApi(s, "ca", { is_public: true });
      const tag = randomBytes(6).toString("hex");
      const expr = `derivation { name = "attic-ca-${tag}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; ` +
        `args = [ "-c" "echo ${tag} > $out" ]; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; }`;
      const ca = [...NIX_OPTS, "--extra-experimental-features", "ca-derivations", "--impure", "--expr", expr];
      await nix("nix", [...NIX_COMMAND, "build", "--no-link", ...ca]);
      await nix("nix", [...NIX_COMMAND, "copy", "--option", "netrc-file", netrc, "--to", `${s.url}/ca`, ...ca]);
      const rows = await s.db.kysely.selectFrom("attic_ts_realisation").select(["output_id", "content"]).execute();
      assert.equal(rows.length, 1);
      assert.match(rows[0]!.output_id, /^sha256:[0-9a-f]{64}!out$/);
      const served = await s.fetch(`/ca/realisations/${rows[0]!.output_id}.doi`);
      assert.equal(served.status, 200);
      const outPath = (JSON.parse(await served.text()) as { outPath: string }).outPath;
      // realisations are served as pushed (not signed by the cache): the other store trusts the cache for them
      await nix("nix", [
        ...NIX_COMMAND, "build", "--no-link", "--store", other, ...ca,
        "--option", "substituters", `${s.url}/ca`, "--option", "require-sigs", "false",
        "--max-jobs", "0", // substitution only: building here would also pass
      ]);
      assert.equal(readFileSync(join(other, "nix/store", outPath), "utf8").trim(), tag);
    } finally {
      rmSync(other, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
      await s.stop();
    }
  });
});

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
