// The control plane on SQLite and PostgreSQL: routes, JSON shapes, error names and statuses, the
// permission matrix, token handling and masking (decision 1). Route logic goes through
// app.inject(); the server options below that a real client must reach keep a listening server.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { ALL, atticClaims, mintHs256 } from "../helpers/tokens.ts";
import { runAtticadm } from "../helpers/atticd-process.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
]);

for (const backend of backends) {
  describe(`control plane (${backendName(backend)})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startServer({ backend, inject: true });
      await createCacheViaApi(s, "priv");
      await createCacheViaApi(s, "pub", { is_public: true, priority: 30 });
    });
    after(async () => s.stop());

    const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    async function expectError(res: Response, status: number, error: string) {
      assert.equal(res.status, status);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      const body = (await res.json()) as { code: number; error: string; message: string };
      assert.equal(body.code, status);
      assert.equal(body.error, error);
      assert.equal(typeof body.message, "string");
      return body;
    }

    test("GET / serves a small HTML page, HEAD too", async () => {
      const res = await s.fetch("/");
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /text\/html/);
      assert.match(await res.text(), /<html/);
      const head = await s.fetch("/", { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
    });

    test("unknown routes are 404 NotFound in the JSON error shape", async () => {
      const body = await expectError(await s.fetch("/_api/v1/nope"), 404, "NotFound");
      assert.equal(body.message, "The URL you requested was not found.");
    });

    test("nix-cache-info: private needs pull, public is open and says so", async () => {
      await expectError(await s.fetch("/priv/nix-cache-info"), 401, "Unauthorized");
      const ok = await s.fetch("/priv/nix-cache-info", { token: s.token({ priv: { r: 1 } }) });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("content-type"), "text/x-nix-cache-info");
      assert.equal(await ok.text(), "WantMassQuery: 1\nStoreDir: /nix/store\nPriority: 41\n");
      assert.equal(ok.headers.get("x-attic-cache-visibility"), null);
      const pub = await s.fetch("/pub/nix-cache-info");
      assert.equal(pub.status, 200);
      assert.equal(await pub.text(), "WantMassQuery: 1\nStoreDir: /nix/store\nPriority: 30\n");
      assert.equal(pub.headers.get("x-attic-cache-visibility"), "public");
      const head = await s.fetch("/pub/nix-cache-info", { method: "HEAD" });
      assert.equal(head.status, 200);
    });

    test("outsiders learn nothing: 401 for missing caches, missing and existing objects alike", async () => {
      const hash = "0".repeat(32);
      for (const path of [`/priv/${hash}.narinfo`, `/nope/${hash}.narinfo`, `/priv/nar/${hash}.nar`, "/nope/nix-cache-info"]) {
        await expectError(await s.fetch(path), 401, "Unauthorized");
        await expectError(await s.fetch(path, { token: s.token({ other: ALL }) }), 401, "Unauthorized");
      }
      // with pull: a missing object is 404 NoSuchObject
      const body = await expectError(await s.fetch(`/priv/${hash}.narinfo`, { token: s.token({ priv: { r: 1 } }) }), 404, "NoSuchObject");
      assert.equal(body.message, "The requested object does not exist.");
      await expectError(await s.fetch(`/pub/${hash}.narinfo`), 404, "NoSuchObject");
      // a discoverable missing cache
      await expectError(await s.fetch(`/nope/nix-cache-info`, { token: s.token({ "*": { r: 1 } }) }), 404, "NoSuchCache");
    });

    test("a malformed store-path hash is 400 RequestError; wrong suffix 404", async () => {
      await expectError(await s.fetch(`/pub/${"e".repeat(32)}.narinfo`), 400, "RequestError");
      await expectError(await s.fetch(`/pub/short.narinfo`), 400, "RequestError");
      await expectError(await s.fetch(`/pub/${"0".repeat(32)}.narinfo.zst`), 404, "NotFound");
      await expectError(await s.fetch(`/pub/nar/${"0".repeat(32)}.nar.zst`), 404, "NotFound");
    });

    test("cache-config GET shape, endpoints from Host and X-Forwarded-Proto", async () => {
      const res = await s.fetch("/_api/v1/cache-config/priv", { token: s.token({ priv: { r: 1 } }), headers: { "x-forwarded-proto": "https" } });
      assert.equal(res.status, 200);
      const cfg = (await res.json()) as Record<string, unknown>;
      const host = new URL(s.url).host;
      assert.deepEqual(Object.keys(cfg).slice(0, 8), [
        "substituter_endpoint", "api_endpoint", "public_key", "is_public", "store_dir", "priority", "upstream_cache_key_names", "retention_period",
      ]);
      assert.equal(cfg.substituter_endpoint, `https://${host}/priv`);
      assert.equal(cfg.api_endpoint, `https://${host}/`);
      assert.match(cfg.public_key as string, /^priv:[A-Za-z0-9+/]{43}=$/);
      assert.equal(cfg.is_public, false);
      assert.equal(cfg.store_dir, "/nix/store");
      assert.equal(cfg.priority, 41);
      assert.deepEqual(cfg.upstream_cache_key_names, ["cache.nixos.org-1"]);
      assert.equal(cfg.retention_period, "Global");
      assert.ok(!("keypair" in cfg));
      const alias = await s.fetch("/priv/attic-cache-info", { token: s.token({ priv: { r: 1 } }) });
      assert.equal(alias.status, 200);
    });

    test("create: all fields required, duplicate is CacheAlreadyExists, permission cc", async () => {
      const root = s.rootToken();
      const full = { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] };
      let res = await s.fetch("/_api/v1/cache-config/newc", { method: "POST", token: root, ...json({ ...full, priority: undefined }) });
      assert.equal(res.status, 422);
      res = await s.fetch("/_api/v1/cache-config/newc", { method: "POST", token: root, ...json(full) });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "");
      await expectError(await s.fetch("/_api/v1/cache-config/newc", { method: "POST", token: root, ...json(full) }), 400, "CacheAlreadyExists");
      // no permission on the name at all → 401; some permission but not cc → 403
      await expectError(await s.fetch("/_api/v1/cache-config/x1", { method: "POST", ...json(full) }), 401, "Unauthorized");
      await expectError(await s.fetch("/_api/v1/cache-config/x1", { method: "POST", token: s.token({ x1: { r: 1 } }), ...json(full) }), 403, "AccessError");
      res = await s.fetch("/_api/v1/cache-config/alice-1", { method: "POST", token: s.token({ "alice-*": { cc: 1 } }), ...json(full) });
      assert.equal(res.status, 200);
    });

    test("create with an imported keypair serves its public key", async () => {
      const { SigningKeypair } = await import("../../src/nix/signing.ts");
      const kp = SigningKeypair.generate("imported-key");
      const res = await s.fetch("/_api/v1/cache-config/imp", {
        method: "POST",
        token: s.rootToken(),
        ...json({ keypair: { Keypair: kp.toString() }, is_public: true, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
      });
      assert.equal(res.status, 200);
      const cfg = (await (await s.fetch("/_api/v1/cache-config/imp")).json()) as { public_key: string };
      assert.equal(cfg.public_key, kp.publicKey().toString());
    });

    test("configure: partial update, empty → 400, retention needs cq, regenerate keypair", async () => {
      await createCacheViaApi(s, "conf");
      const cr = s.token({ conf: { r: 1, cr: 1 } });
      const cq = s.token({ conf: { r: 1, cr: 1, cq: 1 } });
      const body = await expectError(await s.fetch("/_api/v1/cache-config/conf", { method: "PATCH", token: cr, ...json({}) }), 400, "RequestError");
      assert.equal(body.message, "General request error: No modifiable fields were set.");
      let res = await s.fetch("/_api/v1/cache-config/conf", { method: "PATCH", token: cr, ...json({ is_public: true, priority: 7 }) });
      assert.equal(res.status, 200);
      await expectError(await s.fetch("/_api/v1/cache-config/conf", { method: "PATCH", token: cr, ...json({ retention_period: { Period: 5 } }) }), 403, "AccessError");
      res = await s.fetch("/_api/v1/cache-config/conf", { method: "PATCH", token: cq, ...json({ retention_period: { Period: 5 } }) });
      assert.equal(res.status, 200);
      const before = (await (await s.fetch("/_api/v1/cache-config/conf")).json()) as { public_key: string; priority: number; retention_period: unknown; is_public: boolean };
      assert.equal(before.priority, 7);
      assert.equal(before.is_public, true);
      assert.deepEqual(before.retention_period, { Period: 5 });
      res = await s.fetch("/_api/v1/cache-config/conf", { method: "PATCH", token: cr, ...json({ keypair: "Generate" }) });
      assert.equal(res.status, 200);
      const afterCfg = (await (await s.fetch("/_api/v1/cache-config/conf")).json()) as { public_key: string; retention_period: unknown };
      assert.notEqual(afterCfg.public_key, before.public_key);
      assert.deepEqual(afterCfg.retention_period, { Period: 5 }, "a configure without retention keeps it");
      res = await s.fetch("/_api/v1/cache-config/conf", { method: "PATCH", token: cq, ...json({ retention_period: "Global" }) });
      assert.equal(res.status, 200);
      const g = (await (await s.fetch("/_api/v1/cache-config/conf")).json()) as { retention_period: unknown };
      assert.equal(g.retention_period, "Global");
    });

    test("destroy needs cd; afterwards 404 for the discoverable, 401 for others", async () => {
      await createCacheViaApi(s, "gone");
      await expectError(await s.fetch("/_api/v1/cache-config/gone", { method: "DELETE", token: s.token({ gone: { r: 1 } }) }), 403, "AccessError");
      const res = await s.fetch("/_api/v1/cache-config/gone", { method: "DELETE", token: s.token({ gone: { cd: 1 } }) });
      assert.equal(res.status, 200);
      await expectError(await s.fetch("/_api/v1/cache-config/gone", { token: s.rootToken() }), 404, "NoSuchCache");
      await expectError(await s.fetch("/_api/v1/cache-config/gone"), 401, "Unauthorized");
      // hard delete frees the name
      await createCacheViaApi(s, "gone");
    });

    test("JSON body errors: 415 wrong type, 400 malformed, 422 wrong shape, 413 too large", async () => {
      const root = s.rootToken();
      let res = await s.fetch("/_api/v1/cache-config/x2", { method: "POST", token: root, headers: { "content-type": "text/plain" }, body: "{}" });
      assert.equal(res.status, 415);
      res = await s.fetch("/_api/v1/cache-config/x2", { method: "POST", token: root, headers: { "content-type": "application/json" }, body: "{not json" });
      assert.equal(res.status, 400);
      res = await s.fetch("/_api/v1/cache-config/x2", { method: "POST", token: root, ...json({ keypair: 5 }) });
      assert.equal(res.status, 422);
      res = await s.fetch("/_api/v1/get-missing-paths", { method: "POST", token: root, ...json({ cache: "priv", store_path_hashes: ["bad"] }) });
      assert.equal(res.status, 422);
      const big = JSON.stringify({ cache: "priv", store_path_hashes: Array.from({ length: 70000 }, () => "0".repeat(32)) });
      assert.ok(big.length > 2 * 1024 * 1024);
      res = await s.fetch("/_api/v1/get-missing-paths", { method: "POST", token: root, headers: { "content-type": "application/json" }, body: big });
      assert.equal(res.status, 413);
    });

    test("invalid cache names in URLs are rejected before auth", async () => {
      const res = await s.fetch("/_api/v1/cache-config/-bad");
      assert.equal(res.status, 400);
      const long = await s.fetch(`/_api/v1/cache-config/${"a".repeat(51)}`);
      assert.equal(long.status, 400);
    });

    test("the permission matrix: each flag opens exactly its routes", async () => {
      await createCacheViaApi(s, "m1");
      const full = { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] };
      const cases: { flag: string; ok: () => Promise<Response> }[] = [];
      const probe = {
        r: (t: string) => s.fetch("/m1/nix-cache-info", { token: t }),
        w: (t: string) => s.fetch("/_api/v1/get-missing-paths", { method: "POST", token: t, ...json({ cache: "m1", store_path_hashes: [] }) }),
        cc: (t: string) => s.fetch("/_api/v1/cache-config/m1", { method: "POST", token: t, ...json(full) }),
        cr: (t: string) => s.fetch("/_api/v1/cache-config/m1", { method: "PATCH", token: t, ...json({ priority: 41 }) }),
        cq: (t: string) => s.fetch("/_api/v1/cache-config/m1", { method: "PATCH", token: t, ...json({ priority: 41, retention_period: "Global" }) }),
      };
      void cases;
      // pull only: r ok, w 403, cc 403, cr 403
      const pull = s.token({ m1: { r: 1 } });
      assert.equal((await probe.r(pull)).status, 200);
      assert.equal((await probe.w(pull)).status, 403);
      assert.equal((await probe.cc(pull)).status, 403);
      assert.equal((await probe.cr(pull)).status, 403);
      // push only: r 403 (discoverable), w 200
      const push = s.token({ m1: { w: 1 } });
      assert.equal((await probe.r(push)).status, 403);
      assert.equal((await probe.w(push)).status, 200);
      // cc on an existing cache: CacheAlreadyExists
      assert.equal((await probe.cc(s.token({ m1: { cc: 1 } }))).status, 400);
      // cr without cq: retention 403; with both 200
      assert.equal((await probe.cr(s.token({ m1: { cr: 1 } }))).status, 200);
      assert.equal((await probe.cq(s.token({ m1: { cr: 1 } }))).status, 403);
      assert.equal((await probe.cq(s.token({ m1: { cr: 1, cq: 1 } }))).status, 200);
      // d grants nothing on these routes, but makes the cache discoverable
      assert.equal((await probe.r(s.token({ m1: { d: 1 } }))).status, 403);
      // the public cache: anonymous pull, push 403 (discoverable via public pull)
      assert.equal((await s.fetch("/_api/v1/get-missing-paths", { method: "POST", ...json({ cache: "pub", store_path_hashes: [] }) })).status, 403);
    });

    test("patterns: exact name beats patterns, first matching pattern wins, no merging", async () => {
      const t = s.token({ "p*": { r: 1 }, priv: { w: 1 }, "*": ALL });
      // exact `priv` → push only: pull is 403
      assert.equal((await s.fetch("/priv/nix-cache-info", { token: t })).status, 403);
      // `pub` matches `p*` first (pull only), not `*`
      assert.equal((await s.fetch("/_api/v1/get-missing-paths", { method: "POST", token: t, ...json({ cache: "pub", store_path_hashes: [] }) })).status, 403);
      // `m1`: only `*` matches
      assert.equal((await s.fetch("/_api/v1/get-missing-paths", { method: "POST", token: t, ...json({ cache: "conf", store_path_hashes: [] }) })).status, 200);
    });

    test("expired, not-yet-valid, forged, alg none, bad flag values and wrong secret act as anonymous", async () => {
      const now = Math.floor(Date.now() / 1000);
      const claims = (extra: Record<string, unknown>) => atticClaims("x", { priv: { r: 1 } }, extra);
      const bad = [
        mintHs256(s.secret, claims({ exp: now - 1 })),
        mintHs256(s.secret, claims({ nbf: now + 60 })),
        mintHs256(Buffer.from("wrong secret"), claims({})),
        mintHs256(s.secret, claims({}), { alg: "none", typ: "JWT" }).split(".").slice(0, 2).join(".") + ".",
        mintHs256(s.secret, atticClaims("x", { priv: { r: 2 } })),
        mintHs256(s.secret, atticClaims("x", { priv: { r: true } })),
        mintHs256(s.secret, { sub: "x", exp: now + 60 }),
        "garbage",
      ];
      for (const token of bad) await expectError(await s.fetch("/priv/nix-cache-info", { token }), 401, "Unauthorized");
      // a valid token without exp never expires
      const noExp = mintHs256(s.secret, { sub: "x", "https://jwt.attic.rs/v1": { caches: { priv: { r: 1 } } } });
      assert.equal((await s.fetch("/priv/nix-cache-info", { token: noExp })).status, 200);
    });

    test("Basic auth with the token as password (netrc), case-insensitive scheme", async () => {
      const t = s.token({ priv: { r: 1 } });
      const basic = Buffer.from(`anything:${t}`).toString("base64");
      assert.equal((await s.fetch("/priv/nix-cache-info", { headers: { authorization: `Basic ${basic}` } })).status, 200);
      assert.equal((await s.fetch("/priv/nix-cache-info", { headers: { authorization: `bEaReR ${t}` } })).status, 200);
      assert.equal((await s.fetch("/priv/nix-cache-info", { headers: { authorization: `Bearer  ${t}` } })).status, 401);
    });
  });
}

