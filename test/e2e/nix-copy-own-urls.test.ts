// The machine that pushed with `nix copy --to http://…/CACHE?compression=X` keeps the narinfo it
// uploaded in its narinfo cache (~/.cache/nix, 30 days by default), so it later asks for the NAR
// at the URL it uploaded (`nar/<filehash>.nar.<ext>`), never at ours. Here the push and the pulls
// share one Nix cache folder with Nix's default narinfo TTLs (the other e2e tests turn that cache
// off), for every compression Nix can push: `nix-store -r` into another store and `nix store ls`
// on the server must both work. And a path whose NAR Nix finds already uploaded under another
// path (its HEAD of the file's URL is a 200, so it sends only the narinfo) is stored all the same.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { NixHash } from "../../src/nix/hash.ts";
import { createCacheViaApi, startServer } from "../helpers/server.ts";
import { buildTestClosure, NIX_COMMAND, nixBuild, nixEnv, runNix, scriptDrv } from "../helpers/nix.ts";

/** Root without build users, no substituter unless given; the narinfo cache left at Nix's defaults. */
const OPTS = ["--option", "build-users-group", "", "--option", "substituters", ""];

describe("the URLs nix copy uploaded keep working for the machine that pushed", () => {
  // xz is Nix's default (no ?compression=)
  for (const compression of ["xz", "zstd", "bzip2", "br", "none"]) {
    test(`${compression}: nix-store -r and nix store ls with the push's own narinfo cache`, async () => {
      const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 } });
      const home = mkdtempSync(join(tmpdir(), "attic-e2e-own-"));
      const other = join(home, "other-store");
      // one HOME and XDG_CACHE_HOME for the push and the pulls: Nix's narinfo cache is shared
      const env = nixEnv({ HOME: home, XDG_CACHE_HOME: join(home, "cache") });
      const netrc = join(home, "netrc");
      writeFileSync(netrc, `machine 127.0.0.1\npassword ${s.token({ "*": { r: 1, w: 1 } })}\n`, { mode: 0o600 });
      const auth = ["--option", "netrc-file", netrc];
      try {
        await createCacheViaApi(s, "a");
        const { top, dep } = await buildTestClosure();
        // xz: the case, unsigned; the others as we advise: signed by the pusher's key, which
        // the machine trusts, since the narinfo it cached is the one it uploaded (not the cache's)
        const signed = compression !== "xz";
        const key = join(home, "pusher.sec");
        if (signed) writeFileSync(key, (await runNix("nix", [...NIX_COMMAND, "key", "generate-secret", "--key-name", "pusher-1"], { env })).stdout);
        const trust = signed
          ? ["--option", "require-sigs", "true", "--option", "trusted-public-keys", (await runNix("nix", [...NIX_COMMAND, "key", "convert-secret-to-public"], { env, input: readFileSync(key) })).stdout.toString().trim()]
          : ["--option", "require-sigs", "false"];
        const query = compression === "xz" ? "" : `?compression=${compression}&secret-key=${key}`;
        const pushed = await runNix("nix", [...NIX_COMMAND, "copy", ...OPTS, ...auth, "--to", `${s.url}/a${query}`, top], { env });
        assert.equal(pushed.code, 0, pushed.stderr);

        // the narinfo Nix cached names the file it uploaded, not our URL
        const narinfoCache = new DatabaseSync(join(home, "cache/nix/binary-cache-v6.sqlite"), { readOnly: true });
        const row = narinfoCache.prepare("SELECT url, compression, fileHash FROM NARs WHERE hashPart = ?").get(basename(dep).slice(0, 32));
        narinfoCache.close();
        const ext = { xz: ".xz", zstd: ".zst", bzip2: ".bz2", br: ".br", none: "" }[compression]!;
        assert.match(String(row?.url), new RegExp(`^nar/[0-9a-z]{52}\\.nar${ext.replace(".", "\\.")}$`));
        assert.equal(row?.compression, compression);

        const pulled = await runNix("nix-store", [
          "--store", other, "-r", top, ...OPTS, ...auth,
          "--option", "substituters", `${s.url}/a`, ...trust,
        ], { env });
        assert.equal(pulled.code, 0, pulled.stderr);
        assert.ok(readFileSync(join(other, dep, "share/random.bin")).equals(readFileSync(join(dep, "share/random.bin"))));
        assert.equal(readFileSync(join(other, top, "dep-ref"), "utf8").trim(), dep);

        const listed = await runNix("nix", [...NIX_COMMAND, "store", "ls", ...OPTS, ...auth, "--store", `${s.url}/a`, `${dep}/bin`], { env });
        assert.equal(listed.code, 0, listed.stderr);
        assert.equal(listed.stdout.toString().trim(), "./hello");

        // what Nix accepted is not the file it uploaded (except for an uncompressed NAR): Nix 2.8
        // checks NarHash, never FileHash; HEAD answers as GET would, without a length when re-encoded
        const served = await s.fetch(`/a/${String(row?.url)}`, { token: s.rootToken() });
        assert.equal(served.status, 200);
        const sameFile = NixHash.of("sha256", Buffer.from(await served.arrayBuffer())).equals(NixHash.parse(String(row?.fileHash)));
        assert.equal(sameFile, compression === "none");
        const head = await s.fetch(`/a/${String(row?.url)}`, { token: s.rootToken(), method: "HEAD" });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get("content-type"), "application/x-nix-nar");
        assert.equal(head.headers.has("content-length"), compression === "none" || compression === "zstd");
      } finally {
        rmSync(home, { recursive: true, force: true });
        await s.stop();
      }
    });
  }

  test("a second path with the same NAR: Nix sends only its narinfo, and the path is stored and served", async () => {
    const requests: string[] = [];
    const s = await startServer({
      logger: { level: "debug", stream: { write: (line: string) => void requests.push(...requestLine(line)) } },
    });
    const home = mkdtempSync(join(tmpdir(), "attic-e2e-own-"));
    const env = nixEnv({ HOME: home, XDG_CACHE_HOME: join(home, "cache") });
    const netrc = join(home, "netrc");
    writeFileSync(netrc, `machine 127.0.0.1\npassword ${s.token({ "*": { r: 1, w: 1 } })}\n`, { mode: 0o600 });
    try {
      await createCacheViaApi(s, "a");
      // two names, one content: two store paths with the same NAR (and the same xz file)
      const tag = randomBytes(6).toString("hex");
      const [first, second] = await Promise.all(["one", "two"].map(async (n) => (await nixBuild(scriptDrv(`attic-same-${n}-${tag}`, `mkdir $out; echo ${tag} > $out/f`)))[0]!));
      for (const path of [first!, second!]) {
        const pushed = await runNix("nix", [...NIX_COMMAND, "copy", ...OPTS, "--option", "netrc-file", netrc, "--to", `${s.url}/a`, path], { env });
        assert.equal(pushed.code, 0, pushed.stderr);
      }
      const narinfo = await (await s.fetch(`/a/${basename(second!).slice(0, 32)}.narinfo`, { token: s.rootToken() })).text();
      assert.match(narinfo, new RegExp(`StorePath: ${second}`));
      // the NAR file was sent once: the second time, Nix's HEAD found it
      const files = requests.filter((r) => r.includes("/a/nar/"));
      assert.deepEqual(files.map((r) => r.split(" ")[0]), ["HEAD", "PUT", "HEAD"], files.join("\n"));
      const other = join(home, "other-store");
      const pulled = await runNix("nix-store", [
        "--store", other, "-r", second!, ...OPTS, "--option", "netrc-file", netrc,
        "--option", "substituters", `${s.url}/a`, "--option", "require-sigs", "false",
      ], { env });
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(readFileSync(join(other, second!, "f"), "utf8").trim(), tag);
    } finally {
      rmSync(home, { recursive: true, force: true });
      await s.stop();
    }
  });
});

/** "METHOD url" of atticd's "request" log lines (debug level). */
function requestLine(line: string): string[] {
  const entry = JSON.parse(line) as { msg?: string; method?: string; url?: string };
  return entry.msg === "request" ? [`${entry.method} ${entry.url}`] : [];
}
