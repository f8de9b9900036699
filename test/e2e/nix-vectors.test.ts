// The Nix formats library against real Nix (2.8, single-user as root): NAR bytes, NAR hashes,
// key formats and signatures, narinfo files. Every comparison is exact, so a one-byte
// difference on either side fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseNixCacheInfo } from "../../src/nix/cache-info.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { validateNar } from "../helpers/validate-nar.ts";
import { narChunks } from "../../src/nix/nar/serialize.ts";
import { narInfoHashes, parseNarInfo, renderNarInfo } from "../../src/nix/narinfo.ts";
import { PublicKey, SigningKeypair, fingerprintFromBaseNames } from "../../src/nix/signing.ts";
import { restoreNar } from "../helpers/nar-tree.ts";
import { nix, nixBuild, NIX_COMMAND, NIX_OPTS, nixOut, runNix, scriptDrv } from "../helpers/nix.ts";

const NEW_CLI = [...NIX_COMMAND, ...NIX_OPTS];

async function ourNar(path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of narChunks(path)) parts.push(p);
  return Buffer.concat(parts);
}

let work: string;
let tree: string;

/** A tree with every entry kind and names whose bytewise order differs from a locale order. */
function makeTree(root: string): void {
  mkdirSync(root);
  for (const name of ["B", "a", "_", "ä", ".hidden", "Z~", "a-b", "ab", "a.b", "10", "9"]) writeFileSync(join(root, name), `name ${name}\n`);
  writeFileSync(Buffer.from(`${root}/\xff-not-utf8`, "latin1"), "bytes in the name\n");
  writeFileSync(join(root, "empty"), "");
  writeFileSync(join(root, "eight"), "12345678");
  writeFileSync(join(root, "nine"), "123456789");
  writeFileSync(join(root, "exec"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "exec"), 0o755);
  writeFileSync(join(root, "owner-x-only"), "x");
  chmodSync(join(root, "owner-x-only"), 0o700);
  writeFileSync(join(root, "group-x-only"), "x"); // Nix looks at the owner's x bit only
  chmodSync(join(root, "group-x-only"), 0o654);
  writeFileSync(join(root, "big"), randomBytes(200_000));
  writeFileSync(join(root, "bigger"), randomBytes(2_500_003));
  mkdirSync(join(root, "emptydir"));
  mkdirSync(join(root, "dir", "sub", "deeper"), { recursive: true });
  writeFileSync(join(root, "dir", "sub", "deeper", "leaf"), "leaf\n");
  writeFileSync(join(root, "dir", "file"), "file\n");
  symlinkSync("a", join(root, "link"));
  symlinkSync("does/not/exist", join(root, "dangling"));
  symlinkSync("/etc/hostname", join(root, "absolute"));
  symlinkSync("dir/sub", join(root, "dirlink"));
  symlinkSync("ä", join(root, "dir", "sub", "up-ä"));
}

