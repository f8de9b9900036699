// The narinfo and nix-cache-info paths keep rows between requests (server/committed-lookups.ts)
// and rendered narinfo (server/narinfo.ts). Whatever they keep, a change made elsewhere shows on
// the very next request: a row changed by another process, a path deleted, a cache made private,
// a rotated key. Who the caller is stays checked on every request: a revoked token is refused
// within the documented refresh of the revocation list, an expired one from the second it expires.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { atticClaims, mintHs256 } from "../helpers/tokens.ts";
import { openDatabase, type Db } from "../../src/db/connect.ts";
import { insertRevocation } from "../../src/db/queries/revocations.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { fingerprint, PublicKey, SigningKeypair } from "../../src/nix/signing.ts";
import { REVOCATION_REFRESH_MS } from "../../src/server/revocations.ts";

const CONNECT = new URL("../../src/db/connect.ts", import.meta.url).href;

/** One statement run by another process on the same database, as another replica or atticadm would. */
function sqlFromAnotherProcess(databaseUrl: string, statement: string, params: unknown[]): void {
  const script = `
    import { openDatabase } from ${JSON.stringify(CONNECT)};
    import { sql } from "kysely";
    const [url, text, params] = JSON.parse(process.argv[1]);
    const db = await openDatabase(url);
    const parts = text.split("?");
    await sql.join(parts.map((p, i) => i < params.length ? sql\`\${sql.raw(p)}\${params[i]}\` : sql.raw(p)), sql\`\`).execute(db.kysely);
    await db.close();`;
  execFileSync(process.execPath, ["--input-type=module", "-e", script, JSON.stringify([databaseUrl, statement, params])], { cwd: new URL("../..", import.meta.url).pathname, stdio: ["ignore", "ignore", "inherit"] });
}

