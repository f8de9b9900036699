// The chaos run at test size (bench/chaos.ts runs it at 100 uploads): concurrent pushes of
// overlapping closures into two API replicas and a collector on PostgreSQL + S3, with a replica
// SIGKILLed and restarted at random moments, one PostgreSQL restart (-m immediate) and 5 % of S3
// requests failing. What every acknowledged upload must come to, and what the storage must look
// like after a collection past the grace period, is checked in test/helpers/chaos-checks.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runChaos } from "../helpers/chaos.ts";

test("chaos: kills, a PostgreSQL restart and S3 faults under concurrent overlapping pushes lose nothing acknowledged and leak nothing", { timeout: 280_000 }, async (t) => {
  const seed = Date.now() % 1_000_000;
  const report = await runChaos({
    uploads: 30,
    clients: 4,
    jobs: 3,
    caches: 2,
    attempts: 5,
    killEveryMs: [1000, 3000],
    faultRate: 0.05,
    graceSeconds: 15,
    seed,
    log: (line) => t.diagnostic(line),
  });
  const { problems, ...counts } = report;
  t.diagnostic(`seed ${seed}: ${JSON.stringify(counts)}`);
  assert.deepEqual(problems, [], `seed ${seed}`);
  assert.ok(report.acknowledged > 0, "some uploads were acknowledged");
  assert.ok(report.kills > 0, "a replica was killed");
  assert.equal(report.pgRestarts, 1);
});
