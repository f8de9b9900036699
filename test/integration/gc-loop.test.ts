// The periodic collector (`monolithic` and `garbage-collector` modes) on a real SQLite database
// and local storage: disabled by interval 0, a run at once and its report logged, a shutdown that
// interrupts a long run between pages instead of waiting for it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../helpers/server.ts";
import { startGarbageCollectionLoop, type GcLog } from "../../src/gc/index.ts";
import { chunkStates, insertOrphanChunks, withDeleteMany } from "./gc-fixtures.ts";
import { waitFor } from "../helpers/wait.ts";

const CONFIG = { interval: 3600, defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null };

function recorder(): GcLog & { lines: { level: string; msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  return {
    lines,
    info: (msg, fields) => lines.push({ level: "info", msg, fields }),
    warn: (msg, fields) => lines.push({ level: "warn", msg, fields }),
    error: (msg, fields) => lines.push({ level: "error", msg, fields }),
  };
}

const until = (check: () => boolean | Promise<boolean>, what: string): Promise<unknown> => waitFor(check, { what, intervalMs: 10 });

test("interval 0 disables the loop; otherwise it runs at once, logs its report, and stops", async () => {
  const s = await startServer();
  try {
    const off = recorder();
    await insertOrphanChunks(s.db, s.storage, 5);
    await startGarbageCollectionLoop({ db: s.db, storage: s.storage, config: { ...CONFIG, interval: 0 }, log: off }).stop();
    assert.match(off.lines[0]!.msg, /disabled/);
    assert.deepEqual(await chunkStates(s.db), { V: 5 }, "nothing ran");

    const log = recorder();
    const loop = startGarbageCollectionLoop({ db: s.db, storage: s.storage, config: CONFIG, log });
    await until(() => log.lines.length > 0, "the first run");
    await loop.stop();
    assert.equal(log.lines.length, 1, JSON.stringify(log.lines));
    assert.equal(log.lines[0]!.level, "info");
    assert.match(log.lines[0]!.msg, /^Garbage collection finished in .* chunks removed: {2}5 /);
    assert.equal((log.lines[0]!.fields?.gc as { chunks: number }).chunks, 5);
    assert.deepEqual(await chunkStates(s.db), {});
  } finally {
    await s.stop();
  }
});

test("stop() interrupts a long run between pages; the next run finishes the work", async () => {
  const s = await startServer();
  try {
    await insertOrphanChunks(s.db, s.storage, 3000);
    let calls = 0;
    let stopping: Promise<void> | undefined;
    const log = recorder();
    const slow = withDeleteMany(s.storage, async (files) => {
      calls++;
      if (calls === 1) stopping = loop.stop(); // shutdown arrives while the first page is deleted
      return s.storage.deleteMany(files);
    });
    const loop = startGarbageCollectionLoop({ db: s.db, storage: slow, config: CONFIG, log });
    await until(() => stopping !== undefined, "the first page");
    await stopping;
    assert.equal(calls, 1, "no page after the shutdown");
    assert.deepEqual(await chunkStates(s.db), { D: 2000 });
    assert.deepEqual(log.lines.map((l) => l.level), ["info"]);
    assert.match(log.lines[0]!.msg, /interrupted by shutdown/);

    const next = recorder();
    const again = startGarbageCollectionLoop({ db: s.db, storage: s.storage, config: CONFIG, log: next });
    await until(() => next.lines.length > 0, "the next run");
    await again.stop();
    assert.equal((next.lines[0]!.fields?.gc as { chunks: number }).chunks, 2000);
    assert.deepEqual(await chunkStates(s.db), {});
  } finally {
    await s.stop();
  }
});

test("a failing run is logged as an error and the loop goes on", async () => {
  const s = await startServer();
  try {
    const log = recorder();
    await insertOrphanChunks(s.db, s.storage, 2);
    const broken = withDeleteMany(s.storage, () => Promise.reject(new Error("storage is down (test)")));
    const loop = startGarbageCollectionLoop({ db: s.db, storage: broken, config: { ...CONFIG, interval: 0.05 }, log });
    await until(() => log.lines.filter((l) => l.level === "error").length >= 2, "two failed runs");
    await loop.stop();
    assert.equal(log.lines[0]!.msg, "garbage collection failed");
    assert.match(String(log.lines[0]!.fields?.error), /storage is down/);
  } finally {
    await s.stop();
  }
});

test("a lease release lost with the database (a restart during the run) does not make the next runs skip", async () => {
  const s = await startServer();
  try {
    // the first run's release of the "gc" lease fails, as it does when PostgreSQL restarts under it
    let failRelease = true;
    const kysely = new Proxy(s.db.kysely, {
      get(target, prop) {
        const value = Reflect.get(target, prop) as unknown;
        if (prop !== "deleteFrom") return typeof value === "function" ? (value as () => unknown).bind(target) : value;
        return (table: string) => {
          if (table === "attic_ts_lease" && failRelease) {
            failRelease = false;
            throw new Error("Connection terminated unexpectedly (test)");
          }
          return target.deleteFrom(table as "attic_ts_lease");
        };
      },
    });
    const log = recorder();
    const loop = startGarbageCollectionLoop({ db: { ...s.db, kysely }, storage: s.storage, config: { ...CONFIG, interval: 0.05 }, log });
    await until(() => log.lines.length >= 3, "three runs");
    await loop.stop();
    assert.equal(failRelease, false, "the first release failed");
    assert.deepEqual(log.lines.filter((l) => /skipped/.test(l.msg)), [], "no run skipped for the lease it still held");
  } finally {
    await s.stop();
  }
});
