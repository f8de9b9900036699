// OIDC token exchange (issue 18) on SQLite and PostgreSQL: a local issuer on loopback serves its
// JWKS and mints ID tokens with keys made here. A good token from `main` of `org/*` is exchanged
// (through the real `attic login --oidc`) for a token that may push to `org-*` and nothing else;
// expired, wrong-audience, wrong-issuer, unsigned, forged and unmatched tokens are each refused
// with 401 InvalidIdToken naming the reason.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { startLocalIssuer, type LocalIssuer } from "../helpers/oidc-issuer.ts";
import { attic } from "../helpers/attic-in-process.ts";

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
]);
const AUDIENCE = "https://cache.example.test";

for (const backend of backends) {
  describe(`OIDC token exchange (${backendName(backend)})`, () => {
    let issuer: LocalIssuer;
    let s: TestServer;
    before(async () => {
      issuer = await startLocalIssuer(AUDIENCE);
      const oidc = [
        `[[oidc.issuers]]`,
        `name = "local-ci"`,
        `issuer = ${JSON.stringify(issuer.issuer)}`,
        `jwks-url = ${JSON.stringify(issuer.jwksUrl)}`,
        `audience = ${JSON.stringify(AUDIENCE)}`,
        `token-validity = "10 minutes"`,
        `[[oidc.issuers.rules]]`,
        `claims = { repository = "org/*", ref = "refs/heads/main" }`,
        `pull = ["org-*"]`,
        `push = ["org-*"]`,
        `[[oidc.issuers.rules]]`,
        `claims = { repository = ["org/*", "friends/*"] }`,
        `pull = ["shared"]`,
      ].join("\n");
      s = await startServer({ backend, gc: `interval = "0"\n${oidc}` });
      await createCacheViaApi(s, "org-app");
      await createCacheViaApi(s, "shared");
      await createCacheViaApi(s, "other");
    });
    after(async () => {
      await s.stop();
      await issuer.close();
    });

    const exchange = async (idToken: string) => {
      const res = await s.fetch("/_api/v1/oidc/exchange", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id_token: idToken }) });
      return { status: res.status, body: (await res.json()) as { token?: string; expires_at?: number; error?: string; message?: string } };
    };
    const missing = (token: string, cache: string) =>
      s.fetch("/_api/v1/get-missing-paths", { method: "POST", token, headers: { "content-type": "application/json" }, body: JSON.stringify({ cache, store_path_hashes: [] }) });

    test("a job on main of org/app gets a short-lived token: push org-*, pull shared, nothing else", async () => {
      const r = await exchange(await issuer.mint({ repository: "org/app", ref: "refs/heads/main" }));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const claims = JSON.parse(Buffer.from(r.body.token!.split(".")[1]!, "base64url").toString());
      assert.equal(claims.sub, "oidc:local-ci:repo:org/app:ref:refs/heads/main");
      assert.equal(typeof claims.jti, "string");
      assert.equal(claims.exp, r.body.expires_at);
      assert.ok(claims.exp - claims.iat === 600);
      assert.deepEqual(claims["https://jwt.attic.rs/v1"].caches, { "org-*": { r: 1, w: 1 }, shared: { r: 1 } });
      assert.equal((await missing(r.body.token!, "org-app")).status, 200);
      assert.equal((await s.fetch("/shared/nix-cache-info", { token: r.body.token! })).status, 200);
      assert.equal((await missing(r.body.token!, "shared")).status, 403);
      assert.equal((await s.fetch("/other/nix-cache-info", { token: r.body.token! })).status, 401);
    });

    test("a feature branch matches only the second rule", async () => {
      const r = await exchange(await issuer.mint({ repository: "org/app", ref: "refs/heads/feature" }));
      assert.equal(r.status, 200);
      assert.equal((await missing(r.body.token!, "org-app")).status, 401);
      assert.equal((await s.fetch("/shared/nix-cache-info", { token: r.body.token! })).status, 200);
    });

    test("bad ID tokens: each a 401 InvalidIdToken naming the reason", async () => {
      const now = Math.floor(Date.now() / 1000);
      const good = { repository: "org/app", ref: "refs/heads/main" };
      const unsignedHeader = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
      const unsignedPayload = Buffer.from(JSON.stringify({ iss: issuer.issuer, aud: AUDIENCE, sub: "x", exp: now + 300, ...good })).toString("base64url");
      const cases: [what: string, token: string, reason: RegExp][] = [
        ["expired", await issuer.mint({ ...good, iat: now - 900, nbf: now - 900, exp: now - 600 }), /has expired/],
        ["wrong audience", await issuer.mint({ ...good, aud: "https://elsewhere.test" }), /audience is not "https:\/\/cache\.example\.test"/],
        ["wrong issuer", await issuer.mint({ ...good, iss: "https://token.actions.githubusercontent.com" }), /issuer "https:\/\/token\.actions\.githubusercontent\.com" is not trusted/],
        ["unsigned", `${unsignedHeader}.${unsignedPayload}.`, /unsigned \(alg none\)/],
        ["forged", await issuer.mint(good, { key: issuer.otherKey }), /signature does not verify/],
        ["unknown key", await issuer.mint(good, { key: issuer.otherKey, kid: "rotated-away" }), /no key of the issuer's JWKS/],
        ["no rule", await issuer.mint({ repository: "stranger/app", ref: "refs/heads/main" }), /no rule of issuer "local-ci" grants anything/],
        ["not a JWT", "hello", /not a JWT/],
      ];
      for (const [what, token, reason] of cases) {
        const r = await exchange(token);
        assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, "InvalidIdToken", what);
        assert.match(r.body.message!, /^The ID token was refused: /, what);
        assert.match(r.body.message!, reason, what);
      }
    });

    test("attic login --oidc reads the ID token from an env var, a file or GitHub Actions, then the token works", async () => {
      const home = mkdtempSync(join(tmpdir(), "attic-oidc-"));
      try {
        const env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, CI_ID: await issuer.mint({ repository: "org/app", ref: "refs/heads/main" }) };
        const login = await attic(["login", "ci", s.url, "--oidc", "--id-token-env", "CI_ID"], env);
        assert.match(login.stderr, /🔑 Exchanged the ID token from \$CI_ID for a token valid until /);
        const list = await attic(["cache", "list"], env);
        assert.deepEqual(list.stdout.trim().split("\n").map((l) => l.split(/\s+/)[0]), ["org-app", "shared"]);
        const file = join(home, "id-token");
        writeFileSync(file, `${await issuer.mint({ exp: 1000, iat: 900, nbf: 900 })}\n`);
        await assert.rejects(attic(["login", "ci", s.url, "--oidc", "--id-token-file", file], env), /InvalidIdToken: The ID token was refused: the ID token has expired/);
        await assert.rejects(attic(["login", "ci", s.url, "--oidc"], env), /No OIDC ID token found/);
        // GitHub Actions: the client asks the job's token endpoint for the audience given (default: the endpoint)
        const actions = { ...env, ...issuer.actionsEnv({ repository: "org/app", ref: "refs/heads/main" }) };
        await assert.rejects(attic(["login", "ci", s.url, "--oidc"], actions), /audience is not "https:\/\/cache\.example\.test"/);
        const gh = await attic(["login", "ci", s.url, "--oidc", "--audience", AUDIENCE], actions);
        assert.match(gh.stderr, /from GitHub Actions for a token valid until/);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    });
  });
}
