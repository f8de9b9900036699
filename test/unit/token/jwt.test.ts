import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import {
  decodeHs256SecretBase64,
  decodeRs256PubkeyBase64,
  decodeRs256SecretBase64,
  decodeSigningConfig,
  signToken,
  SigningKeyError,
  verifyToken,
  type JwtSigning,
} from "../../../src/token/jwt.ts";
import { grant, type Claims } from "../../../src/token/claims.ts";
import { getPermissionForCache } from "../../../src/token/permissions.ts";

const NS = "https://jwt.attic.rs/v1";
const NOW = 1_750_000_000_000; // ms
const NOW_S = NOW / 1000;
const secret = randomBytes(64);
const hs256 = decodeHs256SecretBase64(secret.toString("base64"));

const b64url = (s: string | Buffer): string => Buffer.from(s).toString("base64url");

/** An HS256 JWT made WITHOUT the project's token code: plain HMAC over `header.payload`. */
function mintIndependently(payload: unknown, header: unknown = { alg: "HS256", typ: "JWT" }, key: Buffer = secret): string {
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(typeof payload === "string" ? payload : JSON.stringify(payload))}`;
  return `${signingInput}.${createHmac("sha256", key).update(signingInput).digest("base64url")}`;
}

function upstreamPayload(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { exp: NOW_S + 3600, nbf: NOW_S - 10, sub: "alice", [NS]: { caches: { "cache-rw": { r: 1, w: 1 }, "team-*": { r: 1, cc: 1 } } }, ...extra };
}

const verify = (token: string, signing: JwtSigning = hs256, opts: Parameters<typeof verifyToken>[2] = {}) =>
  verifyToken(token, signing, { now: NOW, ...opts });

test("independently minted HS256 tokens in the upstream format are honoured", async () => {
  const claims = await verify(mintIndependently(upstreamPayload()));
  assert.ok(claims);
  assert.equal(claims.sub, "alice");
  assert.equal(getPermissionForCache(claims, "cache-rw").push, true);
  assert.equal(getPermissionForCache(claims, "team-x").createCache, true);
  assert.equal(getPermissionForCache(claims, "team-x").push, false);
  assert.equal(getPermissionForCache(claims, "other").canDiscover(), false);

  // the older upstream format of the seed: typ first, no nbf
  const seedStyle = mintIndependently(
    { sub: "alice", exp: NOW_S + 60, [NS]: { caches: { hello: { r: 1, w: 1 } } } },
    { typ: "JWT", alg: "HS256" },
  );
  assert.equal((await verify(seedStyle))?.caches.get("hello")?.push, true);
  // no exp: never expires
  assert.ok(await verify(mintIndependently({ sub: "x", [NS]: { caches: {} } })));
});

test("exp, nbf and iat are checked with zero tolerance", async () => {
  const exp = mintIndependently(upstreamPayload({ exp: NOW_S }));
  assert.ok(await verify(exp, hs256, { now: NOW }));
  assert.equal(await verify(exp, hs256, { now: NOW + 1 }), null);
  assert.equal(await verify(exp, hs256, { now: NOW + 1000 }), null);

  const nbf = mintIndependently(upstreamPayload({ nbf: NOW_S }));
  assert.ok(await verify(nbf, hs256, { now: NOW }));
  assert.equal(await verify(nbf, hs256, { now: NOW - 1 }), null);

  const iat = mintIndependently(upstreamPayload({ iat: NOW_S + 1 }));
  assert.equal(await verify(iat), null);
  assert.ok(await verify(mintIndependently(upstreamPayload({ iat: NOW_S }))));
  // the real clock is used when none is given
  assert.equal(await verifyToken(mintIndependently(upstreamPayload({ exp: 1000, nbf: 1 })), hs256), null);
});

test("iss binding", async () => {
  const withIss = mintIndependently(upstreamPayload({ iss: "https://attic.example" }));
  const withoutIss = mintIndependently(upstreamPayload());
  assert.ok(await verify(withIss, hs256, { boundIssuer: "https://attic.example" }));
  assert.equal(await verify(withIss, hs256, { boundIssuer: "https://other" }), null);
  assert.equal(await verify(withoutIss, hs256, { boundIssuer: "https://attic.example" }), null);
  assert.ok(await verify(withIss));
});

test("aud binding: string or array, must intersect", async () => {
  const bound = { boundAudiences: ["a", "b"] };
  assert.ok(await verify(mintIndependently(upstreamPayload({ aud: "a" })), hs256, bound));
  assert.ok(await verify(mintIndependently(upstreamPayload({ aud: ["c", "b"] })), hs256, bound));
  assert.equal(await verify(mintIndependently(upstreamPayload({ aud: ["c"] })), hs256, bound), null);
  assert.equal(await verify(mintIndependently(upstreamPayload({ aud: "c" })), hs256, bound), null);
  assert.equal(await verify(mintIndependently(upstreamPayload()), hs256, bound), null);
  assert.equal(await verify(mintIndependently(upstreamPayload({ aud: "a" })), hs256, { boundAudiences: [] }), null);
  assert.ok(await verify(mintIndependently(upstreamPayload({ aud: "zzz" }))));
});

test("alg none, other algorithms and forged signatures are rejected", async () => {
  const payload = b64url(JSON.stringify(upstreamPayload()));
  assert.equal(await verify(`${b64url('{"alg":"none","typ":"JWT"}')}.${payload}.`), null);
  assert.equal(await verify(`${b64url('{"alg":"none"}')}.${payload}.`), null);
  assert.equal(await verify(mintIndependently(upstreamPayload(), { alg: "HS512", typ: "JWT" })), null);
  assert.equal(await verify(mintIndependently(upstreamPayload(), { alg: "hs256", typ: "JWT" })), null);
  assert.equal(await verify(mintIndependently(upstreamPayload(), { typ: "JWT" })), null);
  assert.equal(await verify(mintIndependently(upstreamPayload(), undefined, randomBytes(64))), null);

  const good = mintIndependently(upstreamPayload());
  const [h, , s] = good.split(".");
  const escalated = b64url(JSON.stringify(upstreamPayload({ [NS]: { caches: { "*": { r: 1, w: 1, cd: 1 } } } })));
  assert.equal(await verify(`${h}.${escalated}.${s}`), null);
  assert.equal(await verify(`${good.slice(0, -2)}AA`), null);
});

test("typ must be JWT or end with +JWT (any case) when present", async () => {
  for (const typ of ["JWT", "jwt", "at+jwt", "application/at+JWT"]) {
    assert.ok(await verify(mintIndependently(upstreamPayload(), { alg: "HS256", typ })), typ);
  }
  for (const typ of ["JOSE", "JWS", "", 5]) {
    assert.equal(await verify(mintIndependently(upstreamPayload(), { alg: "HS256", typ })), null, String(typ));
  }
  assert.ok(await verify(mintIndependently(upstreamPayload(), { alg: "HS256" })));
});

test("malformed tokens are anonymous, never an exception", async () => {
  const good = mintIndependently(upstreamPayload());
  const cases = [
    "",
    "abc",
    good.split(".").slice(0, 2).join("."),
    `${good}.x`,
    good.replace(".", "=."),
    mintIndependently("not json"),
    mintIndependently(upstreamPayload({ [NS]: { caches: { c: { r: true } } } })),
    mintIndependently({ sub: "no attic claim" }),
    mintIndependently(upstreamPayload(), { alg: "HS256", typ: "JWT", pad: "x".repeat(8200) }),
  ];
  for (const token of cases) assert.equal(await verify(token), null, token.slice(0, 40));
  assert.equal(await verify(undefined as unknown as string), null);
});

test("signToken: header and claim order of upstream, iss/aud from the options", async () => {
  const claims: Claims = { exp: NOW_S + 60, nbf: NOW_S, sub: "bob", caches: new Map() };
  grant(claims, "dev-*", "pull");
  grant(claims, "prod", "pull");
  grant(claims, "dev-*", "push");
  const token = await signToken(claims, hs256, { issuer: "me", audiences: ["x", "y"] });
  const [h, p] = token.split(".") as [string, string];
  assert.equal(Buffer.from(h, "base64url").toString(), '{"alg":"HS256","typ":"JWT"}');
  assert.equal(
    Buffer.from(p, "base64url").toString(),
    `{"exp":${NOW_S + 60},"nbf":${NOW_S},"iss":"me","sub":"bob","aud":["x","y"],"https://jwt.attic.rs/v1":{"caches":{"dev-*":{"r":1,"w":1},"prod":{"r":1}}}}`,
  );
  // an independent HMAC agrees with our signature
  const [hh, pp, ss] = token.split(".");
  assert.equal(ss, createHmac("sha256", secret).update(`${hh}.${pp}`).digest("base64url"));
  const back = await verify(token, hs256, { boundIssuer: "me", boundAudiences: ["y"] });
  assert.equal(back?.sub, "bob");
  assert.deepEqual([...back!.caches.keys()], ["dev-*", "prod"]);
});

test("RS256: PKCS#1 and PKCS#8 secrets sign; SPKI and PKCS#1 public keys verify only", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
  const pkcs1 = decodeRs256SecretBase64(b64(privateKey.export({ type: "pkcs1", format: "pem" })));
  const pkcs8 = decodeSigningConfig("token-rs256-secret-base64", b64(privateKey.export({ type: "pkcs8", format: "pem" })));
  const spki = decodeRs256PubkeyBase64(b64(publicKey.export({ type: "spki", format: "pem" })));
  const pub1 = decodeSigningConfig("token-rs256-pubkey-base64", b64(publicKey.export({ type: "pkcs1", format: "pem" })));

  const claims: Claims = { exp: NOW_S + 60, nbf: NOW_S, sub: "rsa", caches: new Map() };
  grant(claims, "c", "pull");
  const token = await signToken(claims, pkcs1);
  assert.equal(Buffer.from(token.split(".")[0]!, "base64url").toString(), '{"alg":"RS256","typ":"JWT"}');
  for (const signing of [pkcs1, pkcs8, spki, pub1]) assert.equal((await verify(token, signing))?.sub, "rsa");

  await assert.rejects(signToken(claims, spki), { message: "Pubkey-only JWT authentication cannot create signed JWTs" });
  // an RS256 token means nothing to an HS256 server and vice versa
  assert.equal(await verify(token, hs256), null);
  assert.equal(await verify(mintIndependently(upstreamPayload()), spki), null);
  // the classic confusion: HS256 "signed" with the public key's PEM against an RS256 server
  const pem = Buffer.from(publicKey.export({ type: "spki", format: "pem" }));
  assert.equal(await verify(mintIndependently(upstreamPayload(), undefined, pem), spki), null);
  // a foreign RSA key
  const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const otherPub = decodeRs256PubkeyBase64(b64(other.publicKey.export({ type: "spki", format: "pem" })));
  assert.equal(await verify(token, otherPub), null);
});

test("key decoding errors are clear and typed", () => {
  const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
  assert.throws(() => decodeHs256SecretBase64("not base64!"), SigningKeyError);
  assert.throws(() => decodeHs256SecretBase64("abc"), /not valid base64/);
  assert.throws(() => decodeHs256SecretBase64(""), /empty/);
  // arbitrary (non-UTF-8) bytes are a fine HS256 secret; wrapped base64 lines are accepted
  const raw = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
  assert.deepEqual(Buffer.from((decodeHs256SecretBase64(b64(raw)) as { secret: Uint8Array }).secret), raw);
  const long = randomBytes(64).toString("base64");
  assert.equal(decodeHs256SecretBase64(`${long.slice(0, 76)}\n${long.slice(76)}\n`).alg, "HS256");

  const small = generateKeyPairSync("rsa", { modulusLength: 1024 });
  assert.throws(() => decodeRs256SecretBase64(b64(small.privateKey.export({ type: "pkcs1", format: "pem" }))), /1024 bits/);
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  assert.throws(() => decodeRs256SecretBase64(b64(ec.privateKey.export({ type: "pkcs8", format: "pem" }))), /expected an RSA key/);
  assert.throws(() => decodeRs256SecretBase64(b64(ec.publicKey.export({ type: "spki", format: "pem" }))), /private key/);
  assert.throws(() => decodeRs256PubkeyBase64(b64(ec.privateKey.export({ type: "pkcs8", format: "pem" }))), /public key/);
  assert.throws(() => decodeRs256PubkeyBase64(b64("hello")), /PEM/);
  assert.throws(() => decodeRs256SecretBase64(b64("-----BEGIN RSA PRIVATE KEY-----\ngarbage\n-----END RSA PRIVATE KEY-----\n")), /cannot read/);
});
