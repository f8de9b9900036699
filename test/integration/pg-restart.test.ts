// PostgreSQL restarted under load (issue 15): the real atticd as a child process in each mode, on
// a PostgreSQL cluster of this file's own, with queries in flight when PostgreSQL is stopped
// (`pg_ctl -m immediate`, as a crash, or `-m fast`) and started again a second later. atticd must
// stay up, answer 503 meanwhile, and serve uploads and pulls once the database is back.
//
// "In flight" is made certain rather than hoped for: a session of the test locks the tables, so
// atticd's queries wait on checked-out connections until PostgreSQL goes down under them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { spawnAtticd, type AtticdProcess } from "../helpers/atticd-process.ts";
import { prepareServer, type ServerSetup } from "../helpers/server.ts";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.ts";
import { atticClaims, ALL, mintHs256 } from "../helpers/tokens.ts";
import { narFixture, seededBytes, uploadInfo, type NarFixture } from "../helpers/nar.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { openDatabase } from "../../src/db/connect.ts";
import { migrate } from "../../src/db/migrations/index.ts";
import { waitFor } from "../helpers/wait.ts";

type StopMode = "immediate" | "fast";
/** an HTTP status, or 0 with the socket-level error when no answer came (a dead process) */
type Outcome = { status: number; error?: string };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function attempt(url: string, init?: RequestInit): Promise<Outcome> {
  try {
    const res = await fetch(url, init);
    const body = await res.text();
    return res.status === 503 ? { status: 503, error: JSON.parse(body).error } : { status: res.status };
  } catch (err) {
    return { status: 0, error: String((err as Error).cause ?? err) };
  }
}

/** A session that holds `tables` locked until PostgreSQL goes down (or `end()`). */
async function lockTables(url: string, tables: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {}); // killed with the server, on purpose
  await client.connect();
  await client.query("BEGIN");
  await client.query(`LOCK TABLE ${tables} IN ACCESS EXCLUSIVE MODE`);
  return client;
}

/** Waits until at least `n` sessions of atticd wait on our locks (running a statement LIKE `query`); returns how many do. */
async function lockWaiters(clusterUrl: string, databaseUrl: string, n: number, query = "%"): Promise<number> {
  const datname = new URL(databaseUrl).pathname.slice(1);
  const monitor = new pg.Client({ connectionString: clusterUrl });
  monitor.on("error", () => {});
  await monitor.connect();
  try {
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      const { rows } = await monitor.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE $2",
        [datname, query],
      );
      if (rows[0]!.n >= n) return rows[0]!.n;
      await sleep(50);
    }
    throw new Error(`fewer than ${n} queries waited on the locks`);
  } finally {
    await monitor.end();
  }
}

function assertAlive(proc: AtticdProcess): void {
  assert.equal(proc.child.exitCode, null, `atticd exited:\n${proc.stderr()}`);
  assert.equal(proc.child.signalCode, null, `atticd was killed:\n${proc.stderr()}`);
  assert.doesNotMatch(proc.stderr(), /Unhandled 'error' event|uncaught/i);
}

/** Stops PostgreSQL, runs `duringOutage` for about a second, starts it again. */
async function restart(cluster: PostgresCluster, mode: StopMode, duringOutage: () => Promise<void> = () => sleep(1000)): Promise<void> {
  cluster.stopServer(mode);
  try {
    const started = Date.now();
    await duringOutage();
    await sleep(Math.max(0, 1000 - (Date.now() - started)));
  } finally {
    cluster.startServer();
  }
}

