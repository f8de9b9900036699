import { test } from "node:test";
import assert from "node:assert/strict";
import { parseClaims, type Claims } from "../../../src/token/claims.ts";
import { CachePermission, getPermissionForCache, isValidCachePattern, matchPattern } from "../../../src/token/permissions.ts";

function claimsWith(caches: Record<string, Record<string, number>>): Claims {
  const claims = parseClaims({ sub: "t", "https://jwt.attic.rs/v1": { caches } });
  assert.ok(claims);
  return claims;
}

test("matchPattern: `*` matches any sequence including the empty one, nothing else is special", () => {
  const cases: [string, string, boolean][] = [
    ["*", "anything", true],
    ["*", "a", true],
    ["team-*", "team-", true],
    ["team-*", "team-abc", true],
    ["team-*", "team", false],
    ["team-*", "xteam-a", false],
    ["*-prod", "web-prod", true],
    ["*-prod", "web-prod2", false],
    ["a*b*c", "abc", true],
    ["a*b*c", "aXXbYYc", true],
    ["a*b*c", "aXXbYY", false],
    ["a**", "a", true],
    ["dev+1", "dev+1", true],
    ["dev+1", "devv1", false],
    ["cache", "Cache", false],
    ["cache", "cache", true],
  ];
  for (const [pattern, name, expected] of cases) assert.equal(matchPattern(pattern, name), expected, `${pattern} ~ ${name}`);
});

test("isValidCachePattern: the upstream pattern regex", () => {
  for (const ok of ["*", "team-*", "a", "A-b_c+d*", "x".repeat(50)]) assert.ok(isValidCachePattern(ok), ok);
  for (const bad of ["", "-a", "_a", "a?", "a/b", "a.b", "x".repeat(51), "a b", "ä"]) assert.ok(!isValidCachePattern(bad), bad);
});

test("an exact key beats an earlier matching pattern", () => {
  const claims = claimsWith({ "*": { r: 1 }, prod: { w: 1 } });
  const p = getPermissionForCache(claims, "prod");
  assert.equal(p.push, true);
  assert.equal(p.pull, false);
});

test("the FIRST matching pattern in token order wins, and patterns are never merged", () => {
  const claims = claimsWith({ "team-*": { r: 1 }, "*": { r: 1, w: 1, cc: 1 } });
  const team = getPermissionForCache(claims, "team-a");
  assert.deepEqual({ ...team }, { ...Object.assign(new CachePermission(), { pull: true }) });
  const other = getPermissionForCache(claims, "other");
  assert.equal(other.push, true);
  assert.equal(other.createCache, true);

  const reversed = claimsWith({ "*": { r: 1, w: 1, cc: 1 }, "team-*": { r: 1 } });
  assert.equal(getPermissionForCache(reversed, "team-a").push, true);
});

test("no matching entry: no permissions, no discovery", () => {
  const claims = claimsWith({ "team-*": { r: 1 } });
  const p = getPermissionForCache(claims, "team");
  assert.equal(p.canDiscover(), false);
  assert.equal(getPermissionForCache(claimsWith({}), "x").canDiscover(), false);
});

test("`team-*` matches the bare `team-` and `*` matches everything", () => {
  assert.equal(getPermissionForCache(claimsWith({ "team-*": { w: 1 } }), "team-").push, true);
  assert.equal(getPermissionForCache(claimsWith({ "*": { cd: 1 } }), "anything-at-all").destroyCache, true);
});

test("canDiscover is true for any single flag", () => {
  for (const flag of ["r", "w", "d", "cc", "cr", "cq", "cd"]) {
    assert.equal(getPermissionForCache(claimsWith({ c: { [flag]: 1 } }), "c").canDiscover(), true, flag);
  }
  assert.equal(getPermissionForCache(claimsWith({ c: { r: 0 } }), "c").canDiscover(), false);
});

test("the result is a copy: granting public pull does not change the token", () => {
  const claims = claimsWith({ c: { w: 1 } });
  const p = getPermissionForCache(claims, "c");
  p.pull = true;
  assert.equal(getPermissionForCache(claims, "c").pull, false);
});
