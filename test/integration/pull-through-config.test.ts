// Configuring pull-through upstreams (issue 27) on SQLite and PostgreSQL: with the real `attic`
// (cache configure --upstream/--upstream-key/--remove-upstream/--clear-upstreams, cache info),
// the allowlist's 400 naming `[pull-through] allowed-upstreams` (configuring sends no request to
// any upstream), the permission it needs, and `[[caches.upstreams]]` applied at start. Existing
// caches have no upstreams and answer as before.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { attic } from "../helpers/attic-in-process.ts";
import { parseConfig } from "../../src/server/config/load.ts";
import { applyDeclarations } from "../../src/server/bootstrap.ts";
import { getCacheByName } from "../../src/db/queries/caches.ts";
import { listUpstreams } from "../../src/db/queries/upstreams.ts";

const NIXOS_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

for (const backend of backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
])) {
  describe(`pull-through configuration (${backendName(backend)})`, () => {
    let s: TestServer;
    let home: string;
    let env: NodeJS.ProcessEnv;
    before(async () => {
      s = await startServer({ backend });
      home = mkdtempSync(join(tmpdir(), "attic-ptc-"));
      env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home };
      await attic(["login", "local", s.url, s.rootToken()], env);
    });
    after(async () => {
      await s.stop();
      rmSync(home, { recursive: true, force: true });
    });

    test("attic cache configure --upstream … then attic cache info; the allowlist refuses other URLs with a 400 naming it", async () => {
      await attic(["cache", "create", "nixos"], env);
      const before = await (await s.fetch("/_api/v1/cache-config/nixos", { token: s.rootToken() })).json();
      assert.equal((before as { upstreams?: unknown }).upstreams, undefined, "a cache has no upstreams until configured");
      const configured = await attic(["cache", "configure", "nixos", "--upstream", "https://cache.nixos.org", "--upstream-key", NIXOS_KEY], env);
      assert.match(configured.stderr + configured.stdout, /Configured "nixos"/);
      const info = await attic(["cache", "info", "nixos"], env);
      assert.match(info.stdout + info.stderr, new RegExp(`    Pull-through From: https://cache.nixos.org \\(trusts ${NIXOS_KEY.replace(/[+/=.]/g, "\\$&")}\\)`));
      await assert.rejects(attic(["cache", "configure", "nixos", "--upstream", "http://127.0.0.1:5432", "--upstream-key", NIXOS_KEY], env), /\[pull-through\] allowed-upstreams/);
      await assert.rejects(attic(["cache", "configure", "nixos", "--upstream", "http://169.254.169.254"], env), /--upstream-key/);
      await attic(["cache", "configure", "nixos", "--remove-upstream", "https://cache.nixos.org/"], env);
      const after = await attic(["cache", "info", "nixos"], env);
      assert.match(after.stdout + after.stderr, /Public Key/);
      assert.doesNotMatch(after.stdout + after.stderr, /Pull-through/);
      await attic(["cache", "configure", "nixos", "--upstream", "https://cache.nixos.org", "--upstream-key", NIXOS_KEY], env);
      await attic(["cache", "configure", "nixos", "--clear-upstreams"], env);
      const row = await getCacheByName(s.db, "nixos");
      assert.deepEqual(await listUpstreams(s.db, row!.id), []);
    });

    test("setting upstreams needs the configure permission; a pull token gets 403", async () => {
      await createCacheViaApi(s, "guarded");
      const res = await s.fetch("/_api/v1/cache-config/guarded", {
        method: "PATCH",
        token: s.token({ guarded: { r: 1 } }),
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ upstreams: [{ url: "https://cache.nixos.org", keys: [NIXOS_KEY] }] }),
      });
      assert.equal(res.status, 403, await res.text());
    });

    test("[[caches.upstreams]] is applied at start, once; a URL outside the allowlist stops the start", async () => {
      const declare = (toml: string) => parseConfig(s.configToml + toml, { source: "server.toml", env: {} }).config;
      const toml = `[[caches]]\nname = "declared"\n[[caches.upstreams]]\nurl = "https://cache.nixos.org"\nkeys = ["${NIXOS_KEY}"]\n`;
      const first = await applyDeclarations(s.db, declare(toml));
      assert.deepEqual(first, ['created cache "declared"', 'configured cache "declared": upstreams = https://cache.nixos.org']);
      assert.deepEqual(await applyDeclarations(s.db, declare(toml)), [], "idempotent");
      await assert.rejects(
        applyDeclarations(s.db, declare(toml.replace("https://cache.nixos.org", "http://10.0.0.1"))),
        /caches "declared": .*\[pull-through\] allowed-upstreams/,
      );
    });
  });
}
