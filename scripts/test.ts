// `npm test`: installs the programs the tests run when missing (scripts/test-programs.ts: real Nix,
// the reference decoders, chromium, nginx, PostgreSQL; one apt-get as root), lints, type-checks, checks
// src/ for import cycles (scripts/check-cycles.ts), starts the shared services once (a throwaway
// PostgreSQL cluster and an S3-compatible server on loopback), runs every test file with node's
// test runner, and tears the services down.
//
// Env: ATTIC_TEST_FILTER=<substring> narrows the files run; ATTIC_TEST_SKIP_CHECKS=1 skips lint, tsc and the cycle check;
// ATTIC_TEST_BACKENDS=sqlite-local,postgres-s3 narrows the backend matrix (an unknown name stops the run);
// ATTIC_TEST_RUN_DEADLINE=<seconds> (default 2400) ends a run that hangs: about three times what a slow machine needs (760 s
// measured on a slow day), and well inside the 90 minutes a CI stop allows.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { backendsFromEnv } from "../test/helpers/backends.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { startS3 } from "../test/helpers/s3.ts";
import { ensureTestPrograms } from "./test-programs.ts";

const root = join(import.meta.dirname, "..");

function run(cmd: string, args: string[]): void {
  console.log(`$ ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root });
  if (r.status !== 0) {
    console.error(`${cmd} failed with exit code ${r.status}`);
    process.exit(r.status ?? 1);
  }
}

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith(".test.ts")) out.push(relative(root, p));
  }
  return out;
}

const notInstalled = ensureTestPrograms();
if (notInstalled !== null) {
  console.error(notInstalled);
  process.exit(1);
}
if (!process.env.ATTIC_TEST_SKIP_CHECKS) {
  run("npx", ["eslint", "."]);
  run("npx", ["tsc", "--noEmit", "-p", "tsconfig.json"]);
  run("npx", ["tsc", "-p", "tsconfig.browser.json"]);
  run(process.execPath, ["scripts/check-cycles.ts"]);
}

// a misspelt backend fails here, once, rather than in every test file that reads it
try {
  backendsFromEnv();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}

const filter = process.env.ATTIC_TEST_FILTER;
const files = testFiles(join(root, "test")).filter((f) => !filter || f.includes(filter));
if (files.length === 0) {
  console.error(`no test files match ${filter ?? "(all)"}`);
  process.exit(1);
}

const pg = await startPostgres();
const s3 = await startS3();
console.log(`services: PostgreSQL ${pg.url}, S3 ${s3.endpoint}`);

const child = spawn(
  process.execPath,
  // a hung test fails after 5 minutes instead of blocking CI
  ["--test", "--test-reporter=spec", "--test-timeout=300000", `--test-concurrency=${process.env.ATTIC_TEST_CONCURRENCY ?? "2"}`, ...files],
  {
    cwd: root,
    // its own process group: the watchdog below can kill it with every process it started
    detached: true,
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env,
      ATTIC_TEST_PG_URL: pg.url,
      ATTIC_TEST_S3_ENDPOINT: s3.endpoint,
      ATTIC_TEST_S3_REGION: s3.region,
      ATTIC_TEST_S3_ACCESS_KEY_ID: s3.accessKeyId,
      ATTIC_TEST_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
  },
);
// --test-timeout cannot fire in a test file whose event loop no longer turns (a promise loop
// that never yields once kept a run waiting until CI's limit): the whole run gets a deadline
const RUN_DEADLINE_S = Number(process.env.ATTIC_TEST_RUN_DEADLINE ?? 2400);
let killedByWatchdog = false;
const watchdog = setTimeout(() => {
  killedByWatchdog = true;
  console.error(`test run still going after ${RUN_DEADLINE_S} s: a test file stopped yielding? killing it and everything it started`);
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}, RUN_DEADLINE_S * 1000);
watchdog.unref();
// an interrupted run (Ctrl-C, CI timeout) still removes the cluster and the S3 server
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      child.kill(signal);
    }
    void s3.stop().finally(() => {
      pg.stop();
      process.exit(130);
    });
  });
}
let tail = "";
child.stdout!.on("data", (buf: Buffer) => {
  process.stdout.write(buf);
  tail = (tail + buf.toString("utf8")).slice(-4096);
});
const code: number = await new Promise((resolve) => child.on("exit", (c) => resolve(c ?? 1)));
clearTimeout(watchdog);
// the spec reporter's closing counts; skipped and todo tests are named so that a run which
// skipped half its tests does not read like a clean one
const counts: Record<string, number> = {};
for (const m of tail.matchAll(/ℹ (pass|fail|cancelled|skipped|todo) (\d+)/g)) counts[m[1]!] = Number(m[2]);
await s3.stop();
pg.stop();
const summary = [`${counts.pass ?? 0} passed`, `${counts.fail ?? 0} failed`];
if (counts.cancelled) summary.push(`${counts.cancelled} cancelled`);
summary.push(`${counts.skipped ?? 0} skipped`, `${counts.todo ?? 0} todo`);
console.log(`${summary.join(", ")}${killedByWatchdog ? ` (run killed after ${RUN_DEADLINE_S} s)` : ""}`);
process.exit(killedByWatchdog ? 1 : code);
