// A short fuzz run in every `npm test`: the parsers and a live server on SQLite + local storage,
// once with a fixed seed (the same cases every run) and once with a random seed that is printed,
// so a failure can be replayed with `node scripts/fuzz.ts --seed <seed>`. The long run is
// described in docs/fuzzing.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { runFuzz, summary } from "./run.ts";

const SQLITE_LOCAL = [{ db: "sqlite" as const, storage: "local" as const }];

for (const [label, seed] of [["fixed seed", 20240611], ["random seed", randomInt(2 ** 31)]] as const) {
  test(`fuzz, ${label} (${seed}): parsers and a live server hold their properties for 30 s`, async (t) => {
    const report = await runFuzz({ seed, seconds: 30, backends: SQLITE_LOCAL, concurrency: 4, requestTimeoutMs: 60_000, log: (l) => t.diagnostic(l) });
    t.diagnostic(summary(report).split("\n")[0]!);
    assert.equal(report.findings.length, 0, summary(report));
  });
}
