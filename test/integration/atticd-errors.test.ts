// What a newcomer sees when atticd cannot start: one line that names the thing, the exit code
// of docs/cli.md (1 for user and system errors, 2 for usage errors), never a stack trace.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runAtticd } from "../helpers/atticd-process.ts";

const dir = mkdtempSync(join(tmpdir(), "attic-errors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function configWithDatabase(name: string, url: string): string {
  const path = join(dir, `${name}.toml`);
  writeFileSync(
    path,
    `listen = "127.0.0.1:0"
[database]
url = ${JSON.stringify(url)}
[storage]
type = "local"
path = ${JSON.stringify(join(dir, "storage"))}
[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144
[jwt.signing]
token-hs256-secret-base64 = "${randomBytes(32).toString("base64")}"
`,
  );
  return path;
}
const CONFIG = configWithDatabase("server", `sqlite://${join(dir, "db", "server.db")}`);

/** stderr without the log lines (ATTIC_LOG_LEVEL=warn keeps the start-up lines out anyway) */
async function atticd(args: string[]): Promise<{ code: number; lines: string[] }> {
  const r = await runAtticd(args, { ATTIC_LOG_LEVEL: "warn" });
  assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /internal error/);
  return { code: r.code, lines: r.stderr.split("\n").filter((l) => l !== "") };
}

test("-l on a port already in use: exit 1, one line naming the address", async () => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  after(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const r = await atticd(["-f", CONFIG, "-l", `127.0.0.1:${port}`]);
  assert.equal(r.code, 1, r.lines.join("\n"));
  assert.deepEqual(r.lines, [`Error: cannot listen on 127.0.0.1:${port}: the address is already in use (another atticd, or another program, listens there)`]);
});

test("a config file that cannot be read: exit 1, one line naming the file", async () => {
  const r = await atticd(["-f", dir, "--mode", "check-config"]);
  assert.equal(r.code, 1, r.lines.join("\n"));
  assert.deepEqual(r.lines, [`Error: invalid server configuration: ${dir}: cannot read the file: it is a directory`]);
  if (process.getuid?.() !== 0) {
    const locked = join(dir, "locked.toml");
    writeFileSync(locked, "", { mode: 0o000 });
    const denied = await atticd(["-f", locked, "--mode", "check-config"]);
    assert.equal(denied.code, 1);
    assert.deepEqual(denied.lines, [`Error: invalid server configuration: ${locked}: cannot read the file: permission denied`]);
  }
});

test("a bad -l value: exit 2 (usage), the rule of `listen`, before anything runs", async () => {
  const r = await atticd(["-f", join(dir, "never-read.toml"), "-l", "localhost:8080"]);
  assert.equal(r.code, 2, r.lines.join("\n"));
  assert.deepEqual(r.lines, [
    `Error: option '-l, --listen <addr>' argument 'localhost:8080' is invalid. expected a socket address such as "[::]:8080" or "127.0.0.1:8080", got "localhost:8080" (host names are not allowed)`,
    "(add --help for more information)",
  ]);
  const mode = await atticd(["--mode", "everything"]);
  assert.equal(mode.code, 2);
  assert.match(mode.lines[0]!, /^Error: option '--mode <mode>' argument 'everything' is invalid\. Allowed choices are monolithic, /);
});

test("a database that cannot be opened: exit 1, one line naming the database", async () => {
  const missing = join(dir, "no-such-dir", "server.db");
  const rw = await atticd(["-f", configWithDatabase("rw", `sqlite://${missing}?mode=rw`), "--mode", "db-migrations"]);
  assert.equal(rw.code, 1, rw.lines.join("\n"));
  assert.deepEqual(rw.lines, [`Error: SQLite database ${missing} does not exist (use ?mode=rwc to create it)`]);

  // the folder of the database cannot be created: a file is in the way
  mkdirSync(join(dir, "blocked"));
  writeFileSync(join(dir, "blocked", "file"), "");
  const url = `sqlite://${join(dir, "blocked", "file", "server.db")}`;
  const blocked = await atticd(["-f", configWithDatabase("blocked", url), "--mode", "db-migrations"]);
  assert.equal(blocked.code, 1, blocked.lines.join("\n"));
  assert.deepEqual(blocked.lines, [`Error: cannot open database ${url}: cannot create its folder ${join(dir, "blocked", "file")} (a file is in the way)`]);
});

test("an unknown flag: exit 2; --help and --version: exit 0, output ending with a newline", async () => {
  const unknown = await atticd(["--frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.lines[0], "Error: unknown option '--frobnicate'");
  for (const flag of ["--help", "--version"]) {
    const r = await runAtticd([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.endsWith("\n"), `${flag} ends with a newline`);
    if (flag === "--help") assert.match(r.stdout, /\nExamples:\n {2}atticd/);
  }
});
