// The CPU worker pool when a worker dies: a crash or a plain exit fails that worker's jobs and no
// others, nothing hangs, and the next call gets a fresh worker. The workers here are scripted by
// the first byte of each job: 0 answers (an echo) after a while, 1 throws, 2 exits.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { FromWorker } from "../../../src/workers/protocol.ts";
import { WorkerPool } from "../../../src/workers/pool.ts";

const SCRIPTED_WORKER = new URL("../../helpers/scripted-worker.ts", import.meta.url);

/** A compress job the scripted worker answers by `data`'s first byte. */
async function compress(pool: WorkerPool, data: Uint8Array): Promise<Buffer> {
  const answer: FromWorker = await pool.request((id) => ({ kind: "compress", id, type: "zstd", level: 1, data, hash: false }));
  if (answer.kind !== "compressed") throw new Error(`unexpected ${answer.kind}`);
  return Buffer.from(answer.out);
}

const SLOW = 0;
const CRASH = 1;
const EXIT = 2;

/** `job`'s outcome, or "pending" if it has not settled within `ms` (a hang fails the test, not the run) */
async function outcome(job: Promise<Buffer>, ms = 5_000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("pending"), ms)));
  try {
    return await Promise.race([
      job.then(
        (out) => `resolved ${out[0]}`,
        (err: Error) => `rejected: ${err.message}`,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// with two workers, jobs alternate: the 1st and 3rd go to worker A, the 2nd and 4th to worker B
for (const [how, byte, message] of [
  ["crashes", CRASH, /^rejected: attic-worker-1 crashed: scripted crash$/],
  ["exits without an error", EXIT, /^rejected: attic-worker-1 exited \(code 3\)$/],
] as const) {
  test(`a worker that ${how} fails only its own jobs; the pool goes on with a fresh worker`, async () => {
    const pool = new WorkerPool({ size: 2, url: SCRIPTED_WORKER });
    try {
      const onA = compress(pool, Uint8Array.of(SLOW, 10));
      const onB = compress(pool, Uint8Array.of(SLOW, 20));
      const killsA = compress(pool, Uint8Array.of(byte));
      const results = await Promise.all([outcome(onA), outcome(onB), outcome(killsA)]);
      assert.equal(results[1], `resolved ${SLOW}`, "the other worker's job is untouched");
      assert.match(results[0]!, message, "the dead worker's earlier job fails");
      assert.match(results[2]!, message, "the job that killed it fails");

      const again = await Promise.all([0, 1, 2].map(() => outcome(compress(pool, Uint8Array.of(SLOW)))));
      assert.deepEqual(again, [`resolved ${SLOW}`, `resolved ${SLOW}`, `resolved ${SLOW}`]);
    } finally {
      await pool.close();
    }
  });
}

test("close fails the jobs in flight instead of leaving them pending", async () => {
  const pool = new WorkerPool({ size: 1, url: SCRIPTED_WORKER });
  const job = compress(pool, Uint8Array.of(SLOW));
  await pool.close();
  assert.match(await outcome(job), /^rejected: attic-worker-1 exited/);
});