describe("server options", () => {
  test("allowed-hosts rejects other Host headers with 400 Bad Host; api-endpoint is used verbatim", async () => {
    const s = await startServer({ top: `allowed-hosts = ["cache.example:80"]\napi-endpoint = "https://cache.example/"` });
    try {
      const res = await s.fetch("/");
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: string; message: string };
      assert.equal(body.error, "RequestError");
      assert.equal(body.message, "General request error: Bad Host");
      assert.equal((await s.fetch("/healthz")).status, 200, "readiness probes answer any Host");
      const { request } = await import("node:http");
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(s.url + "/", { headers: { host: "cache.example:80" } }, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(status, 200);
    } finally {
      await s.stop();
    }
  });

  test("soft-delete-caches keeps the name taken", async () => {
    const s = await startServer({ top: "soft-delete-caches = true" });
    try {
      await createCacheViaApi(s, "soft");
      const del = await s.fetch("/_api/v1/cache-config/soft", { method: "DELETE", token: s.rootToken() });
      assert.equal(del.status, 200);
      const again = await s.fetch("/_api/v1/cache-config/soft", {
        method: "POST",
        token: s.rootToken(),
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
      });
      assert.equal(again.status, 400);
      assert.equal(((await again.json()) as { error: string }).error, "CacheAlreadyExists");
      assert.equal((await s.fetch("/_api/v1/cache-config/soft", { token: s.rootToken() })).status, 404);

      // an admin frees the name; a live cache cannot be purged
      const configPath = join(s.dir, "server.toml");
      writeFileSync(configPath, s.configToml);
      await createCacheViaApi(s, "live");
      const refused = await runAtticadm(["-f", configPath, "purge-cache", "live"]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /not deleted/);
      const purged = await runAtticadm(["-f", configPath, "purge-cache", "soft"]);
      assert.equal(purged.code, 0, purged.stderr);
      await createCacheViaApi(s, "soft");
    } finally {
      await s.stop();
    }
  });
});