/** Polls `probe` until it returns true, for at most `ms`. */
async function within(ms: number, probe: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const backend of backendsFromEnv()) {
  describe(`narinfo freshness (${backendName(backend)})`, () => {
    let s: TestServer;
    let root: string;
    let other: Db;

    before(async () => {
      s = await startServer({ backend });
      root = s.rootToken();
      other = await openDatabase(s.databaseUrl);
    });
    after(async () => {
      await other.close();
      await s.stop();
    });

    async function pushed(cache: string, seed: number, isPublic = false): Promise<NarFixture> {
      await createCacheViaApi(s, cache, { is_public: isPublic });
      const fx = narFixture(seededBytes(2000, seed), `fresh${seed}`);
      const res = await uploadNar(s, fx, { cache, token: root });
      assert.equal(res.status, 200, await res.text());
      return fx;
    }

    /** Asked twice, so that the second answer comes from whatever the server keeps. */
    async function narinfoTwice(cache: string, hash: string, token?: string): Promise<string> {
      const first = await s.fetch(`/${cache}/${hash}.narinfo`, { token });
      assert.equal(first.status, 200);
      const second = await s.fetch(`/${cache}/${hash}.narinfo`, { token });
      assert.equal(second.status, 200);
      const text = await second.text();
      assert.equal(await first.text(), text);
      return text;
    }

    test("a row changed by another process shows on the next request; a path it deletes is gone on the next", async () => {
      const fx = await pushed("fresh-rows", 1);
      const before = parseNarInfo(await narinfoTwice("fresh-rows", fx.storePathHash, root));
      assert.equal(before.sigs.length, 1);
      const sig = "elsewhere-1:" + Buffer.alloc(64, 7).toString("base64");
      sqlFromAnotherProcess(s.databaseUrl, `UPDATE object SET sigs = ? WHERE store_path_hash = ?`, [JSON.stringify([sig]), fx.storePathHash]);
      const after = parseNarInfo(await (await s.fetch(`/fresh-rows/${fx.storePathHash}.narinfo`, { token: root })).text());
      assert.deepEqual(after.sigs, [...before.sigs, sig]);

      sqlFromAnotherProcess(s.databaseUrl, `DELETE FROM object WHERE store_path_hash = ?`, [fx.storePathHash]);
      assert.equal((await s.fetch(`/fresh-rows/${fx.storePathHash}.narinfo`, { token: root })).status, 404);
    });

    test("a key rotated on another connection signs the next narinfo", async () => {
      const fx = await pushed("fresh-key", 2);
      const oldKey = PublicKey.parse(((await (await s.fetch("/_api/v1/cache-config/fresh-key", { token: root })).json()) as { public_key: string }).public_key);
      const oldSig = parseNarInfo(await narinfoTwice("fresh-key", fx.storePathHash, root)).sigs[0]!;
      assert.ok(oldSig.startsWith(`${oldKey.name}:`));
      const rotated = SigningKeypair.generate("fresh-key");
      await other.kysely.updateTable("cache").set({ keypair: rotated.toString() }).where("name", "=", "fresh-key").execute();
      const info = parseNarInfo(await (await s.fetch(`/fresh-key/${fx.storePathHash}.narinfo`, { token: root })).text());
      const sig = info.sigs[0]!;
      assert.notEqual(sig, oldSig);
      const fp = fingerprint(fx.storePath, NixHash.parse(fx.narHash), fx.narSize, []);
      assert.ok(rotated.publicKey().verify(fp, sig), "not signed by the rotated key");
      assert.ok(!oldKey.verify(fp, sig));
    });

    test("a cache made private elsewhere is refused to anonymous clients on the next request (narinfo and nix-cache-info)", async () => {
      const fx = await pushed("fresh-pub", 3, true);
      await narinfoTwice("fresh-pub", fx.storePathHash);
      for (let i = 0; i < 2; i++) assert.equal((await s.fetch("/fresh-pub/nix-cache-info")).status, 200);
      await other.kysely.updateTable("cache").set({ is_public: false }).where("name", "=", "fresh-pub").execute();
      assert.equal((await s.fetch(`/fresh-pub/${fx.storePathHash}.narinfo`)).status, 401);
      assert.equal((await s.fetch("/fresh-pub/nix-cache-info")).status, 401);
      // and a soft-deleted cache is no cache at all
      await other.kysely.updateTable("cache").set({ deleted_at: new Date() }).where("name", "=", "fresh-pub").execute();
      assert.equal((await s.fetch("/fresh-pub/nix-cache-info", { token: root })).status, 404);
    });

    test("a token revoked elsewhere is refused within the revocation list's refresh, though its narinfo was just served", async () => {
      const fx = await pushed("fresh-revoke", 4);
      const token = mintHs256(s.secret, atticClaims("revokee", { "fresh-revoke": { r: 1 } }, { jti: "fresh-revoke-1" }));
      await narinfoTwice("fresh-revoke", fx.storePathHash, token);
      await insertRevocation(other, { jti: "fresh-revoke-1", sub: "revokee" });
      const refused = await within(REVOCATION_REFRESH_MS + 5000, async () => (await s.fetch(`/fresh-revoke/${fx.storePathHash}.narinfo`, { token })).status === 401);
      assert.ok(refused, "the revoked token was still served");
    });

    test("an expired token is refused from the second it expires, though its narinfo was just served", async () => {
      const fx = await pushed("fresh-expiry", 5);
      // expired 8 s ago: still inside the default clock tolerance (jwt.time-tolerance, 10 s) for 2 s
      const tolerance = s.config.jwt.timeTolerance;
      const exp = Math.floor(Date.now() / 1000) - tolerance + 2;
      const token = mintHs256(s.secret, atticClaims("short", { "fresh-expiry": { r: 1 } }, { exp }));
      await narinfoTwice("fresh-expiry", fx.storePathHash, token);
      const refused = await within(10_000, async () => (await s.fetch(`/fresh-expiry/${fx.storePathHash}.narinfo`, { token })).status === 401);
      assert.ok(refused, "the expired token was still served");
      assert.ok(Date.now() / 1000 >= exp + tolerance, "refused before it expired");
    });
  });
}
