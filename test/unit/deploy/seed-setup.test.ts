// The seed's server.toml and prod.env work with our server as written: the files in deploy/ hold
// the same settings, our loader accepts them with the secret taken from the environment, and
// the app built from them answers the seed's `wget --spider http://attic:8080` health check.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { openDatabase } from "../../../src/db/connect.ts";
import { migrate } from "../../../src/db/migrations/index.ts";
import { buildApp } from "../../../src/server/app.ts";
import { parseConfig } from "../../../src/server/config/load.ts";
import { parseListenAddress } from "../../../src/server/listen.ts";
import { createStorage } from "../../../src/storage/index.ts";
import { readDeploy, readEnvTemplate } from "./files.ts";

// The seed's Compose section, verbatim (the seed itself is not part of the repository).
const SEED_SERVER_TOML = `listen = "[::]:8080"

[database]
url = "postgres://attic:attic@pgattic:5432/attic_prod"

[storage]
type = "local"
path = "/attic/storage"

[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144

[compression]
type = "zstd"

[garbage-collection]
interval = "12 hours"
`;
const SEED_PROD_ENV_KEYS = ["POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "DATABASE_URL", "ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64"];
const SECRET = Buffer.alloc(64, 9).toString("base64");

test("deploy/server.toml holds exactly the seed's settings; prod.env.example the seed's variables", () => {
  assert.deepEqual(parseToml(readDeploy("server.toml")), parseToml(SEED_SERVER_TOML));
  const env = readEnvTemplate("prod.env");
  assert.deepEqual(Object.keys(env), SEED_PROD_ENV_KEYS);
  assert.deepEqual([env.POSTGRES_DB, env.POSTGRES_USER, env.POSTGRES_PASSWORD], ["attic_prod", "attic", "attic"]);
});

test("the seed's server.toml loads with the secret from prod.env: PostgreSQL, local storage, [::]:8080", () => {
  const env = { ...readEnvTemplate("prod.env"), ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: SECRET };
  const { config, warnings } = parseConfig(SEED_SERVER_TOML, { source: "/attic/server.toml", env });
  assert.deepEqual(warnings, []);
  assert.equal(config.database.url, "postgres://attic:attic@pgattic:5432/attic_prod", "DATABASE_URL in prod.env is not read by atticd");
  assert.deepEqual(config.storage, { type: "local", path: "/attic/storage", packs: true, packSize: 64 * 1024 * 1024 });
  assert.deepEqual(parseListenAddress(config.listen), { host: "::", port: 8080 });
  assert.equal(config.jwt.signing.alg, "HS256");
  assert.equal(config.garbageCollection.interval, 12 * 3600);
  assert.equal(config.compression.type, "zstd");
});

test("the app built from deploy/server.toml answers the seed's health check (GET and HEAD /), and /healthz follows the database", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "attic-deploy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // the seed's file with the two things this machine lacks swapped: the pgattic host and /attic
  const text = readDeploy("server.toml")
    .replace(/^url = .*$/m, `url = "sqlite::memory:"`)
    .replace(/^path = .*$/m, `path = ${JSON.stringify(join(dir, "storage"))}`);
  const { config } = parseConfig(text, { source: "server.toml", env: { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: SECRET } });
  const db = await openDatabase(config.database.url);
  await migrate(db);
  const storage = await createStorage(config.storage);
  const app = await buildApp({ config, db, storage, logger: false });
  t.after(() => app.close());

  const host = "attic:8080";
  // GNU wget --spider sends HEAD, busybox wget GET; both must be 200
  for (const method of ["HEAD", "GET"] as const) {
    const res = await app.inject({ method, url: "/", headers: { host } });
    assert.equal(res.statusCode, 200, `${method} /`);
  }
  const ready = await app.inject({ method: "GET", url: "/healthz", headers: { host } });
  assert.equal(ready.statusCode, 200);
  assert.deepEqual(ready.json(), { status: "ok" });
  const metrics = await app.inject({ method: "GET", url: "/metrics", headers: { host } });
  assert.equal(metrics.statusCode, 200);
  assert.match(metrics.headers["content-type"] as string, /^text\/plain; version=0\.0\.4/);
  assert.match(metrics.body, /^attic_uploads_total \d+$/m);

  await db.close();
  const down = await app.inject({ method: "GET", url: "/healthz", headers: { host } });
  assert.equal(down.statusCode, 503, "readiness reflects the database");
  const live = await app.inject({ method: "HEAD", url: "/", headers: { host } });
  assert.equal(live.statusCode, 200, "the seed's liveness check does not touch the database");
});
