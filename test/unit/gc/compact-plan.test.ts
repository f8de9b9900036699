import { test } from "node:test";
import assert from "node:assert/strict";
import { planCompaction, type PackFigures } from "../../../src/gc/compact-plan.ts";

const MiB = 2 ** 20;
const pack = (id: number, size: number, liveBytes: number, liveChunks = liveBytes > 0 ? 10 : 0): PackFigures => ({ id, size, liveBytes, liveChunks });
const policy = { threshold: 0.1, maxRewriteBytes: 1024 * MiB, packSize: 64 * MiB };

test("wholly dead packs are dropped without copying, whatever the budget", () => {
  const plan = planCompaction([pack(1, 64 * MiB, 0), pack(2, 64 * MiB, 64 * MiB)], { ...policy, maxRewriteBytes: 0 });
  assert.deepEqual(plan.drop, [1]);
  assert.deepEqual(plan.rewrite, []);
  assert.equal(plan.reclaimBytes, 64 * MiB);
});

test("packs at or above the threshold are rewritten worst first; below it they stay", () => {
  const plan = planCompaction([pack(1, 64 * MiB, 60 * MiB), pack(2, 64 * MiB, 32 * MiB), pack(3, 64 * MiB, 57 * MiB), pack(4, 64 * MiB, 58 * MiB)], policy);
  // 1: 6 % dead (stays); 2: 50 %; 3: 11 %; 4: 9.4 % (stays)
  assert.deepEqual(plan.rewrite, [2, 3]);
  assert.equal(plan.rewriteBytes, 89 * MiB);
  assert.equal(plan.reclaimBytes, 39 * MiB);
});

test("the byte budget caps a run, always letting the worst pack through", () => {
  const packs = [pack(1, 64 * MiB, 40 * MiB), pack(2, 64 * MiB, 20 * MiB), pack(3, 64 * MiB, 30 * MiB)];
  assert.deepEqual(planCompaction(packs, { ...policy, maxRewriteBytes: 50 * MiB }).rewrite, [2, 3]);
  assert.deepEqual(planCompaction(packs, { ...policy, maxRewriteBytes: 20 * MiB }).rewrite, [2]);
  // a pack larger than the whole budget is never taken
  assert.deepEqual(planCompaction(packs, { ...policy, maxRewriteBytes: 10 * MiB }).rewrite, []);
});

test("small packs are merged only when together they fill a pack", () => {
  const few = [pack(1, 4 * MiB, 4 * MiB), pack(2, 4 * MiB, 4 * MiB)];
  assert.deepEqual(planCompaction(few, policy).rewrite, []);
  const many = Array.from({ length: 20 }, (_, i) => pack(i + 1, 4 * MiB, 4 * MiB));
  const plan = planCompaction(many, policy);
  assert.equal(plan.rewrite.length, 16);
  assert.equal(plan.rewriteBytes, 64 * MiB);
});
