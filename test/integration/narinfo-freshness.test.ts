// The narinfo and nix-cache-info paths keep rows between requests (server/committed-lookups.ts)
// and rendered narinfo (server/narinfo.ts). Whatever they keep, a change made elsewhere shows on
// the very next request: a row changed by another process, a path deleted, a cache made private,
// a rotated key, a revoked token. Who the caller is stays checked on every request: an expired
// token is refused from the second it expires. The same holds between replicas: a second server
// on the same database (SQLite file or PostgreSQL) sees on its next request what the first one,
// or another process, committed (on PostgreSQL through the change signal, db/change-signal.ts).
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
import { waitFor } from "../helpers/wait.ts";

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

/**
 * Makes `change`, and returns once `server` has heard of it: at once on SQLite (the WAL-index
 * header moves with the commit); on PostgreSQL when its notification reaches the server, the one
 * window docs/decisions.md names ("Replicas keep hot lookups between requests"). "The next
 * request" below is the first one after that.
 */
async function heardBy(server: TestServer, change: () => unknown): Promise<void> {
  const before = server.db.committedState?.() ?? null;
  await change();
  if (before === null) return;
  await waitFor(() => {
    const now = server.db.committedState!();
    return now !== null && now !== before;
  }, { what: "the server to hear the change", timeoutMs: 10_000 });
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
      // on PostgreSQL, kept only once the server listens for changes (its first lookup starts it)
      if (s.db.committedState) await waitFor(() => s.db.committedState!() !== null, { what: "the server to know the committed state" });
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
      await heardBy(s, () => sqlFromAnotherProcess(s.databaseUrl, `UPDATE object SET sigs = ? WHERE store_path_hash = ?`, [JSON.stringify([sig]), fx.storePathHash]));
      const after = parseNarInfo(await (await s.fetch(`/fresh-rows/${fx.storePathHash}.narinfo`, { token: root })).text());
      assert.deepEqual(after.sigs, [...before.sigs, sig]);

      await heardBy(s, () => sqlFromAnotherProcess(s.databaseUrl, `DELETE FROM object WHERE store_path_hash = ?`, [fx.storePathHash]));
      assert.equal((await s.fetch(`/fresh-rows/${fx.storePathHash}.narinfo`, { token: root })).status, 404);
    });

    test("a key rotated on another connection signs the next narinfo", async () => {
      const fx = await pushed("fresh-key", 2);
      const oldKey = PublicKey.parse(((await (await s.fetch("/_api/v1/cache-config/fresh-key", { token: root })).json()) as { public_key: string }).public_key);
      const oldSig = parseNarInfo(await narinfoTwice("fresh-key", fx.storePathHash, root)).sigs[0]!;
      assert.ok(oldSig.startsWith(`${oldKey.name}:`));
      const rotated = SigningKeypair.generate("fresh-key");
      await heardBy(s, () => other.kysely.updateTable("cache").set({ keypair: rotated.toString() }).where("name", "=", "fresh-key").execute());
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
      await heardBy(s, () => other.kysely.updateTable("cache").set({ is_public: false }).where("name", "=", "fresh-pub").execute());
      assert.equal((await s.fetch(`/fresh-pub/${fx.storePathHash}.narinfo`)).status, 401);
      assert.equal((await s.fetch("/fresh-pub/nix-cache-info")).status, 401);
      // and a soft-deleted cache is no cache at all
      await heardBy(s, () => other.kysely.updateTable("cache").set({ deleted_at: new Date() }).where("name", "=", "fresh-pub").execute());
      assert.equal((await s.fetch("/fresh-pub/nix-cache-info", { token: root })).status, 404);
    });

    test("a token revoked elsewhere is refused on the next request, though its narinfo was just served", async () => {
      const fx = await pushed("fresh-revoke", 4);
      const token = mintHs256(s.secret, atticClaims("revokee", { "fresh-revoke": { r: 1 } }, { jti: "fresh-revoke-1" }));
      await narinfoTwice("fresh-revoke", fx.storePathHash, token);
      await heardBy(s, () => insertRevocation(other, { jti: "fresh-revoke-1", sub: "revokee" }));
      assert.equal((await s.fetch(`/fresh-revoke/${fx.storePathHash}.narinfo`, { token })).status, 401, "the revoked token was still served");
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

for (const backend of backendsFromEnv()) {
  describe(`narinfo freshness between replicas (${backendName(backend)})`, () => {
    let a: TestServer;
    let b: TestServer;
    let root: string;

    before(async () => {
      a = await startServer({ backend });
      b = await startServer({ backend }, a);
      root = a.rootToken();
    });
    after(async () => {
      await b.stop();
      await a.stop();
    });

    async function pushedToA(cache: string, seed: number, isPublic: boolean): Promise<NarFixture> {
      await createCacheViaApi(a, cache, { is_public: isPublic });
      const fx = narFixture(seededBytes(2000, seed), `replica${seed}`);
      const res = await uploadNar(a, fx, { cache, token: root });
      assert.equal(res.status, 200, await res.text());
      return fx;
    }

    async function patchOnA(cache: string, body: Record<string, unknown>): Promise<void> {
      const res = await a.fetch(`/_api/v1/cache-config/${cache}`, { method: "PATCH", token: root, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      assert.equal(res.status, 200, await res.text());
    }

    /** Served by B until the answers come from what B keeps (on PostgreSQL: once B listens for changes). */
    async function keptByB(path: string, token?: string): Promise<string> {
      const first = await b.fetch(path, { token });
      assert.equal(first.status, 200);
      const text = await first.text();
      if (b.db.committedState) await waitFor(() => b.db.committedState!() !== null, { what: "replica B to know the committed state" });
      for (let i = 0; i < 3; i++) assert.equal(await (await b.fetch(path, { token })).text(), text);
      return text;
    }

    test("a cache made private on A is refused by B on the next request, and served again once public", async () => {
      const fx = await pushedToA("replica-vis", 11, true);
      await keptByB(`/replica-vis/${fx.storePathHash}.narinfo`);
      await keptByB("/replica-vis/nix-cache-info");
      await heardBy(b, () => patchOnA("replica-vis", { is_public: false }));
      assert.equal((await b.fetch(`/replica-vis/${fx.storePathHash}.narinfo`)).status, 401);
      assert.equal((await b.fetch("/replica-vis/nix-cache-info")).status, 401);
      await heardBy(b, () => patchOnA("replica-vis", { is_public: true }));
      assert.equal((await b.fetch(`/replica-vis/${fx.storePathHash}.narinfo`)).status, 200);
      assert.equal((await b.fetch("/replica-vis/nix-cache-info")).status, 200);
    });

    test("a key rotated on A signs B's next narinfo", async () => {
      const fx = await pushedToA("replica-key", 12, false);
      const before = parseNarInfo(await keptByB(`/replica-key/${fx.storePathHash}.narinfo`, root)).sigs[0]!;
      await heardBy(b, () => patchOnA("replica-key", { keypair: "Generate" }));
      const rotated = PublicKey.parse(((await (await a.fetch("/_api/v1/cache-config/replica-key", { token: root })).json()) as { public_key: string }).public_key);
      const sig = parseNarInfo(await (await b.fetch(`/replica-key/${fx.storePathHash}.narinfo`, { token: root })).text()).sigs[0]!;
      assert.notEqual(sig, before);
      assert.ok(rotated.verify(fingerprint(fx.storePath, NixHash.parse(fx.narHash), fx.narSize, []), sig), "not signed by the rotated key");
    });

    test("a path deleted by another process is gone from B on the next request", async () => {
      const fx = await pushedToA("replica-del", 13, true);
      await keptByB(`/replica-del/${fx.storePathHash}.narinfo`);
      await heardBy(b, () => sqlFromAnotherProcess(a.databaseUrl, `DELETE FROM object WHERE store_path_hash = ?`, [fx.storePathHash]));
      assert.equal((await b.fetch(`/replica-del/${fx.storePathHash}.narinfo`)).status, 404);
    });

    test("a token revoked through A's database is refused by B on the next request", async () => {
      const fx = await pushedToA("replica-revoke", 14, false);
      const token = mintHs256(a.secret, atticClaims("replica-revokee", { "replica-revoke": { r: 1 } }, { jti: "replica-revoke-1" }));
      await keptByB(`/replica-revoke/${fx.storePathHash}.narinfo`, token);
      await heardBy(b, () => insertRevocation(a.db, { jti: "replica-revoke-1", sub: "replica-revokee" }));
      assert.equal((await b.fetch(`/replica-revoke/${fx.storePathHash}.narinfo`, { token })).status, 401, "B still served the revoked token");
    });
  });
}
