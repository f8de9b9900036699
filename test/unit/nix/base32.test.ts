import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Nix32Error, nix32Decode, nix32Encode, nix32EncodedLength } from "../../../src/nix/base32.ts";

// hex digest -> nix32, as printed by `nix-hash --to-base32` (Nix 2.8) and upstream Attic's tests.
const VECTORS: [string, string][] = [
  ["5d41402abc4b2a76b9719d911017c592", "4jqlbi14cxf6wpcajbphm40hax"], // md5("hello")
  ["aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d", "9m1skbnr5i43n3yypvda5s65vhfwdx5a"], // sha1("hello")
  ["2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"],
  ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"],
  ["df3404eaf1481506db9ca155e0a871d5b4d22e62a96961e8bf4ad1a8ca525330", "0c2kab5ailaapzl62sd9c8pd5d6mf6lf0md1kkdhc5a8y7m08d6z"],
  ["baeabdb75c223d171800c17b05c5e7e8e9980723a90eb6ffcc632a305afc5a42", "0hjszid30ak3rkzvc3m94c3risg8wz2hayy100c1fg92bjvvvsms"],
  ["91e129ac1959d062ad093d2b1f8b65afae0f712056fe3eac78ec530ff6a1bb9a", "16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci"],
  [
    "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043",
    "11w1pmwfdpz9pisbhp5qiv38q6dmidq2ipcqykw3p0sb6yrqcij79rwcwcjbxyzwbdal349qbxrncbk7pmd6snljrfpiwv2pljd4wcv",
  ],
];

test("nix32 encodes and decodes known digests", () => {
  for (const [hex, nix32] of VECTORS) {
    assert.equal(nix32Encode(Buffer.from(hex, "hex")), nix32);
    assert.equal(nix32Decode(nix32).toString("hex"), hex);
  }
});

test("nix32 lengths match Nix's (hash sizes 16/20/32/64 -> 26/32/52/103)", () => {
  assert.deepEqual([16, 20, 32, 64].map(nix32EncodedLength), [26, 32, 52, 103]);
  assert.equal(nix32Encode(new Uint8Array(0)), "");
  assert.equal(nix32Decode("").length, 0);
});

test("nix32Decode rejects characters outside Nix's alphabet", () => {
  for (const bad of ["e", "o", "u", "t", "A", "-", "é"]) {
    const s = `${bad}${"0".repeat(51)}`;
    assert.throws(() => nix32Decode(s), (e: unknown) => e instanceof Nix32Error && e.kind === "bad-characters");
  }
});

test("nix32Decode rejects impossible lengths", () => {
  for (const len of [1, 3, 51, 54]) {
    assert.throws(() => nix32Decode("0".repeat(len)), (e: unknown) => e instanceof Nix32Error && e.kind === "bad-length");
  }
});

test("nix32Decode rejects a leading character whose bits overflow the byte length", () => {
  // 52 characters carry 260 bits; the top 4 must be zero for a 32-byte value ('1' is fine, 'z' is not).
  assert.equal(nix32Decode(`1${"0".repeat(51)}`).length, 32);
  assert.throws(() => nix32Decode(`z${"0".repeat(51)}`), (e: unknown) => e instanceof Nix32Error && e.kind === "bad-characters");
});

test("nix32 round-trips random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      const s = nix32Encode(bytes);
      assert.equal(s.length, nix32EncodedLength(bytes.length));
      assert.deepEqual(new Uint8Array(nix32Decode(s)), bytes);
    }),
  );
});
