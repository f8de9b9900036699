// Pull-through from a real upstream (issue 27): binary caches written by `nix copy --to file://…`
// (xz and zstd, signed with `nix key generate-secret` keys) served by nginx on loopback. Real Nix
// pulls a closure through atticd trusting only the cache's key; untrusted and corrupted upstream
// paths are refused and nothing is stored; 16 concurrent pulls of one large path reach the
// upstream once (nginx's access log); a stopped upstream leaves the cache serving what it has
// and answering misses 404 fast; an upstream cut mid-NAR cuts the client and stores nothing; URLs outside `[pull-through] allowed-upstreams` never get a
// request. On SQLite + local (one atticd) and PostgreSQL + S3 (two replicas on one database).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { runAtticd, spawnAtticdAll, type AtticdProcess } from "../helpers/atticd-process.ts";
import { backendName, backendsFromEnv, prepareServer, type Backend } from "../helpers/server.ts";
import { atticClaims, ALL, mintHs256 } from "../helpers/tokens.ts";
import { buildTestClosure, nix, nixBuild, NIX_OPTS, scriptDrv } from "../helpers/nix.ts";
import { generateKey, startUpstream, type SigningKey, type UpstreamServer } from "../helpers/upstream-cache.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { openDatabase } from "../../src/db/connect.ts";
import { getCacheByName } from "../../src/db/queries/caches.ts";
import { getObject } from "../../src/db/queries/objects.ts";

const hashOf = (p: string) => basename(p).slice(0, 32);

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Fixture {
  up: UpstreamServer;
  trusted: SigningKey;
  other: SigningKey;
  closure: { top: string; dep: string; lib: string };
  untrusted: string;
  corruptXz: string;
  wrongNar: string;
  big: string;
  later: string;
  canary: Server;
  canaryPort: number;
  canaryHits: () => number;
  dir: string;
}

async function buildFixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "attic-pt-"));
  const tag = `${process.pid}-${Date.now()}`;
  const closure = await buildTestClosure();
  const mk = async (name: string, script: string) => (await nixBuild(scriptDrv(`${name}-${tag}`, script)))[0]!;
  const [untrusted, corruptXz, wrongNar, big, later] = await Promise.all([
    mk("pt-untrusted", "echo untrusted > $out"),
    mk("pt-corrupt", "mkdir -p $out; head -c 300000 /dev/urandom > $out/data"),
    mk("pt-wrong", "mkdir -p $out; head -c 300000 /dev/urandom > $out/data"),
    mk("pt-big", "mkdir -p $out; head -c 12000000 /dev/urandom > $out/big"),
    mk("pt-later", "echo later > $out"),
  ]);
  // a loopback service that must never be reached: requests to it are counted
  let hits = 0;
  const canary = createServer((_req, res) => {
    hits++;
    res.end("internal secret");
  });
  await new Promise<void>((r) => canary.listen(0, "127.0.0.1", r));
  const canaryPort = (canary.address() as { port: number }).port;
  const up = await startUpstream(
    `location /redirect/ { return 302 http://127.0.0.1:${canaryPort}/; }
    location /slow/ { limit_rate 1m; alias ROOT/zstd/; }`,
  );
  const trusted = await generateKey(dir, "upstream-test-1");
  const other = await generateKey(dir, "someone-else-1");
  // xz: the closure's top and dep, and the bad paths; zstd: everything else (lib only there)
  await up.copy("xz", [closure.top], "xz", trusted);
  await up.copy("xz", [corruptXz, wrongNar], "xz", trusted);
  await up.copy("xz", [untrusted], "xz", other);
  rmSync(join(up.root, "xz", `${hashOf(closure.lib)}.narinfo`));
  await up.copy("zstd", [closure.lib, big, later], "zstd", trusted);
  // a flipped byte in an xz file; another path's NAR under the name of `wrongNar`
  const bad = readFileSync(up.narFile("xz", corruptXz));
  bad[Math.floor(bad.length / 2)]! ^= 0xff;
  writeFileSync(up.narFile("xz", corruptXz), bad);
  writeFileSync(up.narFile("xz", wrongNar), readFileSync(up.narFile("xz", corruptXz)));
  return { up, trusted, other, closure, untrusted, corruptXz, wrongNar, big, later, canary, canaryPort, canaryHits: () => hits, dir };
}