before(() => {
  work = mkdtempSync(join(tmpdir(), "nix-vectors-"));
  tree = join(work, "tree");
  makeTree(tree);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

test("our NAR of a tree with every entry kind is byte-identical to nix-store --dump", async () => {
  const theirs = await nixOut("nix-store", ["--dump", tree]);
  const ours = await ourNar(tree);
  assert.equal(ours.length, theirs.length);
  assert.ok(ours.equals(theirs), "NAR bytes differ");
});

test("single-node roots: regular, executable, empty, symlink", async () => {
  for (const p of ["a", "exec", "empty", "link", "dangling", "bigger"].map((n) => join(tree, n))) {
    assert.ok((await ourNar(p)).equals(await nixOut("nix-store", ["--dump", p])), p);
  }
});

test("our hashes equal nix hash path, nix-hash and nix-store --query --hash of the added path", async () => {
  const ours = await validateNar([await ourNar(tree)]);
  assert.equal(await nix("nix", [...NEW_CLI, "hash", "path", "--base32", tree]), ours.narHash.toNix32());
  assert.equal(await nix("nix", [...NEW_CLI, "hash", "path", "--base16", tree]), ours.narHash.toBase16());
  assert.equal(await nix("nix", [...NEW_CLI, "hash", "path", tree]), ours.narHash.toSri());
  assert.equal(await nix("nix-hash", ["--type", "sha256", "--base32", tree]), ours.narHash.toNix32());
  const added = await nix("nix-store", [...NIX_OPTS, "--add", tree]);
  assert.equal(await nix("nix-store", [...NIX_OPTS, "--query", "--hash", added]), ours.narHash.toTypedNix32());
  assert.equal(Number(await nix("nix-store", [...NIX_OPTS, "--query", "--size", added])), ours.narSize);
});

test("the validator accepts nix-store --dump output with the same hash and size", async () => {
  const theirs = await nixOut("nix-store", ["--dump", tree]);
  const fromNix = await validateNar([theirs.subarray(0, 1000), theirs.subarray(1000)]);
  assert.equal(fromNix.narSize, theirs.length);
  assert.equal(fromNix.narHash.toBase16(), NixHash.of("sha256", theirs).toBase16());
});

test("Nix restores our NAR, and we restore Nix's, to trees that dump identically", async () => {
  const ours = await ourNar(tree);
  const byNix = join(work, "restored-by-nix");
  await nixOut("nix-store", ["--restore", byNix], { input: ours });
  assert.ok((await nixOut("nix-store", ["--dump", byNix])).equals(ours));
  const byUs = join(work, "restored-by-us");
  await restoreNar(await nixOut("nix-store", ["--dump", tree]), byUs);
  assert.ok((await nixOut("nix-store", ["--dump", byUs])).equals(ours));
});

// Two input-addressed paths (CA paths skip signature checks in Nix), b referring to a and itself.
const DRV_B = `let a = ${scriptDrv("nixfmt-e2e-a", "echo a > $out")}; in ${scriptDrv("nixfmt-e2e-b", "mkdir $out; echo $a > $out/ref; echo $out > $out/self", { a: "a" })}`;

async function buildB(): Promise<string> {
  return (await nixBuild(DRV_B))[0]!;
}

function narinfoFile(cacheDir: string, storePath: string): string {
  const hash = storePath.split("/").pop()!.slice(0, 32);
  return join(cacheDir, `${hash}.narinfo`);
}

test("keys from nix key generate-secret import, export and sign exactly as Nix signs", async () => {
  const secret = await nix("nix", [...NEW_CLI, "key", "generate-secret", "--key-name", "e2e-key"]);
  const keypair = SigningKeypair.parse(secret);
  assert.equal(keypair.toString(), secret);
  const pub = await nix("nix", [...NEW_CLI, "key", "convert-secret-to-public"], { input: Buffer.from(secret) });
  assert.equal(keypair.publicKey().toString(), pub);

  const b = await buildB();
  const cache = join(work, "sign-cache");
  await nixOut("nix", [...NEW_CLI, "copy", "--to", `file://${cache}`, b]);
  const info = parseNarInfo(readFileSync(narinfoFile(cache, b), "utf8"));
  assert.equal(info.sigs.length, 0);
  assert.equal(info.references.length, 2);
  const fp = fingerprintFromBaseNames("/nix/store", info.storePath, narInfoHashes(info).narHash, info.narSize, info.references);
  const ourSig = keypair.sign(fp);

  // Nix's signature over the same path is the same string (Ed25519 is deterministic), and verifies with our key.
  const keyFile = join(work, "secret.key");
  writeFileSync(keyFile, secret);
  const nixSigned = join(work, "nix-signed-cache");
  cpSync(cache, nixSigned, { recursive: true });
  await nixOut("nix", [...NEW_CLI, "store", "sign", "--store", `file://${nixSigned}`, "--key-file", keyFile, b]);
  const nixSigs = parseNarInfo(readFileSync(narinfoFile(nixSigned, b), "utf8")).sigs;
  assert.deepEqual(nixSigs, [ourSig]);
  assert.ok(PublicKey.parse(pub).verify(fp, nixSigs[0]!));

  // Nix accepts our signature, and rejects a wrong one, when signatures are required.
  const verifyWith = async (dir: string, sig: string): Promise<number> => {
    cpSync(cache, dir, { recursive: true });
    writeFileSync(narinfoFile(dir, b), renderNarInfo({ ...info, sigs: [sig] }, { order: "nix" }));
    const r = await runNix("nix", [...NEW_CLI, "store", "verify", "--store", `file://${dir}`, "--sigs-needed", "1",
      "--option", "trusted-public-keys", pub, b]);
    return r.code;
  };
  assert.equal(await verifyWith(join(work, "good-sig"), ourSig), 0);
  const wrongFp = fingerprintFromBaseNames("/nix/store", info.storePath, narInfoHashes(info).narHash, info.narSize + 1, info.references);
  assert.notEqual(await verifyWith(join(work, "wrong-sig"), keypair.sign(wrongFp)), 0);
  assert.notEqual(await verifyWith(join(work, "other-key"), SigningKeypair.generate("e2e-key").sign(fp)), 0);
});

test("narinfo and nix-cache-info files written by nix copy parse and re-render identically", async () => {
  const b = await buildB();
  const added = await nix("nix-store", [...NIX_OPTS, "--add", join(tree, "dir")]); // content-addressed: has CA
  const cache = join(work, "narinfo-cache");
  for (const compression of ["xz", "none"]) {
    const dir = `${cache}-${compression}`;
    await nixOut("nix", [...NEW_CLI, "copy", "--to", `file://${dir}?compression=${compression}`, b, added]);
    const files = readdirSync(dir).filter((f) => f.endsWith(".narinfo"));
    assert.equal(files.length, 3); // a, b, added
    let sawCa = false;
    let sawDeriver = false;
    for (const f of files) {
      const original = readFileSync(join(dir, f), "utf8");
      const info = parseNarInfo(original);
      sawCa ||= info.ca !== undefined;
      sawDeriver ||= info.deriver !== undefined;
      assert.equal(info.compression, compression);
      assert.equal(renderNarInfo(info, { order: "nix" }), original, f);
      // The NAR the narinfo points to has the announced hash and size.
      if (compression === "none") {
        const nar = await validateNar([readFileSync(join(dir, info.url))]);
        assert.equal(nar.narSize, info.narSize);
        assert.ok(nar.narHash.equals(narInfoHashes(info).narHash));
      }
    }
    assert.ok(sawCa && sawDeriver);
    assert.deepEqual(parseNixCacheInfo(readFileSync(join(dir, "nix-cache-info"), "utf8")), { storeDir: "/nix/store" });
  }
});
