import { test } from "node:test";
import assert from "node:assert/strict";
import { NarInfoError, narInfoHashes, narInfoStoreDir, parseNarInfo, renderNarInfo } from "../../../src/nix/narinfo.ts";
import type { NarInfo } from "../../../src/nix/narinfo.ts";

// From upstream Attic's server/src/narinfo/tests.rs (a cache.nixos.org narinfo).
const HELLO = `StorePath: /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10
URL: nar/0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9.nar.xz
Compression: xz
FileHash: sha256:0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9
FileSize: 41104
NarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci
NarSize: 206104
References: 563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56 xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10
Deriver: vvb4wxmnjixmrkhmj2xb75z62hrr41i7-hello-2.10.drv
Sig: cache.nixos.org-1:lo9EfNIL4eGRuNh7DTbAAffWPpI2SlYC/8uP7JnhgmfRIUNGhSbFe8qEaKN0mFS02TuhPpXFPNtRkFcCp0hGAQ==
`;

test("parses every field of a cache.nixos.org narinfo", () => {
  const info = parseNarInfo(HELLO);
  assert.deepEqual(info, {
    storePath: "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
    url: "nar/0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9.nar.xz",
    compression: "xz",
    fileHash: "sha256:0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9",
    fileSize: 41104,
    narHash: "sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci",
    narSize: 206104,
    references: ["563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56", "xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10"],
    deriver: "vvb4wxmnjixmrkhmj2xb75z62hrr41i7-hello-2.10.drv",
    sigs: ["cache.nixos.org-1:lo9EfNIL4eGRuNh7DTbAAffWPpI2SlYC/8uP7JnhgmfRIUNGhSbFe8qEaKN0mFS02TuhPpXFPNtRkFcCp0hGAQ=="],
  });
  assert.equal(narInfoStoreDir(info), "/nix/store");
  const { narHash, fileHash } = narInfoHashes(info);
  assert.equal(narHash.toBase16(), "91e129ac1959d062ad093d2b1f8b65afae0f712056fe3eac78ec530ff6a1bb9a");
  assert.equal(fileHash?.toNix32(), "0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9");
});

test("re-renders byte for byte", () => {
  assert.equal(renderNarInfo(parseNarInfo(HELLO)), HELLO);
  assert.equal(renderNarInfo(parseNarInfo(HELLO), { order: "nix" }), HELLO);
});

test("tolerates surrounding blank lines, CRLF and unknown keys (as upstream's test strings have)", () => {
  const info = parseNarInfo(`\n${HELLO.replaceAll("\n", "\r\n")}Provenance: {}\nFutureKey: x\n    `);
  assert.equal(renderNarInfo(info), HELLO);
});

test("a value never keeps a trailing CR, so what parses renders back the same (found by the fuzzer)", () => {
  // `Compression: xz\r\r` once parsed as "xz\r", which rendered and parsed again as "xz"
  const text = HELLO.replace("Compression: xz\n", "Compression: xz\r\r\n").replace(/^(Sig: .*)$/m, "$1\r\r\r");
  const info = parseNarInfo(text);
  assert.equal(info.compression, "xz");
  assert.deepEqual(info.sigs, parseNarInfo(HELLO).sigs);
  assert.deepEqual(parseNarInfo(renderNarInfo(info)), info);
});

test("unknown-deriver parses as no deriver", () => {
  const info = parseNarInfo(HELLO.replace(/^Deriver: .*$/m, "Deriver: unknown-deriver"));
  assert.equal(info.deriver, undefined);
  assert.ok(!("deriver" in info));
});

const MINIMAL: NarInfo = {
  storePath: "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
  url: "nar/xcp9cav49dmsjbwdjlmkjxj10gkpx553.nar",
  compression: "zstd",
  narHash: "sha256:91e129ac1959d062ad093d2b1f8b65afae0f712056fe3eac78ec530ff6a1bb9a",
  narSize: 206104,
  references: [],
  sigs: [],
};

test("renders an empty References line and skips absent fields (Attic's server output)", () => {
  assert.equal(
    renderNarInfo(MINIMAL),
    "StorePath: /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10\n" +
      "URL: nar/xcp9cav49dmsjbwdjlmkjxj10gkpx553.nar\n" +
      "Compression: zstd\n" +
      "NarHash: sha256:91e129ac1959d062ad093d2b1f8b65afae0f712056fe3eac78ec530ff6a1bb9a\n" +
      "NarSize: 206104\n" +
      "References: \n",
  );
  assert.deepEqual(parseNarInfo(renderNarInfo(MINIMAL)), MINIMAL);
});

test("Attic and Nix orders differ only in System vs Deriver; several Sig lines and CA", () => {
  const info: NarInfo = {
    ...MINIMAL,
    deriver: "vvb4wxmnjixmrkhmj2xb75z62hrr41i7-hello-2.10.drv",
    system: "x86_64-linux",
    sigs: ["a:x", "b:y"],
    ca: "fixed:r:sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci",
  };
  const tail = "Sig: a:x\nSig: b:y\nCA: fixed:r:sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci\n";
  assert.ok(renderNarInfo(info).endsWith(`References: \nSystem: x86_64-linux\nDeriver: ${info.deriver}\n${tail}`));
  assert.ok(renderNarInfo(info, { order: "nix" }).endsWith(`References: \nDeriver: ${info.deriver}\nSystem: x86_64-linux\n${tail}`));
  assert.deepEqual(parseNarInfo(renderNarInfo(info)), info);
});

test("missing or broken required fields are errors", () => {
  const without = (key: string): string => HELLO.replace(new RegExp(`^${key}: .*\\n`, "m"), "");
  for (const [key, re] of [["StorePath", /StorePath missing/], ["NarHash", /NarHash missing/], ["URL", /URL missing/], ["NarSize", /NarSize missing/]] as const) {
    assert.throws(() => parseNarInfo(without(key)), (e: unknown) => e instanceof NarInfoError && re.test(e.message), key);
  }
  const bad: [string, string][] = [
    ["NarSize: 206104", "NarSize: 0"],
    ["NarSize: 206104", "NarSize: -1"],
    ["NarSize: 206104", "NarSize: 12x"],
    ["FileSize: 41104", "FileSize: lots"],
    ["NarHash: sha256:", "NarHash: sha257:"],
    ["NarHash: sha256:16mvl7", "NarHash: sha256:e6mvl7"],
    ["StorePath: /nix/store/xcp9", "StorePath: /nix/store/ecp9"],
    ["StorePath: /nix/store/", "StorePath: nix/store/"],
    ["References: 5635", "References: 635"],
    ["Deriver: vvb4", "Deriver: vvb"],
    ["URL:", "URL"],
  ];
  for (const [from, to] of bad) assert.throws(() => parseNarInfo(HELLO.replace(from, to)), NarInfoError, to);
  assert.throws(() => parseNarInfo(`${HELLO}NarSize: 1\n`), /duplicate NarSize/);
});
