import { test } from "node:test";
import assert from "node:assert/strict";
import { CLAIM_NAMESPACE, grant, parseClaims, serializeClaims, type Claims } from "../../../src/token/claims.ts";

const NS = "https://jwt.attic.rs/v1";

function withFlags(flags: Record<string, unknown>): unknown {
  return { sub: "a", [NS]: { caches: { c: flags } } };
}

test("CLAIM_NAMESPACE is upstream's", () => {
  assert.equal(CLAIM_NAMESPACE, NS);
});

test("flags must be the integers 0 or 1; anything else invalidates the whole token", () => {
  assert.ok(parseClaims(withFlags({ r: 1, w: 0 })));
  for (const bad of [true, false, 2, -1, "1", null, 0.5, [1], {}]) {
    assert.equal(parseClaims(withFlags({ r: bad })), null, JSON.stringify(bad));
  }
});

test("unknown flag keys are ignored, missing flags are false", () => {
  const claims = parseClaims(withFlags({ r: 1, zz: 7 }));
  assert.ok(claims);
  const p = claims.caches.get("c");
  assert.ok(p);
  assert.equal(p.pull, true);
  assert.equal(p.push, false);
});

test("the attic claim and its caches map are required; keys must be valid patterns", () => {
  assert.equal(parseClaims({ sub: "a" }), null);
  assert.equal(parseClaims({ sub: "a", [NS]: {} }), null);
  assert.equal(parseClaims({ sub: "a", [NS]: { caches: [] } }), null);
  assert.equal(parseClaims({ sub: "a", [NS]: { caches: { "bad?": { r: 1 } } } }), null);
  assert.equal(parseClaims({ sub: "a", [NS]: { caches: { c: 1 } } }), null);
  assert.ok(parseClaims({ [NS]: { caches: {} } }));
});

test("registered claims are type-checked; fractional times are truncated", () => {
  const ok = parseClaims({ exp: 10.9, nbf: 5, iat: 1, iss: "i", aud: ["a", "b"], jti: "j", [NS]: { caches: {} } });
  assert.ok(ok);
  assert.equal(ok.exp, 10);
  assert.deepEqual(ok.aud, ["a", "b"]);
  assert.equal(parseClaims({ exp: "10", [NS]: { caches: {} } }), null);
  assert.equal(parseClaims({ exp: -1, [NS]: { caches: {} } }), null);
  assert.equal(parseClaims({ sub: 5, [NS]: { caches: {} } }), null);
  assert.equal(parseClaims({ aud: [1], [NS]: { caches: {} } }), null);
  assert.equal(parseClaims({ iss: {}, [NS]: { caches: {} } }), null);
  assert.equal(parseClaims([]), null);
  assert.equal(parseClaims(null), null);
});

test("serialisation: upstream order, only true flags in order r w d cc cr cq cd", () => {
  const claims: Claims = { exp: 4102324986, nbf: 1700000000, sub: "alice", caches: new Map() };
  grant(claims, "cache-rw", "push");
  grant(claims, "cache-rw", "pull");
  grant(claims, "cache-ro", "pull");
  grant(claims, "team-*", "createCache");
  grant(claims, "team-*", "pull");
  grant(claims, "team-*", "push");
  grant(claims, "all", "destroyCache");
  grant(claims, "all", "configureCacheRetention");
  grant(claims, "all", "configureCache");
  grant(claims, "all", "delete");
  assert.equal(
    serializeClaims(claims),
    '{"exp":4102324986,"nbf":1700000000,"sub":"alice","https://jwt.attic.rs/v1":{"caches":' +
      '{"cache-rw":{"r":1,"w":1},"cache-ro":{"r":1},"team-*":{"r":1,"w":1,"cc":1},"all":{"d":1,"cr":1,"cq":1,"cd":1}}}}',
  );
});

test("serialisation keeps insertion order for numeric-looking names and places iss/aud like jwt-simple", () => {
  const claims: Claims = { exp: 2, nbf: 1, sub: "s", iss: "me", aud: ["x"], caches: new Map() };
  grant(claims, "zeta", "pull");
  grant(claims, "123", "pull");
  assert.equal(
    serializeClaims(claims),
    '{"exp":2,"nbf":1,"iss":"me","sub":"s","aud":["x"],"https://jwt.attic.rs/v1":{"caches":{"zeta":{"r":1},"123":{"r":1}}}}',
  );
});

test("the seed's example tokens decode to the claims shown in the walkthrough", () => {
  const seedTokens = [
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTY4MDI5MzMzOSwiaHR0cHM6Ly9qd3QuYXR0aWMucnMvdjEiOnsiY2FjaGVzIjp7ImhlbGxvIjp7InIiOjEsInciOjF9fX19.XJsaVfjrX5l7p9z76836KXP6Vixn41QJUfxjiK7D-LM",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTY4MDI5MzQyNSwiaHR0cHM6Ly9qd3QuYXR0aWMucnMvdjEiOnsiY2FjaGVzIjp7ImFsaWNlLSoiOnsiciI6MSwidyI6MSwiY2MiOjF9fX19.MkSnK6yGDWYUVnYiJF3tQgdTlqstfWlbziFWUr-lKUk",
  ];
  const decoded = seedTokens.map((t) => {
    const [h, p] = t.split(".") as [string, string];
    return {
      header: JSON.parse(Buffer.from(h, "base64url").toString()),
      claims: parseClaims(JSON.parse(Buffer.from(p, "base64url").toString())),
    };
  });
  // `make-token --pull hello --push hello`
  assert.deepEqual(decoded[0]!.header, { typ: "JWT", alg: "HS256" });
  const first = decoded[0]!.claims;
  assert.ok(first);
  assert.equal(first.sub, "alice");
  assert.equal(first.exp, 1680293339);
  assert.deepEqual([...first.caches.keys()], ["hello"]);
  const hello = first.caches.get("hello")!;
  assert.deepEqual([hello.pull, hello.push, hello.createCache], [true, true, false]);
  // `--pull 'alice-*' --push 'alice-*' --create-cache 'alice-*'`
  const second = decoded[1]!.claims;
  assert.ok(second);
  assert.equal(second.exp, 1680293425);
  const alice = second.caches.get("alice-*")!;
  assert.deepEqual([alice.pull, alice.push, alice.createCache, alice.configureCache], [true, true, true, false]);
  // re-serialised the way our make-token writes them (no nbf in these older tokens)
  assert.equal(
    serializeClaims(second),
    '{"exp":1680293425,"sub":"alice","https://jwt.attic.rs/v1":{"caches":{"alice-*":{"r":1,"w":1,"cc":1}}}}',
  );
});
