// End to end with the real Nix client: a closure is uploaded through the API (NARs dumped by
// `nix-store --dump`), then `nix-store --store <dir> -r` substitutes it from the server with
// signatures required and only the cache key trusted, for every compression (multi-chunk NARs),
// from a public cache and from a private one through a netrc token; and on S3 with presigned
// redirects, where a redirect must never carry the netrc credentials to the bucket.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { buildTestClosure, dumpNar, nix, NIX_OPTS, pathInfo } from "../helpers/nix.ts";
import { NixHash } from "../../src/nix/hash.ts";

async function pushClosure(s: TestServer, cache: string, roots: string[]): Promise<string[]> {
  const infos = await pathInfo(roots, true);
  for (const info of infos) {
    const nar = await dumpNar(info.path);
    const upload = {
      cache,
      store_path_hash: basename(info.path).slice(0, 32),
      store_path: info.path,
      references: info.references.map((r) => basename(r)),
      system: null,
      deriver: null,
      sigs: info.signatures,
      ca: info.ca,
      nar_hash: NixHash.parse(info.narHash).toTypedBase16(),
      nar_size: info.narSize,
    };
    const res = await s.fetch("/_api/v1/upload-path", {
      method: "PUT",
      token: s.rootToken(),
      headers: { "x-attic-nar-info": JSON.stringify(upload) },
      body: nar,
    });
    assert.equal(res.status, 200, `${info.path}: ${await res.text()}`);
  }
  return infos.map((i) => i.path);
}

async function publicKeyOf(s: TestServer, cache: string): Promise<string> {
  const res = await s.fetch(`/_api/v1/cache-config/${cache}`, { token: s.rootToken() });
  return ((await res.json()) as { public_key: string }).public_key;
}

async function substitute(s: TestServer, cache: string, path: string, extra: string[] = [], base = s.url): Promise<string> {
  const store = mkdtempSync(join(tmpdir(), "attic-e2e-store-"));
  const key = await publicKeyOf(s, cache);
  await nix("nix-store", [
    "--store", store, "-r", path,
    ...NIX_OPTS,
    "--option", "substituters", `${base}/${cache}`,
    "--option", "trusted-public-keys", key,
    "--option", "require-sigs", "true",
    ...extra,
  ]);
  return store;
}

function checkTree(store: string, top: string, dep: string): void {
  const depInStore = join(store, dep);
  assert.equal(readFileSync(join(store, top, "dep-ref"), "utf8").trim(), dep);
  assert.equal(readlinkSync(join(store, top, "hello")), `${dep}/bin/hello`);
  assert.ok((statSync(join(depInStore, "bin/hello")).mode & 0o100) !== 0, "executable bit kept");
  assert.equal(readlinkSync(join(depInStore, "dangling")), "/nonexistent/target");
  assert.equal(statSync(join(depInStore, "share/random.bin")).size, 1_500_000);
  assert.ok(readFileSync(join("/", dep, "share/random.bin")).equals(readFileSync(join(depInStore, "share/random.bin"))));
}

describe("real Nix pulls from the server", () => {
  for (const compression of ["zstd", "xz", "brotli", "none"]) {
    test(`public cache, ${compression}, every NAR chunked`, async () => {
      const s = await startServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, compression: { type: compression } });
      try {
        await createCacheViaApi(s, "pub", { is_public: true });
        const { top, dep } = await buildTestClosure();
        const pushed = await pushClosure(s, "pub", [top]);
        assert.equal(pushed.length, 3);
        const store = await substitute(s, "pub", top);
        try {
          checkTree(store, top, dep);
        } finally {
          rmSync(store, { recursive: true, force: true });
        }
      } finally {
        await s.stop();
      }
    });
  }

  test("private cache through a netrc token; a wrong trusted key is refused", async () => {
    const s = await startServer();
    try {
      await createCacheViaApi(s, "priv");
      const { top, dep } = await buildTestClosure();
      await pushClosure(s, "priv", [top]);
      const dir = mkdtempSync(join(tmpdir(), "attic-e2e-netrc-"));
      const netrc = join(dir, "netrc");
      writeFileSync(netrc, `machine 127.0.0.1\npassword ${s.token({ priv: { r: 1 } })}\n`, { mode: 0o600 });
      const store = await substitute(s, "priv", top, ["--option", "netrc-file", netrc]);
      checkTree(store, top, dep);
      rmSync(store, { recursive: true, force: true });
      // without the token Nix cannot see the cache
      await assert.rejects(substitute(s, "priv", top));
      // with the wrong key trusted, signatures are refused
      const other = mkdtempSync(join(tmpdir(), "attic-e2e-store-"));
      await assert.rejects(
        nix("nix-store", [
          "--store", other, "-r", top, ...NIX_OPTS,
          "--option", "substituters", `${s.url}/priv`,
          "--option", "trusted-public-keys", "priv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
          "--option", "require-sigs", "true",
          "--option", "netrc-file", netrc,
        ]),
      );
      rmSync(other, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await s.stop();
    }
  });
});

/** A counter's value in the server's metrics (0 when never counted). */
async function counter(s: TestServer, name: string): Promise<number> {
  const line = (await s.app.metrics.render()).split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

describe("real Nix pulls from S3 with presigned redirects", () => {
  // no chunking: every NAR is one chunk, the case that is redirected
  // whole NARs as whole objects (packs = false): only those are redirected (docs/decisions.md)
  const s3Server = () => startServer({ backend: { db: "sqlite", storage: "s3" }, chunking: { threshold: 0, min: 16384, avg: 65536, max: 262144 }, storageExtra: "packs = false" });

  test("private cache, netrc for the host name the bucket shares: NARs are streamed and the pull works", async () => {
    const s = await s3Server();
    try {
      assert.equal(new URL(process.env.ATTIC_TEST_S3_ENDPOINT!).hostname, new URL(s.url).hostname, "atticd and S3 share a host name");
      assert.equal(s.config.presignedRedirects, true);
      await createCacheViaApi(s, "priv");
      const { top, dep } = await buildTestClosure();
      await pushClosure(s, "priv", [top]);
      const dir = mkdtempSync(join(tmpdir(), "attic-e2e-netrc-"));
      const netrc = join(dir, "netrc");
      writeFileSync(netrc, `machine ${new URL(s.url).hostname}\npassword ${s.token({ priv: { r: 1 } })}\n`, { mode: 0o600 });
      try {
        const store = await substitute(s, "priv", top, ["--option", "netrc-file", netrc]);
        checkTree(store, top, dep);
        rmSync(store, { recursive: true, force: true });
        assert.equal(await counter(s, "attic_nar_downloads_total"), 3);
        assert.ok(await counter(s, "attic_nar_download_bytes_total") > 1_500_000, "the NARs went through atticd");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await s.stop();
    }
  });

  test("public cache without credentials, bucket on another host name: Nix follows the 307 to S3", async () => {
    const s = await s3Server();
    try {
      await createCacheViaApi(s, "pub", { is_public: true });
      const { top, dep } = await buildTestClosure();
      await pushClosure(s, "pub", [top]);
      // Nix asks for "localhost"; the presigned URLs name 127.0.0.1
      const base = s.url.replace("127.0.0.1", "localhost");
      const store = await substitute(s, "pub", top, [], base);
      checkTree(store, top, dep);
      rmSync(store, { recursive: true, force: true });
      assert.equal(await counter(s, "attic_nar_downloads_total"), 3);
      assert.equal(await counter(s, "attic_nar_download_bytes_total"), 0, "every NAR came from the bucket");
    } finally {
      await s.stop();
    }
  });
});
