import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../../src/server/config/load.ts";
import { mintRootToken, rootTokenClaims, writeFirstRunConfig } from "../../../src/server/config/first-run.ts";
import { serializeClaims } from "../../../src/token/claims.ts";
import { verifyToken } from "../../../src/token/jwt.ts";
import { getPermissionForCache } from "../../../src/token/permissions.ts";

function tempEnv(t: { after: (fn: () => void) => void }): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), "attic-first-run-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { HOME: dir, XDG_CONFIG_HOME: join(dir, "config"), XDG_DATA_HOME: join(dir, "data") };
}

test("first run writes a complete server.toml (mode 0600) that loads back", async (t) => {
  const env = tempEnv(t);
  const { path, config } = writeFirstRunConfig(env);
  assert.equal(path, join(env.XDG_CONFIG_HOME!, "attic", "server.toml"));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.ok(statSync(join(env.XDG_DATA_HOME!, "attic", "storage")).isDirectory());

  const text = readFileSync(path, "utf8");
  assert.match(text, /^url = "sqlite:\/\/.*\/data\/attic\/server\.db"$/m);
  assert.equal(config.database.url, `sqlite://${join(env.XDG_DATA_HOME!, "attic", "server.db")}`);
  assert.deepEqual(config.storage, { type: "local", path: join(env.XDG_DATA_HOME!, "attic", "storage"), packs: true, packSize: 64 * 1024 * 1024 });
  assert.deepEqual(config.chunking, { narSizeThreshold: 65536, minSize: 16384, avgSize: 65536, maxSize: 262144 });
  assert.deepEqual(config.compression, { type: "zstd", level: 8, narinfoName: "zstd" });
  assert.equal(config.garbageCollection.interval, 43200);
  const secret = /^token-hs256-secret-base64 = "([A-Za-z0-9+/=]+)"$/m.exec(text);
  assert.ok(secret);
  assert.equal(Buffer.from(secret[1]!, "base64").length, 64);
  assert.ok(config.jwt.signing.alg === "HS256");

  // a second start finds and reuses it
  const loaded = await loadConfig({ env });
  assert.equal(loaded.source, "xdg");
  assert.deepEqual(loaded.config.chunking, config.chunking);
  assert.deepEqual(loaded.warnings, []);
  // never overwritten
  assert.throws(() => writeFirstRunConfig(env), { code: "EEXIST" });
  assert.equal(readFileSync(path, "utf8"), text);

  // each first run has its own secret
  const other = tempEnv(t);
  writeFirstRunConfig(other);
  assert.notEqual(readFileSync(defaultPath(other), "utf8").match(/secret-base64 = (.*)/)?.[1], secret[1]);
  assert.deepEqual(readdirSync(join(env.XDG_CONFIG_HOME!, "attic")), ["server.toml"]);
});

function defaultPath(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CONFIG_HOME!, "attic", "server.toml");
}

test("the root token: sub root, all 7 permissions on *, valid for two years", async (t) => {
  const now = 1_700_000_000_000;
  assert.equal(
    serializeClaims(rootTokenClaims(now)),
    `{"exp":${1_700_000_000 + 63_115_200},"nbf":1700000000,"sub":"root","https://jwt.attic.rs/v1":{"caches":{"*":{"r":1,"w":1,"d":1,"cc":1,"cr":1,"cq":1,"cd":1}}}}`,
  );
  const { config } = writeFirstRunConfig(tempEnv(t));
  const token = await mintRootToken(config);
  const claims = await verifyToken(token, config.jwt.signing);
  assert.ok(claims);
  assert.equal(claims.sub, "root");
  const p = getPermissionForCache(claims, "any-cache");
  assert.ok(p.pull && p.push && p.delete && p.createCache && p.configureCache && p.configureCacheRetention && p.destroyCache);
  assert.ok(token.length < 300, `root token is short (${token.length} chars)`);
});
