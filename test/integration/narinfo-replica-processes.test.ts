// Two `atticd --mode api-server` processes on one database (a SQLite file, or PostgreSQL): what
// one replica or another process commits is seen by the other replica's next narinfo request,
// though it answered the same request from what it keeps a moment before (server/committed-lookups.ts).
// On SQLite that is exact (the WAL-index header moves with the commit). On PostgreSQL the other
// process learns of it by a notification (db/change-signal.ts), whose arrival cannot be watched
// from outside: there the answer must change within DELIVERY_MS, far above the delivery times
// measured (docs/decisions.md, "Replicas keep hot lookups between requests") and far below the
// 2 s the revocation list took before.
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnAtticdAll, runAtticd, type AtticdProcess } from "../helpers/atticd-process.ts";
import { backendName, backendsFromEnv, prepareServer, type ServerSetup } from "../helpers/server.ts";
import { atticClaims, ALL, mintHs256 } from "../helpers/tokens.ts";
import { narFixture, seededBytes, uploadInfo, type NarFixture } from "../helpers/nar.ts";
import { waitFor } from "../helpers/wait.ts";
import { openDatabase, type Db } from "../../src/db/connect.ts";
import { insertRevocation } from "../../src/db/queries/revocations.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { fingerprint, PublicKey } from "../../src/nix/signing.ts";
import { CHANGE_LISTENER_NAME } from "../../src/db/postgres-dialect.ts";

const DELIVERY_MS = 1000;

const backends = backendsFromEnv().filter((b, i, all) => all.findIndex((o) => o.db === b.db) === i);

for (const backend of backends) {
  describe(`narinfo between replica processes (${backendName(backend)})`, () => {
    let setup: ServerSetup;
    let a: AtticdProcess;
    let b: AtticdProcess;
    let db: Db;
    let root: string;

    before(async () => {
      setup = await prepareServer({ backend });
      const configPath = join(setup.dir, "server.toml");
      writeFileSync(configPath, setup.configToml);
      const migrated = await runAtticd(["-f", configPath, "--mode", "db-migrations"]);
      assert.equal(migrated.code, 0, migrated.stderr);
      [a, b] = (await spawnAtticdAll([{ configPath, mode: "api-server" }, { configPath, mode: "api-server" }])) as [AtticdProcess, AtticdProcess];
      db = await openDatabase(setup.databaseUrl);
      root = mintHs256(setup.secret, atticClaims("root", { "*": ALL }));
    });
    after(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await db?.close();
      rmSync(setup.dir, { recursive: true, force: true });
    });

    const get = (server: AtticdProcess, path: string, token?: string) => fetch(server.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });

    async function onA(method: string, path: string, body: unknown): Promise<void> {
      const res = await fetch(a.url + path, { method, headers: { authorization: `Bearer ${root}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      assert.equal(res.status, 200, await res.text());
    }

    async function pushedToA(cache: string, seed: number, isPublic: boolean): Promise<NarFixture> {
      await onA("POST", `/_api/v1/cache-config/${cache}`, { keypair: "Generate", is_public: isPublic, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
      const fx = narFixture(seededBytes(3000, seed), `proc${seed}`);
      const res = await fetch(`${a.url}/_api/v1/upload-path`, { method: "PUT", headers: { authorization: `Bearer ${root}`, "x-attic-nar-info": JSON.stringify(uploadInfo(fx, cache)) }, body: fx.nar });
      assert.equal(res.status, 200, await res.text());
      return fx;
    }

    /**
     * B answers `path` the same way several times, from what it keeps: on PostgreSQL once its
     * change listener (started by its first lookup) has heard its own first heartbeat.
     */
    async function servedByB(path: string, token?: string): Promise<string> {
      assert.equal((await get(b, path, token)).status, 200);
      if (backend.db === "postgres") {
        await waitFor(async () => {
          const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()
            AND application_name = ${CHANGE_LISTENER_NAME} AND state = 'idle' AND query LIKE 'SELECT pg_notify%'`.execute(db.kysely);
          return rows[0]!.n > 0;
        }, { what: "B's change listener to listen" });
      }
      const texts = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await get(b, path, token);
        assert.equal(res.status, 200);
        texts.add(await res.text());
      }
      assert.equal(texts.size, 1);
      return [...texts][0]!;
    }

    /** B's answer after a change: on SQLite the very next one; on PostgreSQL within DELIVERY_MS. */
    async function nextFromB(path: string, ok: (res: Response, text: string) => boolean, what: string, token?: string): Promise<void> {
      if (backend.db === "sqlite") {
        const res = await get(b, path, token);
        assert.ok(ok(res, await res.text()), `B's next answer: ${res.status}, not ${what}`);
        return;
      }
      await waitFor(async () => {
        const res = await get(b, path, token);
        return ok(res, await res.text());
      }, { what: `B to answer ${what}`, timeoutMs: DELIVERY_MS, intervalMs: 5 });
    }

    test("a cache made private, a rotated key, a deleted path, a revoked token", async () => {
      const fx = await pushedToA("proc-cache", 21, true);
      const narinfo = `/proc-cache/${fx.storePathHash}.narinfo`;
      const oldSig = parseNarInfo(await servedByB(narinfo)).sigs[0]!;
      await servedByB("/proc-cache/nix-cache-info");

      await onA("PATCH", "/_api/v1/cache-config/proc-cache", { is_public: false });
      await nextFromB(narinfo, (res) => res.status === 401, "401 to an anonymous client");
      await nextFromB("/proc-cache/nix-cache-info", (res) => res.status === 401, "401 to an anonymous client");

      const reader = mintHs256(setup.secret, atticClaims("proc-reader", { "proc-cache": { r: 1 } }, { jti: "proc-reader-1" }));
      await servedByB(narinfo, reader);
      await onA("PATCH", "/_api/v1/cache-config/proc-cache", { keypair: "Generate" });
      const rotated = PublicKey.parse(((await (await get(a, "/_api/v1/cache-config/proc-cache", root)).json()) as { public_key: string }).public_key);
      const fp = fingerprint(fx.storePath, NixHash.parse(fx.narHash), fx.narSize, []);
      await nextFromB(narinfo, (res, text) => res.status === 200 && rotated.verify(fp, parseNarInfo(text).sigs[0]!), "a narinfo signed by the rotated key", reader);
      assert.notEqual(parseNarInfo(await servedByB(narinfo, reader)).sigs[0], oldSig);

      await insertRevocation(db, { jti: "proc-reader-1", sub: "proc-reader" });
      await nextFromB(narinfo, (res) => res.status === 401, "401 to the revoked token", reader);

      await servedByB(narinfo, root);
      await db.kysely.deleteFrom("object").where("store_path_hash", "=", fx.storePathHash).execute();
      await nextFromB(narinfo, (res) => res.status === 404, "404 for the deleted path", root);
    });
  });
}
