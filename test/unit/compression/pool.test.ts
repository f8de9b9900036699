// The worker pool when a worker dies: a crash or a plain exit fails that worker's jobs and no
// others, nothing hangs, and the next call gets a fresh worker. The workers here are scripted by
// the first byte of each job: 0 answers (an echo) after a while, 1 throws, 2 exits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CompressionPool } from "../../../src/compression/pool.ts";

const SCRIPTED_WORKER = `
const { parentPort } = require("node:worker_threads");
parentPort.on("message", ({ id, data }) => {
  if (data[0] === 1) throw new Error("scripted crash");
  if (data[0] === 2) process.exit(3);
  setTimeout(() => parentPort.postMessage({ id, out: Uint8Array.from(data) }), 200);
});
`;

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
  ["crashes", CRASH, /^rejected: compression worker crashed: scripted crash$/],
  ["exits without an error", EXIT, /^rejected: compression worker exited \(code 3\)$/],
] as const) {
  test(`a worker that ${how} fails only its own jobs; the pool goes on with a fresh worker`, async () => {
    const pool = new CompressionPool({ size: 2, workerSource: SCRIPTED_WORKER });
    try {
      const onA = pool.compress("zstd", 1, Uint8Array.of(SLOW, 10));
      const onB = pool.compress("zstd", 1, Uint8Array.of(SLOW, 20));
      const killsA = pool.compress("zstd", 1, Uint8Array.of(byte));
      const results = await Promise.all([outcome(onA), outcome(onB), outcome(killsA)]);
      assert.equal(results[1], `resolved ${SLOW}`, "the other worker's job is untouched");
      assert.match(results[0]!, message, "the dead worker's earlier job fails");
      assert.match(results[2]!, message, "the job that killed it fails");

      const again = await Promise.all([0, 1, 2].map(() => outcome(pool.compress("brotli", 1, Uint8Array.of(SLOW)))));
      assert.deepEqual(again, [`resolved ${SLOW}`, `resolved ${SLOW}`, `resolved ${SLOW}`]);
    } finally {
      await pool.close();
    }
  });
}

test("close fails the jobs in flight instead of leaving them pending", async () => {
  const pool = new CompressionPool({ size: 1, workerSource: SCRIPTED_WORKER });
  const job = pool.compress("zstd", 1, Uint8Array.of(SLOW));
  await pool.close();
  assert.match(await outcome(job), /^rejected: compression worker exited/);
});