describe("PostgreSQL restarted under load, atticd as a process", () => {
  let cluster: PostgresCluster;
  const dirs: string[] = [];
  before(async () => {
    cluster = await startPostgres();
  });
  after(() => {
    cluster?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function setUp(mode: string, gc?: string): Promise<{ setup: ServerSetup; configPath: string; proc: AtticdProcess }> {
    const setup = await prepareServer({ backend: { db: "postgres", storage: "local" }, pgClusterUrl: cluster.url, gc });
    dirs.push(setup.dir);
    const configPath = join(setup.dir, "server.toml");
    writeFileSync(configPath, setup.configToml);
    if (mode !== "monolithic") {
      // what `atticd --mode db-migrations` does, without starting another process
      const db = await openDatabase(setup.databaseUrl);
      await migrate(db).finally(() => db.close());
    }
    const serving = mode === "monolithic" || mode === "api-server";
    const proc = await spawnAtticd({ configPath, mode, readyText: serving ? undefined : null, env: { ATTIC_LOG_LEVEL: "info" } });
    return { setup, configPath, proc };
  }

  // Uploads are cut off at their first query (every table locked) or at their last step (only
  // `object` locked: chunks stored, NAR rows written, the final transaction waiting).
  for (const [mode, stop, cut] of [
    ["api-server", "immediate", "first query"],
    ["api-server", "fast", "last step"],
    ["monolithic", "immediate", "last step"],
    ["monolithic", "fast", "first query"],
  ] as const) {
    test(`${mode}, pg_ctl -m ${stop}, uploads cut off at their ${cut}: stays up, 503 meanwhile, uploads and pulls work after`, { timeout: 120_000 }, async () => {
      // monolithic also runs its collector every second, into the same outage
      const { setup, proc } = await setUp(mode, mode === "monolithic" ? `interval = "1s"\ndefault-retention-period = "1 day"` : undefined);
      try {
        const token = mintHs256(setup.secret, atticClaims("ci", { "*": ALL }));
        const auth = { authorization: `Bearer ${token}` };
        const created = await attempt(`${proc.url}/_api/v1/cache-config/c`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
        });
        assert.equal(created.status, 200);
        const push = (fx: NarFixture) =>
          attempt(`${proc.url}/_api/v1/upload-path`, { method: "PUT", headers: { ...auth, "x-attic-nar-info": JSON.stringify(uploadInfo(fx, "c")) }, body: fx.nar });
        const narinfo = (fx: NarFixture) => attempt(`${proc.url}/c/${fx.storePathHash}.narinfo`, { headers: auth });
        const pulledIntact = async (fx: NarFixture) => {
          const ni = await fetch(`${proc.url}/c/${fx.storePathHash}.narinfo`, { headers: auth });
          assert.equal(ni.status, 200, `${fx.storePath}: ${ni.status}`);
          const info = parseNarInfo(await ni.text());
          const body = Buffer.from(await (await fetch(`${proc.url}/c/${info.url}`, { headers: auth })).arrayBuffer());
          assert.ok((await decompressWithCli(info.compression ?? "none", body)).equals(fx.nar), fx.storePath);
        };

        const earlier = narFixture(seededBytes(150_000, 1), "earlier");
        assert.equal((await push(earlier)).status, 200);
        const fixtures = Array.from({ length: 4 }, (_, i) => narFixture(seededBytes(150_000, 10 + i), `during${i}`));

        // queries in flight: uploads, narinfo (and cache-config) lookups wait on the locks
        const locker = await lockTables(setup.databaseUrl, cut === "first query" ? "cache, object, nar, chunk, chunkref" : "object");
        const inFlight = [
          ...fixtures.map(push),
          // few enough that the four uploads (and monolithic's collector) still get one of the ten pooled connections
          ...Array.from({ length: 3 }, () => narinfo(earlier)),
          attempt(`${proc.url}/_api/v1/cache-config/c`, { headers: auth }),
        ];
        // the last step's first statement on `object`: the push's lookup of a path it replaces (db/queries/stats.ts)
        const waiting = await lockWaiters(cluster.url, setup.databaseUrl, 4, cut === "first query" ? "%" : 'select "nar"."id" as "nar_id", "nar"."nar_size" as "nar_size" from "object"%');

        const outage: Outcome[] = [];
        await restart(cluster, stop, async () => {
          // settle what was in flight, then ask while the database is down
          await Promise.all(inFlight);
          const until = Date.now() + 800;
          while (Date.now() < until) outage.push(await narinfo(earlier));
        });
        await locker.end().catch(() => {});

        const settled = await Promise.all(inFlight);
        assertAlive(proc);
        assert.deepEqual(settled.filter((o) => o.status === 0), [], "every request in flight got an answer");
        // (with "%", monolithic's collector may be among the waiters: no request of ours answers for it)
        const cutOff = Math.min(waiting, inFlight.length);
        assert.ok(settled.filter((o) => o.status === 503).length >= cutOff, `the ${cutOff} requests whose queries were cut off answer 503 (${waiting} waited): ${JSON.stringify(settled)}`);
        assert.ok(settled.every((o) => o.status === 503 ? o.error === "ServiceUnavailable" : o.status === 200), JSON.stringify(settled));
        assert.ok(outage.length > 0);
        assert.deepEqual(outage.filter((o) => o.status !== 503 || o.error !== "ServiceUnavailable"), [], "requests during the outage answer 503");

        // the database is back: the pool replaces its dead connections without a restart of atticd
        let back: Outcome = { status: 0 };
        await waitFor(async () => (back = await narinfo(earlier)).status === 200, { what: "the narinfo to be served again after the restart", intervalMs: 100 }).catch(() => undefined);
        assert.equal(back.status, 200, `served again after the restart: ${JSON.stringify(back)}`);
        // the cut-off pushes left pending rows; their cleanup runs once the database is back, so
        // a retry does not wait out the two-minute window in which they count as another upload's
        const retried = Date.now();
        for (const fx of fixtures) assert.equal((await push(fx)).status, 200, `push of ${fx.storePath} after the restart`);
        assert.ok(Date.now() - retried < 20_000, `the retried pushes took ${Date.now() - retried} ms`);
        for (const fx of [earlier, ...fixtures]) await pulledIntact(fx);
        assert.equal((await attempt(`${proc.url}/healthz`)).status, 200);
        assertAlive(proc);
      } finally {
        await proc.stop();
      }
    });
  }

  for (const stop of ["immediate", "fast"] as const) {
    test(`garbage-collector, pg_ctl -m ${stop} with its lease query in flight: stays up and collects again after`, { timeout: 60_000 }, async () => {
      const { setup, proc } = await setUp("garbage-collector", `interval = "1s"\ndefault-retention-period = "1 day"`);
      try {
        const runs = () => proc.stderr().split("Garbage collection finished").length - 1;
        await waitFor(() => runs() > 0, { what: "a first collection", intervalMs: 100 }).catch(() => undefined);
        assert.ok(runs() > 0, `a first collection ran:\n${proc.stderr()}`);

        const locker = await lockTables(setup.databaseUrl, "attic_ts_lease, cache, object, nar, chunk, chunkref");
        await lockWaiters(cluster.url, setup.databaseUrl, 1);
        await restart(cluster, stop);
        await locker.end().catch(() => {});
        const before = runs();
        assertAlive(proc);

        await waitFor(() => runs() > before, { what: "a collection after the restart", intervalMs: 100 }).catch(() => undefined);
        assert.ok(runs() > before, `a collection ran after the restart:\n${proc.stderr()}`);
        assert.match(proc.stderr(), /garbage collection failed/, "the cut-off run was logged as failed");
        assertAlive(proc);
      } finally {
        await proc.stop();
      }
    });
  }
});
