// Races between uploads, and between an upload and garbage collection, made deterministic: an
// upload's body is held back at a gate while the test plays the other party (a process that
// died holding a NAR claim, a GC run that reaps what the upload wrote), then let through.
//   - A NAR claimed by a process that is gone is taken over as soon as the claim's lease runs
//     out (seconds), not after the 2-minute busy window.
//   - GC leaves a pending NAR alone while its upload renews the claim, even past the grace period.
//   - An upload whose pending NAR or held chunks GC did reap gets a 503 with a message (the
//     client retries), never a 500. (Chunks a batch's claim links take no hold; the held ones are
//     those claimed one at a time, e.g. while another replica was writing them.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { sql } from "kysely";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { ALL } from "../helpers/tokens.ts";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";
import { insertNar, narClaimLeaseName } from "../../src/db/queries/nars.ts";
import { takeLease } from "../../src/db/queries/leases.ts";
import { insertPendingChunk, markChunkValid, releaseChunk } from "../../src/db/queries/chunks.ts";
import { newChunkKey } from "../../src/storage/index.ts";
import { cutLengths } from "../helpers/chunking-reference.ts";
import { createHash } from "node:crypto";

const MiB = 2 ** 20;
const HOUR = 3600_000;

/** Polls `check` until it holds; fails the test after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The NAR's first `split` bytes, then the rest once `open()` is called. */
function gatedBody(fx: NarFixture, split: number): { body: AsyncIterable<Uint8Array>; open: () => void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  return {
    open,
    body: (async function* () {
      yield fx.nar.subarray(0, split);
      await gate;
      yield fx.nar.subarray(split);
    })(),
  };
}

