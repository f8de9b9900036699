import { test } from "node:test";
import assert from "node:assert/strict";
import {
  StorePathError,
  isValidStorePathHash,
  isValidStorePathName,
  parseStorePath,
  parseStorePathBaseName,
  storeDirOf,
  storePathFromBaseName,
  storePathOfPath,
} from "../../../src/nix/store-path.ts";

const HASH = "xcp9cav49dmsjbwdjlmkjxj10gkpx553";

test("parses a store path into its parts", () => {
  const p = parseStorePath(`/nix/store/${HASH}-hello-2.10`);
  assert.deepEqual({ ...p }, {
    storeDir: "/nix/store",
    hash: HASH,
    name: "hello-2.10",
    baseName: `${HASH}-hello-2.10`,
    path: `/nix/store/${HASH}-hello-2.10`,
  });
  assert.equal(parseStorePath(`/tmp/s/${HASH}-x`, "/tmp/s").storeDir, "/tmp/s");
  assert.equal(storePathFromBaseName("/nix/store", `${HASH}-a`).path, `/nix/store/${HASH}-a`);
  assert.equal(storeDirOf(`/var/cache/st/${HASH}-a`), "/var/cache/st");
});

test("valid names: every allowed character, 211 characters, dots after the first", () => {
  for (const name of ["a", "A-Z_a.z+0=9?", "x".repeat(211), "hello-2.10.drv", "-leading-dash", "a..b", "?"]) {
    assert.ok(isValidStorePathName(name), name);
    assert.equal(parseStorePathBaseName(`${HASH}-${name}`).name, name);
  }
});

const INVALID_BASE_NAMES: [string, string][] = [
  ["empty name", `${HASH}-`],
  ["name too long", `${HASH}-${"x".repeat(212)}`],
  ["leading dot", `${HASH}-.hidden`],
  ["space", `${HASH}-a b`],
  ["slash", `${HASH}-a/b`],
  ["colon", `${HASH}-a:b`],
  ["non-ASCII", `${HASH}-ä`],
  ["NUL", `${HASH}-a\0`],
  ["no dash", `${HASH}_hello`],
  ["short hash", `${HASH.slice(1)}-hello`],
  ["hash with 'e'", `e${HASH.slice(1)}-hello`],
  ["hash with 'o'", `o${HASH.slice(1)}-hello`],
  ["hash with 'u'", `u${HASH.slice(1)}-hello`],
  ["hash with 't'", `t${HASH.slice(1)}-hello`],
  ["uppercase hash", `${HASH.toUpperCase()}-hello`],
  ["empty", ""],
];

test("invalid base names throw StorePathError", () => {
  for (const [why, base] of INVALID_BASE_NAMES) {
    assert.throws(() => parseStorePathBaseName(base), StorePathError, why);
    assert.throws(() => parseStorePath(`/nix/store/${base}`), StorePathError, why);
  }
});

test("store path hash check", () => {
  assert.ok(isValidStorePathHash(HASH));
  for (const bad of ["", HASH.slice(1), `${HASH}0`, `e${HASH.slice(1)}`, HASH.toUpperCase(), `${HASH.slice(1)}/`]) {
    assert.ok(!isValidStorePathHash(bad), bad);
  }
});

test("paths outside the store, inside a store path, or with a bad store dir are rejected", () => {
  assert.throws(() => parseStorePath(`/nix/stor/${HASH}-a`), /not in the Nix store/);
  assert.throws(() => parseStorePath(`/nix/store/${HASH}-a/bin`), /inside a store path/);
  assert.throws(() => parseStorePath(`nix/store/${HASH}-a`, "nix/store"), /absolute/);
  assert.throws(() => parseStorePath(`/nix/store//${HASH}-a`, "/nix/store/"), /trailing slash/);
  assert.throws(() => parseStorePath(`/nix/../store/${HASH}-a`, "/nix/../store"), /canonical/);
  assert.throws(() => storeDirOf(`${HASH}-a`), StorePathError);
});

test("storePathOfPath finds the store path holding a file", () => {
  assert.equal(storePathOfPath(`/nix/store/${HASH}-hello/bin/hello`).baseName, `${HASH}-hello`);
  assert.equal(storePathOfPath(`/nix/store/${HASH}-hello`).name, "hello");
  assert.equal(storePathOfPath(`/s/${HASH}-hello/a/b/`, "/s").path, `/s/${HASH}-hello`);
  assert.throws(() => storePathOfPath("/nix/store"), StorePathError);
  assert.throws(() => storePathOfPath(`/nix/store/.links/x`), StorePathError);
  assert.throws(() => storePathOfPath(`/usr/bin/${HASH}-hello`), StorePathError);
});
