import assert from "node:assert/strict";
import { test } from "node:test";
import { buildPatch } from "../../../src/client/commands/cache-configure.ts";
import { storePathOfLockFile } from "../../../src/client/commands/watch-store.ts";
import { describeCause } from "../../../src/client/errors.ts";
import { humanBytes, parseSize } from "../../../src/client/human.ts";

test("humanBytes matches indicatif's HumanBytes", () => {
  assert.equal(humanBytes(0), "0 B");
  assert.equal(humanBytes(1023), "1023 B");
  assert.equal(humanBytes(1024), "1.00 KiB");
  assert.equal(humanBytes(1536), "1.50 KiB");
  assert.equal(humanBytes(52.89 * 1024 * 1024), "52.89 MiB");
  assert.equal(humanBytes(5 * 1024 ** 4), "5.00 TiB");
});

test("sizes parse with IEC, SI and single-letter units", () => {
  assert.equal(parseSize("1024"), 1024);
  assert.equal(parseSize("10 GiB"), 10 * 1024 ** 3);
  assert.equal(parseSize("10GiB"), 10 * 1024 ** 3);
  assert.equal(parseSize("1.5G"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("500 MB"), 500_000_000);
  assert.equal(parseSize("2k"), 2048);
  for (const bad of ["", "ten", "5 parsecs", "-1", "1e3"]) assert.throws(() => parseSize(bad), /Invalid size/, bad);
});

test("configure patches carry only the settings given (decision 6)", () => {
  assert.deepEqual(buildPatch({ cache: "c", public: true }), { is_public: true });
  assert.deepEqual(buildPatch({ cache: "c", storeDir: "/s" }), { store_dir: "/s" });
  assert.deepEqual(buildPatch({ cache: "c", retentionPeriod: "2y" }), { retention_period: { Period: 2 * 31_557_600 } });
  assert.deepEqual(buildPatch({ cache: "c", retentionPeriod: "0" }), { retention_period: { Period: 0 } });
  assert.throws(() => buildPatch({ cache: "c", retentionPeriod: "200 years" }), /at most 4294967295 seconds/);
  assert.throws(() => buildPatch({ cache: "c", maxSize: "1G", resetMaxSize: true }), /cannot be set at the same time/);
  assert.throws(() => buildPatch({ cache: "c" }), /Nothing to configure/);
});

test("watch-store pushes the paths of removed lock files, except derivations and sources", () => {
  const h = "6d1dp2k0y0xzrnn9zvcmjwnqpg6fkdpg";
  assert.equal(storePathOfLockFile(`${h}-w8850.lock`, "/nix/store"), `/nix/store/${h}-w8850`);
  assert.equal(storePathOfLockFile(`${h}-w8850.drv.lock`, "/nix/store"), null);
  assert.equal(storePathOfLockFile(`${h}-source.lock`, "/nix/store"), null);
  assert.equal(storePathOfLockFile(`${h}-w8850`, "/nix/store"), null);
  assert.equal(storePathOfLockFile("gc.lock", "/nix/store"), null);
  assert.equal(storePathOfLockFile(".links.lock", "/nix/store"), null);
});

test("network error causes are described without noise", () => {
  const err = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" }) });
  assert.equal(describeCause(err), "connect ECONNREFUSED 127.0.0.1:9");
  assert.equal(describeCause(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })), "socket hang up (ECONNRESET)");
  assert.equal(describeCause("weird"), "weird");
});
