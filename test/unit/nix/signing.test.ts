import { test } from "node:test";
import assert from "node:assert/strict";
import { NixHash } from "../../../src/nix/hash.ts";
import { PublicKey, SigningError, SigningKeypair, fingerprint, fingerprintFromBaseNames } from "../../../src/nix/signing.ts";
import type { SigningErrorKind } from "../../../src/nix/signing.ts";

const CACHE_NIXOS_ORG = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
// hello-2.10 from cache.nixos.org, as in upstream Attic's test_fingerprint.
const HELLO = {
  storePath: "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
  narHash: NixHash.parse("sha256:91e129ac1959d062ad093d2b1f8b65afae0f712056fe3eac78ec530ff6a1bb9a"),
  narSize: 206104,
  references: ["563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56", "xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10"],
  sig: "cache.nixos.org-1:lo9EfNIL4eGRuNh7DTbAAffWPpI2SlYC/8uP7JnhgmfRIUNGhSbFe8qEaKN0mFS02TuhPpXFPNtRkFcCp0hGAQ==",
  fingerprint:
    "1;/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10;sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci;206104;" +
    "/nix/store/563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56,/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
};

function throwsKind(f: () => unknown, kind: SigningErrorKind): void {
  assert.throws(f, (e: unknown) => e instanceof SigningError && e.kind === kind);
}

test("fingerprint of hello-2.10 and cache.nixos.org's signature over it", () => {
  const fp = fingerprintFromBaseNames("/nix/store", HELLO.storePath, HELLO.narHash, HELLO.narSize, HELLO.references);
  assert.equal(fp, HELLO.fingerprint);
  const key = PublicKey.parse(CACHE_NIXOS_ORG);
  assert.equal(key.toString(), CACHE_NIXOS_ORG);
  assert.ok(key.verify(fp, HELLO.sig));
  assert.ok(!key.verify(fp.replace("206104", "206105"), HELLO.sig));
  assert.ok(!key.verify(fp, HELLO.sig.replace("cache.nixos.org-1", "other")));
});

test("fingerprint sorts and deduplicates references as Nix does", () => {
  const refs = HELLO.references.map((r) => `/nix/store/${r}`);
  assert.equal(fingerprint(HELLO.storePath, HELLO.narHash, HELLO.narSize, [refs[1]!, refs[0]!, refs[1]!]), HELLO.fingerprint);
  assert.ok(fingerprint(HELLO.storePath, HELLO.narHash, 1, []).endsWith(";1;"));
  assert.throws(() => fingerprint(HELLO.storePath, NixHash.of("sha1", ""), 1, []));
});

test("generate, export, re-import, sign and verify", () => {
  const kp = SigningKeypair.generate("attic-test");
  const again = SigningKeypair.parse(kp.toString());
  assert.equal(again.toString(), kp.toString());
  assert.match(kp.toString(), /^attic-test:[A-Za-z0-9+/]{86}==$/);
  const pub = PublicKey.parse(kp.publicKey().toString());
  assert.equal(pub.name, "attic-test");
  assert.match(pub.toString(), /^attic-test:[A-Za-z0-9+/]{43}=$/);
  const sig = kp.sign("hello world");
  assert.match(sig, /^attic-test:[A-Za-z0-9+/]{86}==$/);
  assert.ok(pub.verify("hello world", sig));
  assert.ok(again.verify(Buffer.from("hello world"), sig));
  assert.ok(!pub.verify("hello world!", sig));
  // Upstream's test: a signature by another key, under our key name, does not verify.
  assert.ok(!kp.verify("hello world", "attic-test:lo9EfNIL4eGRuNh7DTbAAffWPpI2SlYC/8uP7JnhgmfRIUNGhSbFe8qEaKN0mFS02TuhPpXFPNtRkFcCp0hGAQ=="));
  assert.ok(!SigningKeypair.generate("other").publicKey().verify("hello world", sig));
  assert.ok(!pub.verify("hello world", "attic-test:AAAA"));
  assert.ok(!pub.verify("hello world", "no colon"));
});

test("upstream Attic's serialized keypair round-trips and signs deterministically", () => {
  const s = "attic-test:x326WFy/JUl+MQnN1u9NPdWQPBbcVn2mwoIqSLS3DmQqZ8qT8rBSxxEnyhtl3jDouBqodlyfq6F+HsVhbTYPMA==";
  const kp = SigningKeypair.parse(s);
  assert.equal(kp.toString(), s);
  assert.equal(kp.publicKey().toString(), "attic-test:KmfKk/KwUscRJ8obZd4w6LgaqHZcn6uhfh7FYW02DzA=");
  assert.equal(kp.sign("x"), kp.sign("x")); // Ed25519 is deterministic
});

test("malformed keys and names give distinct errors", () => {
  throwsKind(() => PublicKey.parse("6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="), "bad-name");
  throwsKind(() => PublicKey.parse(":6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="), "bad-name");
  throwsKind(() => PublicKey.parse("k:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShj!="), "bad-base64");
  throwsKind(() => PublicKey.parse("k:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY"), "bad-base64");
  throwsKind(() => PublicKey.parse("k:AAAA"), "bad-length");
  throwsKind(() => SigningKeypair.parse(CACHE_NIXOS_ORG), "bad-length");
  throwsKind(() => SigningKeypair.generate(""), "bad-name");
  throwsKind(() => SigningKeypair.generate("a:b"), "bad-name");
  const kp = SigningKeypair.generate("k");
  const bytes = Buffer.from(kp.toString().slice(2), "base64");
  bytes[40] = bytes[40]! ^ 1;
  throwsKind(() => SigningKeypair.parse(`k:${bytes.toString("base64")}`), "key-mismatch");
});