describe("pull-through from a real upstream", () => {
  let fx: Fixture;
  before(async () => {
    fx = await buildFixture();
  });
  after(async () => {
    await fx?.up.close();
    fx?.canary.close();
    if (fx) rmSync(fx.dir, { recursive: true, force: true });
  });

  for (const backend of backendsFromEnv()) {
    if (!["sqlite+local", "postgres+s3"].includes(backendName(backend))) continue;
    describe(backendName(backend), () => suite(() => fx, backend));
  }
});

function suite(fixture: () => Fixture, backend: Backend): void {
  let replicas: AtticdProcess[] = [];
  let token: string;
  let setupDir: string;
  let databaseUrl: string;
  let configPath: string;
  let fx: Fixture;
  const cache = "pt";
  let cacheKey: string;
  const replica = (i: number) => replicas[i % replicas.length]!;
  const api = (i: number, path: string, init: RequestInit = {}) =>
    fetch(`${replica(i).url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers } });

  before(async () => {
    fx = fixture();
    if (fx.up.nginx.pid === undefined) await fx.up.nginx.start();
    const setup = await prepareServer({
      backend,
      chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 },
      top: [
        `[pull-through]`,
        `allowed-upstreams = [${JSON.stringify(`${fx.up.base}/`)}]`,
        `timeout = "3s"`,
        `negative-ttl = "1 minute"`,
        `breaker-threshold = 2`,
        `breaker-cooldown = "2s"`,
      ].join("\n"),
    });
    setupDir = setup.dir;
    databaseUrl = setup.databaseUrl;
    configPath = join(setup.dir, "server.toml");
    writeFileSync(configPath, setup.configToml);
    if (backend.db === "postgres") {
      const migrated = await runAtticd(["-f", configPath, "--mode", "db-migrations"]);
      assert.equal(migrated.code, 0, migrated.stderr);
      replicas = await spawnAtticdAll([
        { configPath, mode: "api-server" },
        { configPath, mode: "api-server" },
      ]);
    } else {
      replicas = await spawnAtticdAll([{ configPath, mode: "monolithic" }]);
    }
    token = mintHs256(setup.secret, atticClaims("root", { "*": ALL }));
    for (const [name, isPublic] of [[cache, true], ["private", false], ["other", true]] as const) {
      const res = await api(0, `/_api/v1/cache-config/${name}`, {
        method: "POST",
        body: JSON.stringify({ keypair: "Generate", is_public: isPublic, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
      });
      assert.equal(res.status, 200, await res.text());
    }
    const upstreams = [
      { url: `${fx.up.base}/xz`, keys: [fx.trusted.publicKey] },
      { url: `${fx.up.base}/zstd/`, keys: [fx.trusted.publicKey] },
    ];
    for (const name of [cache, "private"]) {
      const res = await api(0, `/_api/v1/cache-config/${name}`, { method: "PATCH", body: JSON.stringify({ upstreams }) });
      assert.equal(res.status, 200, await res.text());
    }
    const info = (await (await api(1, `/_api/v1/cache-config/${cache}`)).json()) as { public_key: string; upstreams: unknown };
    assert.deepEqual(info.upstreams, [
      { url: `${fx.up.base}/xz`, keys: [fx.trusted.publicKey] },
      { url: `${fx.up.base}/zstd`, keys: [fx.trusted.publicKey] },
    ]);
    cacheKey = info.public_key;
  });

  after(async () => {
    for (const r of replicas) for (const l of r.stderr().split("\n")) if (/"level":(40|50|60)/.test(l)) console.log(l.slice(0, 3000));
    await Promise.all(replicas.map((r) => r.stop()));
    rmSync(setupDir, { recursive: true, force: true });
  });

  test("an upstream URL outside the allowlist is refused with a 400 naming the setting, and never gets a request", async () => {
    const before = fx.canaryHits();
    for (const url of [`http://127.0.0.1:${fx.canaryPort}`, `http://127.0.0.1:${fx.canaryPort}/nix`, `http://localhost:${fx.up.nginx.port}`, "file:///etc", "http://169.254.169.254/latest"]) {
      const res = await api(0, `/_api/v1/cache-config/${cache}`, { method: "PATCH", body: JSON.stringify({ upstreams: [{ url, keys: [fx.trusted.publicKey] }] }) });
      const body = await res.text();
      assert.equal(res.status, 400, `${url}: ${body}`);
      assert.match(body, /allowed-upstreams|Invalid upstream URL/, url);
      assert.doesNotMatch(body, /internal secret/);
    }
    // a redirect from an allowed upstream to the refused service is not followed
    const res = await api(0, `/_api/v1/cache-config/other`, {
      method: "PATCH",
      body: JSON.stringify({ upstreams: [{ url: `${fx.up.base}/redirect`, keys: [fx.trusted.publicKey] }] }),
    });
    assert.equal(res.status, 200, await res.text());
    const ni = await fetch(`${replica(0).url}/other/${hashOf(fx.closure.top)}.narinfo`);
    assert.equal(ni.status, 404);
    assert.doesNotMatch(await ni.text(), /internal secret/);
    assert.equal(fx.canaryHits(), before, "no request reached the refused service");
  });

  test("real Nix pulls a closure through atticd trusting only the cache's key (xz and zstd upstreams, in order)", async () => {
    const store = mkdtempSync(join(tmpdir(), "attic-pt-store-"));
    try {
      await nix("nix-store", [
        "--store", store, "-r", fx.closure.top, ...NIX_OPTS,
        "--option", "substituters", `${replica(0).url}/${cache}`,
        "--option", "trusted-public-keys", cacheKey,
        "--option", "require-sigs", "true",
      ]);
      assert.equal(readFileSync(join(store, fx.closure.top, "dep-ref"), "utf8").trim(), fx.closure.dep);
      assert.ok(readFileSync(join("/", fx.closure.dep, "share/random.bin")).equals(readFileSync(join(store, fx.closure.dep, "share/random.bin"))));
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
    // our narinfo: the cache's signature first, the upstream's kept
    const text = await (await fetch(`${replica(1).url}/${cache}/${hashOf(fx.closure.dep)}.narinfo`)).text();
    const ni = parseNarInfo(text);
    assert.ok(ni.sigs[0]!.startsWith(`${cache}:`), text);
    assert.ok(ni.sigs.some((s) => s.startsWith("upstream-test-1:")), text);
    // every NAR came from its upstream once; a second pull (other replica) is served from the store
    const store2 = mkdtempSync(join(tmpdir(), "attic-pt-store-"));
    try {
      await nix("nix-store", [
        "--store", store2, "-r", fx.closure.top, ...NIX_OPTS,
        "--option", "substituters", `${replica(1).url}/${cache}`,
        "--option", "trusted-public-keys", cacheKey,
      ]);
    } finally {
      rmSync(store2, { recursive: true, force: true });
    }
    for (const [name, p] of [["xz", fx.closure.top], ["xz", fx.closure.dep], ["zstd", fx.closure.lib]] as const) {
      const url = fx.up.narinfo(name, p).url;
      assert.ok(fx.up.requests(url) >= 1, `${p} fetched`);
    }
    // a path fetched for one cache is not in another
    const db = await openDatabase(databaseUrl);
    try {
      const other = (await getCacheByName(db, "other"))!;
      assert.equal(await getObject(db, other.id, hashOf(fx.closure.dep)), null);
      const pt = (await getCacheByName(db, cache))!;
      const obj = await getObject(db, pt.id, hashOf(fx.closure.dep));
      assert.ok(obj, "stored in the cache");
      assert.match(obj.created_by ?? "", /^upstream:/);
    } finally {
      await db.close();
    }
  });

  test("a private cache needs pull permission: no token, no upstream request", async () => {
    const needle = hashOf(fx.later);
    const before = fx.up.requests(needle);
    const res = await fetch(`${replica(0).url}/private/${needle}.narinfo`);
    assert.equal(res.status, 401);
    assert.equal(fx.up.requests(needle), before);
  });

  test("a path signed by a key the upstream is not trusted for is not served", async () => {
    const res = await fetch(`${replica(0).url}/${cache}/${hashOf(fx.untrusted)}.narinfo`);
    assert.equal(res.status, 404, await res.text());
    const nar = await fetch(`${replica(1).url}/${cache}/nar/${hashOf(fx.untrusted)}.nar`);
    assert.equal(nar.status, 404);
  });

  for (const which of ["corruptXz", "wrongNar"] as const) {
    test(`a corrupted upstream NAR (${which === "corruptXz" ? "xz that does not decode" : "another NAR under its name"}) is refused and not stored`, async () => {
      const p = fx[which];
      const ni = await fetch(`${replica(0).url}/${cache}/${hashOf(p)}.narinfo`);
      const text = await ni.text();
      assert.equal(ni.status, 200, text);
      const narHash = NixHash.parse(parseNarInfo(text).narHash).toBase16();
      let complete = false;
      try {
        const res = await fetch(`${replica(1).url}/${cache}/nar/${hashOf(p)}.nar`);
        if (res.status === 200) {
          const body = Buffer.from(await res.arrayBuffer());
          const nar = await decompressWithCli("zstd", body);
          complete = createHash("sha256").update(nar).digest("hex") === narHash;
        }
      } catch {
        // the transfer was cut: what a client must see
      }
      assert.equal(complete, false, "no complete NAR was served");
      const db = await openDatabase(databaseUrl);
      try {
        const pt = (await getCacheByName(db, cache))!;
        await until("the failed fetch to finish", async () => (await db.kysely.selectFrom("attic_ts_lease").select("name").where("name", "like", `pull-through:%${hashOf(p)}`).execute()).length === 0);
        assert.equal(await getObject(db, pt.id, hashOf(p)), null, "nothing stored");
        const pending = await db.kysely.selectFrom("nar").select("id").where("state", "=", "P").execute();
        assert.equal(pending.length, 0, "no pending NAR left");
      } finally {
        await db.close();
      }
    });
  }

  test("16 concurrent pulls of one large path cause one upstream fetch, and each gets the whole NAR", async () => {
    const p = fx.big;
    const upstreamNi = fx.up.narinfo("zstd", p);
    const narHash = NixHash.parse(upstreamNi.narHash).toBase16();
    const before = fx.up.requests(upstreamNi.url);
    const results = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const ni = parseNarInfo(await (await fetch(`${replica(i).url}/${cache}/${hashOf(p)}.narinfo`)).text());
        const res = await fetch(`${replica(i).url}/${cache}/${ni.url}`);
        assert.equal(res.status, 200);
        const nar = await decompressWithCli(ni.compression ?? "none", Buffer.from(await res.arrayBuffer()));
        return createHash("sha256").update(nar).digest("hex");
      }),
    );
    for (const h of results) assert.equal(h, narHash);
    assert.equal(fx.up.requests(upstreamNi.url) - before, 1, "one upstream NAR request");
  });

  test("the upstream connection cut mid-NAR: the client's transfer is cut and nothing is stored", async () => {
    // a cache whose upstream sends the large path at 1 MB/s, stopped a few MB in
    const res0 = await api(0, `/_api/v1/cache-config/cut`, {
      method: "POST",
      body: JSON.stringify({ keypair: "Generate", is_public: true, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
    });
    assert.equal(res0.status, 200, await res0.text());
    const res1 = await api(0, `/_api/v1/cache-config/cut`, { method: "PATCH", body: JSON.stringify({ upstreams: [{ url: `${fx.up.base}/slow`, keys: [fx.trusted.publicKey] }] }) });
    assert.equal(res1.status, 200, await res1.text());
    const p = fx.big;
    const ni = parseNarInfo(await (await fetch(`${replica(0).url}/cut/${hashOf(p)}.narinfo`)).text());
    const res = await fetch(`${replica(1).url}/cut/${ni.url}`);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let received = 0;
    let stopped = false;
    let cut = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
        if (!stopped && received > 2_000_000) {
          stopped = true;
          await fx.up.nginx.stop();
        }
      }
    } catch {
      cut = true;
    } finally {
      if (stopped) await fx.up.nginx.start();
    }
    assert.ok(stopped, "the transfer was under way when the upstream stopped");
    assert.ok(cut, `the client's transfer was cut (received ${received} bytes)`);
    const db = await openDatabase(databaseUrl);
    try {
      const c = (await getCacheByName(db, "cut"))!;
      await until("the failed fetch to finish", async () => (await db.kysely.selectFrom("attic_ts_lease").select("name").where("name", "=", `pull-through:${c.id}:${hashOf(p)}`).execute()).length === 0);
      assert.equal(await getObject(db, c.id, hashOf(p)), null, "nothing stored");
    } finally {
      await db.close();
    }
  });

  test("a path no upstream has is asked once within negative-ttl", async () => {
    const absent = "0".repeat(31) + "1";
    const before = fx.up.requests(absent);
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${replica(0).url}/${cache}/${absent}.narinfo`)).status, 404);
    // both upstreams asked once by the first request; the next two are answered from memory
    assert.equal(fx.up.requests(absent) - before, 2);
  });

  test("the upstream stopped: stored paths are served, misses answer 404 fast (no 5xx), and the next request after it returns works", async () => {
    await fx.up.nginx.stop();
    try {
      const store = mkdtempSync(join(tmpdir(), "attic-pt-store-"));
      try {
        await nix("nix-store", [
          "--store", store, "-r", fx.closure.top, ...NIX_OPTS,
          "--option", "substituters", `${replica(0).url}/${cache}`,
          "--option", "trusted-public-keys", cacheKey,
        ]);
      } finally {
        rmSync(store, { recursive: true, force: true });
      }
      const statuses: number[] = [];
      const started = Date.now();
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${replica(i).url}/${cache}/${hashOf(fx.later)}.narinfo`);
        statuses.push(res.status);
      }
      assert.deepEqual([...new Set(statuses)], [404]);
      assert.ok(Date.now() - started < 10_000, `20 misses took ${Date.now() - started} ms`);
    } finally {
      await fx.up.nginx.start();
    }
    await until("the upstream to be used again", async () => (await fetch(`${replica(0).url}/${cache}/${hashOf(fx.later)}.narinfo`)).status === 200, 20_000);
    const ni = parseNarInfo(await (await fetch(`${replica(0).url}/${cache}/${hashOf(fx.later)}.narinfo`)).text());
    const nar = await fetch(`${replica(0).url}/${cache}/${ni.url}`);
    assert.equal(nar.status, 200);
    await nar.arrayBuffer();
  });

  test("fetched paths age out by retention like any path, and the next request fetches them again", async () => {
    const res = await api(0, `/_api/v1/cache-config/${cache}`, { method: "PATCH", body: JSON.stringify({ retention_period: { Period: 1 } }) });
    assert.equal(res.status, 200, await res.text());
    const p = fx.closure.lib;
    const narUrl = fx.up.narinfo("zstd", p).url;
    const fetchedBefore = fx.up.requests(narUrl);
    const db = await openDatabase(databaseUrl);
    try {
      const pt = (await getCacheByName(db, cache))!;
      await until("retention GC to remove the fetched path", async () => {
        const gc = await runAtticd(["-f", configPath, "--mode", "garbage-collector-once"]);
        assert.equal(gc.code, 0, gc.stderr);
        return (await getObject(db, pt.id, hashOf(p))) === null;
      });
      const ni = await fetch(`${replica(1).url}/${cache}/${hashOf(p)}.narinfo`);
      assert.equal(ni.status, 200, "found upstream again");
      const nar = await fetch(`${replica(1).url}/${cache}/${parseNarInfo(await ni.text()).url}`);
      assert.equal(nar.status, 200);
      await nar.arrayBuffer();
      assert.equal(fx.up.requests(narUrl) - fetchedBefore, 1, "fetched again, once");
      await until("the path to be stored again", async () => (await getObject(db, pt.id, hashOf(p))) !== null);
    } finally {
      await db.close();
    }
  });
}
