// Declarative bootstrap (issue 18) on SQLite and PostgreSQL: `[[caches]]` and `[bootstrap]` from
// a real server.toml, applied at start. The first application creates and configures, the second
// changes nothing; a changed declaration sets only what changed; undeclared caches stay unless
// prune-caches is set; a declared subject is revoked once. Once through a real atticd process.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, prepareServer, startServer, type ServerSetup, type TestServer } from "../helpers/server.ts";
import { spawnAtticd } from "../helpers/atticd-process.ts";
import { parseConfig } from "../../src/server/config/load.ts";
import { applyDeclarations } from "../../src/server/bootstrap.ts";
import { getCacheByName } from "../../src/db/queries/caches.ts";
import { listRevocations } from "../../src/db/queries/revocations.ts";
import { SigningKeypair } from "../../src/nix/signing.ts";

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
]);

for (const backend of backends) {
  describe(`declarative bootstrap (${backendName(backend)})`, () => {
    let setup: ServerSetup;
    let s: TestServer;
    let keyFile: string;
    const key = SigningKeypair.generate("imported-1");
    before(async () => {
      setup = await prepareServer({ backend });
      s = await startServer({ backend }, setup);
      keyFile = join(setup.dir, "hello.key");
      writeFileSync(keyFile, `${key.toString()}\n`, { mode: 0o600 });
      await createCacheViaApi(s, "handmade");
    });
    after(async () => s.stop());

    const declare = (toml: string) => parseConfig(setup.configToml + toml, { source: "server.toml", env: {} }).config;
    const CACHES = () => `
[[caches]]
name = "hello"
public = true
priority = 30
retention-period = "2 weeks"
keypair-file = ${JSON.stringify(keyFile)}

[[caches]]
name = "ci"
max-size = "10 GiB"

[bootstrap]
revoke-subjects = ["old-ci"]
`;

    test("applies once, then nothing; a changed key is set alone; undeclared caches stay", async () => {
      const first = await applyDeclarations(s.db, declare(CACHES()));
      assert.deepEqual(first, ['created cache "hello"', 'created cache "ci"', 'revoked the tokens of subject "old-ci"']);
      const hello = await getCacheByName(s.db, "hello");
      assert.equal(hello?.priority, 30);
      assert.equal(hello?.retention_period, 14 * 86400);
      assert.equal(hello?.keypair, key.toString());
      const info = (await (await s.fetch("/_api/v1/cache-config/hello")).json()) as { public_key: string; is_public: boolean };
      assert.equal(info.public_key, key.publicKey().toString());
      assert.equal((await getCacheByName(s.db, "ci"))?.max_size, 10 * 2 ** 30);
      assert.equal((await getCacheByName(s.db, "ci"))?.priority, 41, "the create default");

      assert.deepEqual(await applyDeclarations(s.db, declare(CACHES())), [], "idempotent");
      // someone changes hello by hand; the declaration puts back only what it declares
      await s.fetch("/_api/v1/cache-config/hello", { method: "PATCH", token: s.rootToken(), headers: { "content-type": "application/json" }, body: JSON.stringify({ priority: 99, store_dir: "/nix/store" }) });
      assert.deepEqual(await applyDeclarations(s.db, declare(CACHES().replace("public = true", "public = false"))), ['configured cache "hello": public = false, priority = 30']);
      assert.ok(await getCacheByName(s.db, "handmade"), "undeclared caches are left alone");
      const revocations = (await listRevocations(s.db)).filter((r) => r.sub === "old-ci");
      assert.equal(revocations.length, 1, "a declared subject is revoked once");
    });

    test("prune-caches destroys what is not declared; a bad keypair-file stops the start", async () => {
      const changes = await applyDeclarations(s.db, declare(CACHES() + "prune-caches = true\n"));
      // (the test before left hello private)
      assert.deepEqual(changes, ['configured cache "hello": public = true', 'destroyed undeclared cache "handmade" (bootstrap.prune-caches)']);
      assert.equal(await getCacheByName(s.db, "handmade"), null);
      writeFileSync(join(setup.dir, "bad.key"), "not a key");
      await assert.rejects(
        applyDeclarations(s.db, declare(`[[caches]]\nname = "x"\nkeypair-file = ${JSON.stringify(join(setup.dir, "bad.key"))}\n`)),
        /caches "x": keypair-file .*bad\.key is not a Nix secret key/,
      );
    });

    if (backend.db === "sqlite") {
      test("atticd applies the declarations at start and logs each change", async () => {
        const first = await spawnAtticd({ configToml: setup.configToml + `[[caches]]\nname = "from-atticd"\npublic = true\n`, dir: setup.dir });
        try {
          assert.match(first.stderr(), /Declared in the config: created cache \\?"from-atticd\\?"/);
          assert.equal((await fetch(`${first.url}/from-atticd/nix-cache-info`)).status, 200);
        } finally {
          await first.stop();
        }
      });
    }
  });
}
