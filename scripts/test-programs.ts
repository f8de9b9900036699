// The programs the tests run besides Node, each with its Debian package. `npm test`
// (scripts/test.ts) installs the missing ones with one apt-get before any test starts when it runs
// as root, and otherwise stops at once with the command that installs them: a missing program
// never surfaces as `spawn brotli ENOENT` in the middle of a run. A test that starts a new program
// names it here.
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";

export interface TestProgram {
  /** looked up on PATH, or an absolute path */
  program: string;
  /** the Debian package that provides it */
  pkg: string;
  /** which tests need it */
  why: string;
}

export const TEST_PROGRAMS: readonly TestProgram[] = [
  { program: "nix-store", pkg: "nix-bin", why: "real Nix (e2e tests, the client's store access)" },
  { program: "zstd", pkg: "zstd", why: "reference decoder of served NARs" },
  { program: "xz", pkg: "xz-utils", why: "reference decoder of served NARs" },
  { program: "brotli", pkg: "brotli", why: "reference decoder of served NARs" },
  { program: "bzip2", pkg: "bzip2", why: "atticd reads the .bz2 NARs `nix copy` uploads" },
  { program: "curl", pkg: "curl", why: "the README walkthrough's commands, ranged downloads" },
  { program: "openssl", pkg: "openssl", why: "incompressible test data" },
  { program: "git", pkg: "git", why: "the first-hour test clones the checkout" },
  { program: "chromium", pkg: "chromium", why: "the dashboard's browser tests (puppeteer-core downloads no browser)" },
  { program: "/usr/sbin/nginx", pkg: "nginx-light", why: "a reverse proxy in front of atticd" },
  { program: "/usr/lib/postgresql/15/bin/postgres", pkg: "postgresql-15", why: "the throwaway PostgreSQL cluster" },
];

/** Whether `program` is an executable file (absolute) or one on `pathEnv`. */
export function isInstalled(program: string, pathEnv: string = process.env.PATH ?? ""): boolean {
  const candidates = isAbsolute(program) ? [program] : pathEnv.split(delimiter).filter((d) => d !== "").map((d) => join(d, program));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The programs of `programs` that are not installed. */
export function missingPrograms(programs: readonly TestProgram[] = TEST_PROGRAMS, pathEnv?: string): TestProgram[] {
  return programs.filter((p) => !isInstalled(p.program, pathEnv));
}

/** What a user who is not root reads: each missing program, and one command for all of them. */
export function missingMessage(missing: readonly TestProgram[]): string {
  const packages = [...new Set(missing.map((p) => p.pkg))];
  return [
    "The tests need programs that are not installed:",
    ...missing.map((p) => `  ${p.program} (Debian package ${p.pkg}): ${p.why}`),
    `Install them with: sudo apt-get install -y ${packages.join(" ")}`,
  ].join("\n");
}

export interface EnsureOptions {
  programs?: readonly TestProgram[];
  isRoot?: boolean;
  /** runs a command with inherited output and returns its exit status (apt-get here) */
  run?: (cmd: string, args: string[]) => number | null;
}

/**
 * Installs the missing programs' packages in one `apt-get install` when root. Returns an error
 * message when something is still missing (not root, or apt-get failed), else null.
 */
export function ensureTestPrograms(opts: EnsureOptions = {}): string | null {
  const programs = opts.programs ?? TEST_PROGRAMS;
  const missing = missingPrograms(programs);
  if (missing.length === 0) return null;
  if (!(opts.isRoot ?? process.getuid?.() === 0)) return missingMessage(missing);
  const run = opts.run ?? aptRun;
  const packages = [...new Set(missing.map((p) => p.pkg))];
  console.log(`Installing what the tests need: ${packages.join(" ")} (${missing.map((p) => p.program).join(", ")} missing)`);
  if (run("apt-get", ["update", "-qq"]) !== 0) return `apt-get update failed\n${missingMessage(missing)}`;
  if (run("apt-get", ["install", "-y", "-qq", ...packages]) !== 0) return `apt-get install failed\n${missingMessage(missing)}`;
  const still = missingPrograms(programs);
  return still.length === 0 ? null : `installed, yet still missing:\n${missingMessage(still)}`;
}

function aptRun(cmd: string, args: string[]): number | null {
  console.log(`$ ${cmd} ${args.join(" ")}`);
  return spawnSync(cmd, args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }).status;
}
