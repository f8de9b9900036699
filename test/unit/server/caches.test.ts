// The per-process caches of the hot paths: bounded, and never an answer the inputs of now would
// not give (expired tokens, rotated keys, changed rows).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { LruCache } from "../../../src/server/lru.ts";
import { VerifiedTokenCache } from "../../../src/server/verified-tokens.ts";
import { decodeHs256SecretBase64 } from "../../../src/token/jwt.ts";
import { buildNarInfo, cachedNarInfo } from "../../../src/server/narinfo.ts";
import { SigningKeypair } from "../../../src/nix/signing.ts";
import { parseNarInfo } from "../../../src/nix/narinfo.ts";

test("LruCache: evicts the least recently used entry past its capacity, by count or weight", () => {
  const lru = new LruCache<string, number>(2);
  lru.set("a", 1);
  lru.set("b", 2);
  assert.equal(lru.get("a"), 1); // a is now the most recent
  lru.set("c", 3);
  assert.equal(lru.get("b"), undefined);
  assert.deepEqual([lru.get("a"), lru.get("c"), lru.size], [1, 3, 2]);

  const bytes = new LruCache<string, string>(10, (_k, v) => v.length);
  bytes.set("x", "12345");
  bytes.set("y", "123456");
  assert.equal(bytes.get("x"), undefined);
  assert.equal(bytes.get("y"), "123456");
  bytes.set("huge", "12345678901"); // heavier than the whole cache: not kept, nothing evicted
  assert.equal(bytes.get("huge"), undefined);
  assert.equal(bytes.get("y"), "123456");
  bytes.set("y", "1"); // replacing an entry replaces its weight
  bytes.set("z", "123456789");
  assert.deepEqual([bytes.get("y"), bytes.get("z")], ["1", "123456789"]);
});

const secret = randomBytes(64);
function mint(claims: object, key = secret): string {
  const input = `${Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${input}.${createHmac("sha256", key).update(input).digest("base64url")}`;
}

test("VerifiedTokenCache: a remembered token still expires on time; forged and unknown tokens are never remembered", async () => {
  let now = 1_750_000_000_000;
  const cache = new VerifiedTokenCache(decodeHs256SecretBase64(secret.toString("base64")), {}, { clock: () => now, size: 4 });
  const token = mint({ sub: "alice", exp: now / 1000 + 60, "https://jwt.attic.rs/v1": { caches: { "*": { r: 1 } } } });
  assert.equal((await cache.verify(token))?.sub, "alice");
  assert.equal((await cache.verify(token))?.sub, "alice"); // from the cache
  now += 61_000;
  assert.equal(await cache.verify(token), null, "expired while remembered");
  now -= 61_000;
  assert.equal((await cache.verify(token))?.sub, "alice", "verified again from scratch");

  const forged = mint({ sub: "mallory", exp: now / 1000 + 60 }, randomBytes(64));
  assert.equal(await cache.verify(forged), null);
  assert.equal(await cache.verify(forged), null);
  // the same claims with a different signature is a different token
  const [h, p] = token.split(".");
  assert.equal(await cache.verify(`${h}.${p}.${Buffer.from("x".repeat(32)).toString("base64url")}`), null);
});

test("VerifiedTokenCache: bound issuer and audiences apply to remembered tokens", async () => {
  const now = 1_750_000_000_000;
  const cache = new VerifiedTokenCache(decodeHs256SecretBase64(secret.toString("base64")), { boundIssuer: "us" }, { clock: () => now });
  const ours = mint({ sub: "a", iss: "us", exp: now / 1000 + 60, "https://jwt.attic.rs/v1": { caches: {} } });
  const theirs = mint({ sub: "b", iss: "them", exp: now / 1000 + 60, "https://jwt.attic.rs/v1": { caches: {} } });
  assert.equal((await cache.verify(ours))?.sub, "a");
  assert.equal(await cache.verify(theirs), null);
  assert.equal(await cache.verify(theirs), null);
});

test("cachedNarInfo: equal to a fresh rendering; a rotated key or a changed row gives a new text", () => {
  const k1 = SigningKeypair.generate("c").toString();
  const k2 = SigningKeypair.generate("c").toString();
  const h = "0".repeat(31) + "1";
  const object = { id: 1, store_path_hash: h, store_path: `/nix/store/${h}-x`, references: "[]", system: null, deriver: null, sigs: "[]", ca: null };
  const nar = { id: 1, nar_hash: `sha256:${"a".repeat(64)}`, nar_size: 100, compression: "zstd", num_chunks: 1 };
  const first = cachedNarInfo(object, nar, k1, "/nix/store");
  assert.equal(first, buildNarInfo(object, nar, k1, "/nix/store"));
  assert.equal(cachedNarInfo(object, nar, k1, "/nix/store"), first);
  const rotated = cachedNarInfo(object, nar, k2, "/nix/store");
  assert.notEqual(rotated, first);
  assert.notEqual(parseNarInfo(rotated).sigs[0], parseNarInfo(first).sigs[0]);
  assert.equal(rotated, buildNarInfo(object, nar, k2, "/nix/store"));
  const changed = cachedNarInfo({ ...object, sigs: JSON.stringify(["other:abc"]) }, nar, k1, "/nix/store");
  assert.match(changed, /Sig: other:abc/);
  const recompressed = cachedNarInfo(object, { ...nar, compression: "xz" }, k1, "/nix/store");
  assert.match(recompressed, /Compression: xz/);
  assert.match(cachedNarInfo(object, nar, k1, "/nix/store"), /Compression: zstd/);
});
