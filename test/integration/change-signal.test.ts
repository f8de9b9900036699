// PostgreSQL's change signal (db/change-signal.ts) and one process's ear on it
// (db/postgres-change-listener.ts): a commit by another connection that changes what hot lookups
// read moves the committed state; the columns written by every download and upload step do not;
// a listening connection cut from the server side leaves the state unknown and then a new one,
// never the old one, so nothing kept before the cut is served after it; one that goes silent
// (its server process stopped) leaves it unknown once its heartbeat is late.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { backendName, backendsFromEnv } from "../helpers/server.ts";
import { createDatabase } from "../helpers/postgres.ts";
import { waitFor } from "../helpers/wait.ts";
import { openDatabase, type Db } from "../../src/db/connect.ts";
import { migrate } from "../../src/db/migrations/index.ts";
import { CHANGE_CHANNEL } from "../../src/db/change-signal.ts";
import { CHANGE_LISTENER_NAME } from "../../src/db/postgres-dialect.ts";
import { HEARTBEAT_MS, SILENCE_MS } from "../../src/db/postgres-change-listener.ts";

const postgres = backendsFromEnv().filter((b) => b.db === "postgres").slice(0, 1);

for (const backend of postgres) {
  describe(`change signal (${backendName(backend)})`, () => {
    let url: string;
    let db: Db;
    let other: pg.Client;
    let cacheId: number;
    let objectId: number;
    let narId: number;

    before(async () => {
      url = await createDatabase(process.env.ATTIC_TEST_PG_URL!, `it_signal_${randomBytes(4).toString("hex")}`);
      db = await openDatabase(url);
      await migrate(db);
      other = new pg.Client({ connectionString: url });
      await other.connect();
      const q = async (text: string, values: unknown[] = []) => Number((await other.query(text, values)).rows[0].id);
      cacheId = await q(`INSERT INTO cache (name, keypair, is_public, store_dir, priority, upstream_cache_key_names, created_at) VALUES ('sig', 'k', true, '/nix/store', 41, '[]', now()) RETURNING id`);
      narId = await q(`INSERT INTO nar (state, nar_hash, nar_size, compression, num_chunks, holders_count, created_at) VALUES ('V', 'sha256:00', 1, 'none', 0, 0, now()) RETURNING id`);
      objectId = await q(`INSERT INTO object (cache_id, nar_id, store_path_hash, store_path, "references", sigs, created_at) VALUES ($1, $2, '${"a".repeat(32)}', '/nix/store/${"a".repeat(32)}-x', '[]', '[]', now()) RETURNING id`, [cacheId, narId]);
    });
    after(async () => {
      await other.end();
      await db.close();
    });

    const known = () => waitFor(() => db.committedState!(), { what: "the committed state to be known" });

    test("a change of a watched row from another connection moves the state", async (t) => {
      const changes: [string, unknown[]][] = [
        [`UPDATE object SET sigs = '["x:y"]' WHERE id = $1`, [objectId]],
        [`UPDATE nar SET compression = 'zstd' WHERE id = $1`, [narId]],
        [`UPDATE cache SET is_public = false WHERE id = $1`, [cacheId]],
        [`INSERT INTO attic_ts_revocation (jti, sub, expires_at, created_at) VALUES ('j', NULL, now() + interval '1 day', now())`, []],
      ];
      const delays: number[] = [];
      for (const [text, values] of changes) {
        const before = await known();
        await other.query(text, values);
        const returned = performance.now();
        // polled at every turn of the event loop: how long the notification takes to arrive
        while (db.committedState!() === before && performance.now() - returned < 10_000) await new Promise((r) => setImmediate(r));
        delays.push(performance.now() - returned);
        assert.notEqual(db.committedState!(), before, `the state did not move after ${text}`);
      }
      t.diagnostic(`commit returned → state moved, ms: ${delays.map((d) => d.toFixed(2)).join(", ")}`);
    });

    test("downloads and upload steps (last access, holders) send no notification; a watched change does", async () => {
      const listener = new pg.Client({ connectionString: url });
      await listener.connect();
      const heard: string[] = [];
      listener.on("notification", (n) => heard.push(`${n.channel}:${n.payload ?? ""}`));
      await listener.query(`LISTEN "${CHANGE_CHANNEL}"`);
      await other.query(`UPDATE object SET last_accessed_at = now(), download_count = coalesce(download_count, 0) + 1 WHERE id = $1`, [objectId]);
      await other.query(`UPDATE nar SET holders_count = holders_count + 1, held_at = now() WHERE id = $1`, [narId]);
      // notifications arrive in commit order: any sent by the updates above comes before this one
      await other.query(`SELECT pg_notify($1, 'marker')`, [CHANGE_CHANNEL]);
      await waitFor(() => heard.includes(`${CHANGE_CHANNEL}:marker`), { what: "the marker notification" });
      assert.deepEqual(heard, [`${CHANGE_CHANNEL}:marker`]);
      await other.query(`UPDATE object SET store_path = store_path WHERE id = $1`, [objectId]);
      await waitFor(() => heard.length === 2, { what: "the notification of a watched column" });
      await listener.end();
    });

    test("this process's own write of a watched row moves the state as it completes; its download bookkeeping does not", async () => {
      const before = await known();
      await db.kysely.updateTable("object").set({ last_accessed_at: new Date() }).where("id", "=", objectId).execute();
      assert.equal(db.committedState!(), before);
      await db.kysely.updateTable("object").set({ sigs: '["own:write"]' }).where("id", "=", objectId).execute();
      const after = db.committedState!();
      assert.ok(after !== before, "the state did not move with this process's own write");
    });

    test("a listening connection gone silent (its server process stopped): unknown within SILENCE_MS, then a new state", async () => {
      const before = await known();
      const { rows } = await other.query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, [CHANGE_LISTENER_NAME]);
      assert.equal(rows.length, 1);
      const pid = Number(rows[0].pid);
      process.kill(pid, "SIGSTOP");
      try {
        await waitFor(() => db.committedState!() === null, { what: "the state to become unknown", timeoutMs: SILENCE_MS + HEARTBEAT_MS + 5000, intervalMs: 50 });
      } finally {
        process.kill(pid, "SIGCONT");
      }
      const after = await known();
      assert.notEqual(after, before);
    });

    test("a listening connection cut by the server: unknown, then a new state, never the old one", async () => {
      const before = await known();
      const cut = await other.query(`SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, [CHANGE_LISTENER_NAME]);
      assert.equal(cut.rowCount, 1);
      const seen: (string | null)[] = [];
      await waitFor(() => {
        const state = db.committedState!();
        seen.push(state);
        return state !== null && state !== before;
      }, { what: "a new committed state after the cut" });
      // once the loss is noticed, the old state never comes back
      const noticed = seen.findIndex((s) => s !== before);
      assert.ok(!seen.slice(noticed).includes(before), `states seen: ${JSON.stringify(seen)}`);
    });
  });
}
