// scripts/test-programs.ts (run first by `npm test`): a missing program is found before any test
// runs; as root its packages are installed with one apt-get, otherwise the run stops with the
// command to run, instead of a test failing on `spawn brotli ENOENT`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ensureTestPrograms, isInstalled, missingPrograms, TEST_PROGRAMS, type TestProgram } from "../../../scripts/test-programs.ts";

const GHOST: TestProgram = { program: "attic-test-no-such-program", pkg: "attic-ghost", why: "a program no machine has" };
const GHOST_TOO: TestProgram = { program: "/nonexistent/attic-ghost-too", pkg: "attic-ghost", why: "the same package, another program" };
const OTHER: TestProgram = { program: "attic-test-other-ghost", pkg: "attic-other", why: "another package" };
const SH: TestProgram = { program: "sh", pkg: "dash", why: "there everywhere" };

test("programs are looked up on PATH or by absolute path", () => {
  assert.equal(isInstalled("sh"), true);
  assert.equal(isInstalled("/bin/sh"), true);
  assert.equal(isInstalled("sh", "/nonexistent"), false, "only PATH is searched");
  assert.equal(isInstalled(GHOST.program), false);
  assert.deepEqual(missingPrograms([SH, GHOST, GHOST_TOO]), [GHOST, GHOST_TOO]);
});

test("not root: nothing runs, the message names each program and one command for all packages", () => {
  const calls: string[][] = [];
  const message = ensureTestPrograms({ programs: [SH, GHOST, GHOST_TOO, OTHER], isRoot: false, run: (cmd, args) => (calls.push([cmd, ...args]), 0) });
  assert.deepEqual(calls, []);
  assert.ok(message !== null);
  assert.match(message, /attic-test-no-such-program \(Debian package attic-ghost\): a program no machine has/);
  assert.match(message, /\/nonexistent\/attic-ghost-too \(Debian package attic-ghost\)/);
  assert.match(message, /\nInstall them with: sudo apt-get install -y attic-ghost attic-other$/);
  assert.doesNotMatch(message, /dash/);
});

test("root: one apt-get update and one apt-get install of the missing packages, then a check", () => {
  const calls: string[][] = [];
  const run = (cmd: string, args: string[]) => (calls.push([cmd, ...args]), 0);
  const message = ensureTestPrograms({ programs: [SH, GHOST, GHOST_TOO, OTHER], isRoot: true, run });
  assert.deepEqual(calls, [
    ["apt-get", "update", "-qq"],
    ["apt-get", "install", "-y", "-qq", "attic-ghost", "attic-other"],
  ]);
  // the fake apt-get installed nothing: the run must not go on as if it had
  assert.match(message ?? "", /^installed, yet still missing:\n/);

  calls.length = 0;
  assert.equal(ensureTestPrograms({ programs: [SH], isRoot: true, run }), null);
  assert.deepEqual(calls, [], "nothing missing: apt-get is not run");

  const failing = ensureTestPrograms({ programs: [GHOST], isRoot: true, run: (cmd, args) => (args[0] === "install" ? 100 : 0) });
  assert.match(failing ?? "", /^apt-get install failed\n/);
});

test("the table covers the programs the tests spawn besides node (brotli among them)", () => {
  const programs = new Set(TEST_PROGRAMS.map((p) => p.program.split("/").at(-1)));
  for (const name of ["nix-store", "zstd", "xz", "brotli", "bzip2", "curl", "openssl", "git", "chromium", "nginx", "postgres"]) {
    assert.ok(programs.has(name), name);
  }
});
