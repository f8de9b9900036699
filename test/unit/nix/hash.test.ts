import { test } from "node:test";
import assert from "node:assert/strict";
import { HashError, NixHash } from "../../../src/nix/hash.ts";
import type { HashErrorKind } from "../../../src/nix/hash.ts";

const HEX = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const NIX32 = "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic";
const B64 = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

function throwsKind(f: () => unknown, kind: HashErrorKind): void {
  assert.throws(f, (e: unknown) => e instanceof HashError && e.kind === kind);
}

test("parses every spelling of a sha256 hash to the same value", () => {
  const forms = [`sha256:${HEX}`, `sha256:${HEX.toUpperCase()}`, `sha256:${NIX32}`, `sha256:${B64}`, `sha256-${B64}`];
  for (const f of forms) {
    const h = NixHash.parse(f);
    assert.equal(h.algo, "sha256");
    assert.equal(h.toBase16(), HEX, f);
  }
  for (const bare of [HEX, NIX32, B64]) assert.equal(NixHash.parse(bare, "sha256").toBase16(), HEX);
});

test("prints every form", () => {
  const h = NixHash.parse(`sha256:${HEX}`);
  assert.equal(h.toNix32(), NIX32);
  assert.equal(h.toBase64(), B64);
  assert.equal(h.toSri(), `sha256-${B64}`);
  assert.equal(h.toTypedBase16(), `sha256:${HEX}`);
  assert.equal(h.toTypedNix32(), `sha256:${NIX32}`);
  assert.equal(String(h), `sha256:${HEX}`);
});

test("other algorithms parse (values from nix-hash and nix hash to-sri)", () => {
  const md5 = NixHash.parse("md5:4jqlbi14cxf6wpcajbphm40hax");
  assert.equal(md5.toBase16(), "5d41402abc4b2a76b9719d911017c592");
  assert.equal(md5.toSri(), "md5-XUFAKrxLKna5cZ2REBfFkg==");
  const sha1 = NixHash.parse("sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00=");
  assert.equal(sha1.toNix32(), "9m1skbnr5i43n3yypvda5s65vhfwdx5a");
  const sha512 = NixHash.parse(
    "sha512:11w1pmwfdpz9pisbhp5qiv38q6dmidq2ipcqykw3p0sb6yrqcij79rwcwcjbxyzwbdal349qbxrncbk7pmd6snljrfpiwv2pljd4wcv",
  );
  assert.equal(sha512.toSri(), "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==");
});

test("upstream Attic vectors: base16 and nix32 of one hash are equal", () => {
  const a = NixHash.parse("sha256:baeabdb75c223d171800c17b05c5e7e8e9980723a90eb6ffcc632a305afc5a42");
  const b = NixHash.parse("sha256:0hjszid30ak3rkzvc3m94c3risg8wz2hayy100c1fg92bjvvvsms");
  assert.ok(a.equals(b));
  assert.equal(
    NixHash.parse("sha256:df3404eaf1481506db9ca155e0a871d5b4d22e62a96961e8bf4ad1a8ca525330").toTypedNix32(),
    "sha256:0c2kab5ailaapzl62sd9c8pd5d6mf6lf0md1kkdhc5a8y7m08d6z",
  );
});

test("upstream Attic error cases map to distinct kinds", () => {
  throwsKind(() => NixHash.parse("sha256"), "no-algorithm");
  throwsKind(() => NixHash.parse("sha256:"), "bad-length");
  throwsKind(() => NixHash.parse(`sha256:${"e".repeat(52)}`), "bad-characters");
  throwsKind(() => NixHash.parse(`sha256:${"g".repeat(64)}`), "bad-characters");
  throwsKind(() => NixHash.parse("md5:invalid"), "bad-length");
});

test("bad algorithm, length and characters", () => {
  throwsKind(() => NixHash.parse(`sha3:${HEX}`), "bad-algorithm");
  throwsKind(() => NixHash.parse(`blake3-${B64}`), "bad-algorithm");
  throwsKind(() => NixHash.parse(`toString:${HEX}`), "bad-algorithm");
  throwsKind(() => NixHash.parse(`sha256:${HEX}00`), "bad-length");
  throwsKind(() => NixHash.parse(`sha256-${B64.slice(0, -4)}`), "bad-length");
  throwsKind(() => NixHash.parse(`sha256-${B64.replace("+", "!")}`), "bad-characters");
  throwsKind(() => NixHash.parse(`sha256:${B64.replace("L", "*")}`), "bad-characters");
  throwsKind(() => NixHash.parse(`sha256:${B64.replace("=", "A")}`), "bad-length"); // 33 bytes
  throwsKind(() => NixHash.parse(HEX), "no-algorithm");
  throwsKind(() => NixHash.fromDigest("sha256", Buffer.alloc(31)), "bad-length");
});

test("of() and fromDigest() agree with parse()", () => {
  const h = NixHash.of("sha256", "hello");
  assert.equal(h.toBase16(), HEX);
  assert.ok(h.equals(NixHash.fromDigest("sha256", Buffer.from(HEX, "hex"))));
  assert.ok(!h.equals(NixHash.of("sha256", "hello!")));
  assert.ok(!NixHash.of("sha1", "x").equals(NixHash.of("md5", "x")));
});
