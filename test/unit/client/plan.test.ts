import assert from "node:assert/strict";
import { test } from "node:test";
import { hashOfPath, planPush, signedByUpstream } from "../../../src/client/push/plan.ts";
import { FakeStore, fakePath } from "./fakes.ts";

// c → b → a, d (signed by cache.nixos.org) ← c, e separate
const a = fakePath("a", "a");
const b = fakePath("b", "b", { references: [a.path] });
const d = fakePath("d", "d", { sigs: ["cache.nixos.org-1:sig"] });
const c = fakePath("c", "c", { references: [b.path, d.path] });

function setup(missing: (hashes: string[]) => string[]) {
  const store = new FakeStore([a, b, c, d]);
  const asked: string[][] = [];
  const api = {
    getMissingPaths: async (_cache: string, hashes: string[]) => {
      asked.push(hashes);
      return missing(hashes);
    },
  };
  return { store, asked, deps: { store, api, cache: "hello", upstreamKeyNames: ["cache.nixos.org-1"] } };
}

test("the plan takes the closure, drops upstream-signed paths and what the cache has, in one request", async () => {
  const { asked, deps, store } = setup((hashes) => hashes.filter((h) => h !== hashOfPath(a.path)));
  const plan = await planPush([c.path], deps, { noClosure: false, ignoreUpstreamFilter: false });
  assert.deepEqual(plan.paths.map((p) => p.path).sort(), [b.path, c.path].sort());
  assert.equal(plan.numAllPaths, 4);
  assert.equal(plan.numUpstream, 1);
  assert.equal(plan.numAlreadyCached, 1);
  assert.equal(asked.length, 1);
  assert.deepEqual(asked[0]!.sort(), [a, b, c].map((p) => hashOfPath(p.path)).sort());
  assert.deepEqual(store.calls, { closure: 0, pathInfos: 0, closurePathInfos: 1, nar: 0 }, "closure and metadata in one store query");
});

test("--ignore-upstream-cache-filter and --no-closure", async () => {
  const { asked, deps } = setup((hashes) => hashes);
  const all = await planPush([c.path], deps, { noClosure: false, ignoreUpstreamFilter: true });
  assert.equal(all.paths.length, 4);
  assert.equal(all.numUpstream, 0);
  const only = await planPush([c.path], deps, { noClosure: true, ignoreUpstreamFilter: false });
  assert.deepEqual(only.paths.map((p) => p.path), [c.path]);
  assert.equal(only.numAllPaths, 1);
  assert.equal(asked.length, 2);
});

test("everything upstream or cached: nothing to push, no request when all are upstream", async () => {
  const { asked, deps } = setup(() => []);
  const cached = await planPush([c.path], deps, { noClosure: false, ignoreUpstreamFilter: false });
  assert.deepEqual(cached.paths, []);
  assert.equal(cached.numAlreadyCached, 3);
  const upstream = await planPush([d.path], deps, { noClosure: false, ignoreUpstreamFilter: false });
  assert.deepEqual(upstream, { paths: [], numAllPaths: 1, numAlreadyCached: 0, numUpstream: 1 });
  assert.equal(asked.length, 1);
  assert.deepEqual(await planPush([], deps, { noClosure: false, ignoreUpstreamFilter: false }), { paths: [], numAllPaths: 0, numAlreadyCached: 0, numUpstream: 0 });
});

test("the upstream filter matches key names exactly, without verifying signatures", () => {
  assert.equal(signedByUpstream(fakePath("a", "x", { sigs: ["cache.nixos.org-1:anything"] }), ["cache.nixos.org-1"]), true);
  assert.equal(signedByUpstream(fakePath("a", "x", { sigs: ["cache.nixos.org-2:x", "nocolon"] }), ["cache.nixos.org-1"]), false);
  assert.equal(signedByUpstream(fakePath("a", "x", { sigs: ["cache.nixos.org-1:x"] }), []), false);
});