for (const backend of backendsFromEnv([{ db: "sqlite", storage: "local" }, { db: "postgres", storage: "s3" }])) {
  describe(`upload races (${backendName(backend)})`, () => {
    let s: TestServer;
    let token: string;
    let seed = 100;
    const count = async (q: string) => Number((await sql.raw<{ n: number }>(q).execute(s.db.kysely)).rows[0]!.n);
    const pendingNars = (fx: NarFixture) => count(`SELECT count(*) AS n FROM nar WHERE state = 'P' AND nar_hash = '${fx.narHash}'`);
    const gc = () => runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { ...s.config.garbageCollection } });
    /** as if `ms` had passed since they were written: older than GC's grace period */
    const age = async (table: "nar" | "chunk", ms: number) => {
      const then = new Date(Date.now() - ms);
      if (table === "nar") await s.db.kysely.updateTable("nar").set({ created_at: then }).where("state", "=", "P").execute();
      else await s.db.kysely.updateTable("chunk").set({ created_at: then, held_at: then }).execute();
    };

    before(async () => {
      // chunks stored one object each (packs = false): the held-chunk race is about valid chunks an
      // upload holds; with packs an upload's new chunks stay pending until its commit (faults.test.ts, "with packs")
      s = await startServer({ backend, gc: `interval = "0"\nstale-grace-period = "1 hour"`, storageExtra: "packs = false" });
      token = s.token({ races: ALL });
      await createCacheViaApi(s, "races");
    });
    after(async () => {
      await s.stop();
    });

    test("a NAR claimed by a process that died is taken over once the claim's lease runs out, not after the busy window", async () => {
      const fx = narFixture(seededBytes(MiB, seed++), "dead-claim");
      // what a process leaves when it dies while storing the NAR: a pending row, and a lease
      // it renewed last just now (it would have run out 2 s later)
      await insertNar(s.db, { state: "P", nar_hash: fx.narHash, nar_size: fx.narSize, compression: "zstd", num_chunks: 0 });
      await takeLease(s.db, narClaimLeaseName(fx.narHash), "a-process-that-died", 2000);
      const t0 = Date.now();
      const res = await uploadNar(s, fx, { cache: "races", token, body: fx.nar });
      const waited = Date.now() - t0;
      assert.equal(res.status, 200, await res.text());
      assert.ok(waited >= 1500, `it waited while the claim's lease was alive (${waited} ms)`);
      assert.ok(waited < 15_000, `taken over within seconds (${waited} ms)`);
    });

    test("GC leaves a pending NAR alone while its upload renews the claim, even past the grace period", async () => {
      const fx = narFixture(seededBytes(MiB, seed++), "live-claim");
      const gated = gatedBody(fx, MiB / 2);
      const upload = uploadNar(s, fx, { cache: "races", token, body: gated.body });
      await until("the upload's pending NAR", async () => (await pendingNars(fx)) === 1);
      await age("nar", 2 * HOUR);
      const report = await gc();
      assert.equal(await pendingNars(fx), 1, `the live upload's NAR is still there: ${JSON.stringify(report)}`);
      gated.open();
      const res = await upload;
      assert.equal(res.status, 200, await res.text());
    });

    test("an upload whose pending NAR GC reaped (its claim lost) gets a retryable 503 with a message, not a 500", async () => {
      const fx = narFixture(seededBytes(2 * MiB, seed++), "reaped-nar");
      const gated = gatedBody(fx, MiB);
      const upload = uploadNar(s, fx, { cache: "races", token, body: gated.body });
      await until("the upload's pending NAR", async () => (await pendingNars(fx)) === 1);
      // the claim lost (its renewals failed while the database was away), and the row is old
      await s.db.kysely.deleteFrom("attic_ts_lease").where("name", "=", narClaimLeaseName(fx.narHash)).execute();
      await age("nar", 2 * HOUR);
      await gc();
      assert.equal(await pendingNars(fx), 0, "GC reaped the pending NAR");
      gated.open();
      const res = await upload;
      const body = (await res.json()) as { error: string; message: string };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error, "ServiceUnavailable");
      assert.match(body.message, /removed by garbage collection before the upload finished.*retry/);
      // and the retry goes through
      const again = await uploadNar(s, fx, { cache: "races", token });
      assert.equal(again.status, 200, await again.text());
    });

    test("an upload whose held chunks GC reaped gets a retryable 503 with a message, not a 500", async () => {
      const fx = narFixture(seededBytes(2 * MiB, seed++), "reaped-chunks");
      // A batch's claim links the chunks it finds or creates at once (no hold). A chunk another
      // replica is writing when its batch is claimed is claimed again alone once valid, and held
      // until its link is written (128 at a time): play that replica for four chunks of the
      // NAR's first MiB, with young pending rows of their own.
      const { minSize, avgSize, maxSize } = s.config.chunking;
      const lengths = cutLengths(fx.nar, { minSize, avgSize, maxSize });
      const offsets = lengths.map((_, i) => lengths.slice(0, i).reduce((a, b) => a + b, 0));
      const picked = [2, 3, 4, 5].filter((i) => offsets[i]! + lengths[i]! <= MiB);
      assert.equal(picked.length, 4);
      const twins: number[] = [];
      for (const i of picked) {
        const chunk = fx.nar.subarray(offsets[i]!, offsets[i]! + lengths[i]!);
        const { remoteFile, remoteFileId } = s.storage.remoteFileFor(newChunkKey());
        twins.push(
          await insertPendingChunk(s.db, {
            chunk_hash: createHash("sha256").update(chunk).digest("hex"),
            chunk_size: chunk.length,
            compression: s.config.compression.narinfoName,
            remote_file: JSON.stringify(remoteFile),
            remote_file_id: remoteFileId,
          }),
        );
      }
      const held = async () => count(`SELECT count(*) AS n FROM chunk WHERE id IN (${twins.join(", ")}) AND state = 'V' AND holders_count > 0`);
      const gated = gatedBody(fx, (3 * MiB) / 2);
      const upload = uploadNar(s, fx, { cache: "races", token, body: gated.body });
      // the first batch claimed (and its other chunks linked), the twins found busy
      const linkedFirst = () =>
        count(`SELECT count(*) AS n FROM chunkref JOIN nar ON nar.id = chunkref.nar_id WHERE nar.nar_hash = '${fx.narHash}' AND chunkref.seq IN (0, 1)`);
      await until("the upload's first batch claimed", async () => (await linkedFirst()) === 2).catch((err: unknown) => {
        gated.open();
        throw err;
      });
      // the other replica finishes: its chunks valid, its holds given up (its own links do not matter here)
      for (const id of twins) {
        await markChunkValid(s.db, id, { fileHash: `sha256:${"0".repeat(64)}`, fileSize: 1 });
        await releaseChunk(s.db, id);
      }
      await until("the upload holding the twins", async () => (await held()) === twins.length);
      // the upload stalled past the grace period: GC takes its holds for leaked ones
      await age("chunk", 2 * HOUR);
      await gc();
      assert.equal(await held(), 0, "GC reaped the held chunks");
      gated.open();
      const res = await upload;
      const body = (await res.json()) as { error: string; message: string };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error, "ServiceUnavailable");
      assert.match(body.message, /chunks? .*removed by garbage collection before the upload finished.*retry/);
      const again = await uploadNar(s, fx, { cache: "races", token });
      assert.equal(again.status, 200, await again.text());
    });
  });
}
