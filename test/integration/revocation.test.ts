// Token revocation (issue 18) on SQLite and PostgreSQL: two replicas on one database, tokens made
// and revoked with the real atticadm. A revoked token is refused by both replicas within 5 s,
// although both have it in their verified-token cache; revoking a subject refuses its earlier
// tokens (upstream's, without jti, included) and not later ones; other tokens keep working;
// expired revocations are cleaned up by GC; `jwt.time-tolerance` admits a token from a clock
// slightly ahead.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, prepareServer, startServer, type ServerSetup, type TestServer } from "../helpers/server.ts";
import { runAtticadm } from "../helpers/atticd-process.ts";
import { main as adminMain } from "../../src/admin/main.ts";
import { atticClaims, mintHs256 } from "../helpers/tokens.ts";
import { insertRevocation, listRevocations } from "../../src/db/queries/revocations.ts";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";
import { waitFor } from "../helpers/wait.ts";

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
]);

for (const backend of backends) {
  describe(`token revocation (${backendName(backend)})`, () => {
    let setup: ServerSetup;
    let configPath: string;
    let a: TestServer;
    let b: TestServer;
    before(async () => {
      setup = await prepareServer({ backend });
      configPath = join(setup.dir, "server.toml");
      writeFileSync(configPath, setup.configToml);
      a = await startServer({ backend }, setup);
      b = await startServer({ backend }, setup);
      await createCacheViaApi(a, "team");
    });
    after(async () => {
      await a.stop();
      await b.stop();
    });

    const status = async (s: TestServer, token: string) => {
      const res = await s.fetch("/_api/v1/cache-config/team", { token });
      return { status: res.status, body: (await res.json()) as { error?: string; message?: string } };
    };
    // the real atticadm shell and commands, run in this process (a child process costs seconds here)
    const atticadmRun = async (args: string[]) => {
      let stdout = "";
      let stderr = "";
      const code = await adminMain(["node", "atticadm", "-f", configPath, ...args], {
        env: {},
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
      });
      return { code, stdout, stderr };
    };
    const atticadm = async (...args: string[]) => {
      const r = await atticadmRun(args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };

    test("a token revoked by jti is refused by both replicas within 5 s, others keep working", async () => {
      // once as a child process: the command as an operator runs it
      const made = await runAtticadm(["-f", configPath, "make-token", "--sub", "alice", "--validity", "1 day", "--pull", "team"]);
      assert.equal(made.code, 0, made.stderr);
      const token = made.stdout.trim();
      const jti = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;
      assert.match(jti, /^[0-9a-f-]{36}$/);
      const upstreamStyle = mintHs256(setup.secret, atticClaims("alice", { team: { r: 1 } }));
      // both replicas have verified (and cached) both tokens
      for (const s of [a, b]) for (const t of [token, upstreamStyle]) assert.equal((await status(s, t)).status, 200);

      const out = await atticadm("revoke-token", token, "--reason", "leaked in a CI log");
      assert.match(out, new RegExp(`Revoked the token ${jti} of subject "alice"`));
      const revokedAt = Date.now();
      const refused = await waitFor(async () => {
        const r = await status(b, token);
        return r.status === 401 ? r : undefined;
      }, { what: "replica B to refuse the revoked token", timeoutMs: 6000, intervalMs: 100 });
      const refusedB = Date.now() - revokedAt;
      assert.equal(refused.body.error, "TokenRevoked");
      assert.match(refused.body.message!, /revoked/);
      assert.ok(refusedB < 5000, `replica B refused after ${refusedB} ms`);
      assert.equal((await status(a, token)).status, 401);
      // the token without a jti (upstream's make-token) is untouched
      assert.equal((await status(a, upstreamStyle)).status, 200);
      assert.equal((await status(b, upstreamStyle)).status, 200);
      // a revoked token is refused even on a route anyone may use
      const home = await b.fetch("/team/nix-cache-info", { token });
      assert.equal(home.status, 401);
      console.log(`# revoked token refused by replica B after ${refusedB} ms`);

      const listed = await atticadm("list-revocations");
      assert.match(listed, new RegExp(`jti ${jti} \\(sub "alice"\\)\\s+revoked .*, kept until .*, reason: leaked in a CI log`));
    });

    test("revoking a subject refuses its earlier tokens, upstream's without jti included, and admits later ones", async () => {
      const early = mintHs256(setup.secret, atticClaims("bob", { team: { r: 1 } }));
      const noTimes = mintHs256(setup.secret, { sub: "bob", "https://jwt.attic.rs/v1": { caches: { team: { r: 1 } } } });
      const carol = mintHs256(setup.secret, atticClaims("carol", { team: { r: 1 } }));
      assert.equal((await status(b, early)).status, 200);
      await atticadm("revoke-token", "--sub", "bob");
      // each replica re-reads the list once its copy is 2 s old: wait for the effect on each
      await waitFor(async () => (await status(b, early)).status === 401, { what: "replica B to refuse bob's earlier token" });
      await waitFor(async () => (await status(a, early)).status === 401, { what: "replica A to refuse bob's earlier token" });
      assert.equal((await status(a, noTimes)).status, 401, "a token with neither iat nor nbf counts as issued before");
      assert.equal((await status(a, carol)).status, 200);
      // a token's iat has whole seconds: one issued after the revocation needs the clock past its second
      const issuedBefore = (await listRevocations(a.db)).find((r) => r.sub === "bob")!.issuedBefore!.getTime();
      await waitFor(() => Math.floor(Date.now() / 1000) * 1000 > issuedBefore, { what: "the clock to pass the revocation's second", timeoutMs: 5000 });
      const now = Math.floor(Date.now() / 1000);
      const later = mintHs256(setup.secret, { ...atticClaims("bob", { team: { r: 1 } }), nbf: now, iat: now });
      assert.equal((await status(b, later)).status, 200, "a token issued after the revocation works");
      assert.match(await atticadm("list-revocations"), /sub "bob" issued until \S+\s+revoked \S+, kept for good/);
    });

    test("a token with no jti cannot be revoked alone: the message says to revoke its subject", async () => {
      const r = await atticadmRun(["revoke-token", mintHs256(setup.secret, atticClaims("dave", {}))]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /has no jti.*revoke-token --sub "dave"/);
    });

    test("expired revocations are removed by GC; live ones stay", async () => {
      await insertRevocation(a.db, { jti: "old-one", expiresAt: new Date(Date.now() - 1000) });
      await insertRevocation(a.db, { jti: "live-one", expiresAt: new Date(Date.now() + 3_600_000) });
      const report = await runGarbageCollectionOnce({ db: a.db, storage: a.storage, config: { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null } });
      assert.equal(report.revocationsExpired, 1);
      const jtis = (await listRevocations(a.db)).map((r) => r.jti);
      assert.ok(jtis.includes("live-one") && !jtis.includes("old-one"));
      const rows = await a.db.kysely.selectFrom("attic_ts_revocation").select("jti").where("jti", "=", "old-one").execute();
      assert.equal(rows.length, 0);
    });

    test("jwt.time-tolerance (default 10 s) admits a token whose nbf is a few seconds ahead, not a minute", async () => {
      const now = Math.floor(Date.now() / 1000);
      const ahead = mintHs256(setup.secret, { ...atticClaims("erin", { team: { r: 1 } }), nbf: now + 5 });
      const farAhead = mintHs256(setup.secret, { ...atticClaims("erin", { team: { r: 1 } }), nbf: now + 60 });
      const justExpired = mintHs256(setup.secret, { ...atticClaims("erin", { team: { r: 1 } }), exp: now - 3 });
      assert.equal((await status(a, ahead)).status, 200);
      assert.equal((await status(a, justExpired)).status, 200);
      assert.equal((await status(a, farAhead)).status, 401);
    });
  });
}
