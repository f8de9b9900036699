import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, stat, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { COMMANDS, type CommandSpec } from "../../../src/client/command-table.ts";
import { json, startFakeServer, type Recorded } from "./fakes.ts";
import { runAttic } from "./run-attic.ts";

const CACHE_CONFIG = {
  substituter_endpoint: "http://localhost:8080/hello",
  api_endpoint: "http://localhost:8080/",
  public_key: "hello:vlsd7ZHIXNnKXEQShVnd7erE8zcuSKrBWRpV6zTibnA=",
  is_public: true,
  store_dir: "/nix/store",
  priority: 41,
  upstream_cache_key_names: ["cache.nixos.org-1"],
  retention_period: "Global",
};

const server = await startFakeServer((req, res) => {
  if (req.headers.authorization === "bearer bad") return json(res, 401, { code: 401, error: "Unauthorized", message: "Unauthorized." });
  if (req.method === "GET" && req.url === "/_api/v1/cache-config/hello") return json(res, 200, CACHE_CONFIG);
  if (req.method === "GET" && req.url === "/_api/v1/cache-config/period") return json(res, 200, { ...CACHE_CONFIG, retention_period: { Period: 3600 } });
  if (req.url === "/_api/v1/cache-config/plain404") {
    res.writeHead(404);
    return res.end("no such thing");
  }
  if (req.url.startsWith("/_api/v1/cache-config/")) return res.end();
  json(res, 404, { code: 404, error: "NotFound", message: "The URL you requested was not found." });
});
after(() => server.close());

async function home(): Promise<NodeJS.ProcessEnv> {
  const dir = await mkdtemp(join(tmpdir(), "attic-cli-"));
  return { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: join(dir, "config"), NO_COLOR: "1" };
}

async function loggedIn(token = "tok"): Promise<NodeJS.ProcessEnv> {
  const env = await home();
  const r = await runAttic(["login", "local", server.url, token], { env });
  assert.equal(r.code, 0, r.stderr);
  return env;
}

function lastRequest(): Recorded {
  return server.requests.at(-1)!;
}

/** exit 1 for a user error; 2 for a usage error that commander found (the three tools agree) */
function assertCleanError(r: { code: number | null; stderr: string }, message: RegExp | string, code = 1): void {
  assert.equal(r.code, code, r.stderr);
  if (typeof message === "string") assert.ok(r.stderr.includes(message), r.stderr);
  else assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace for a user mistake");
}

test("argument mistakes exit 1 (2 for commander's usage errors) with a clear message and no stack trace", async () => {
  const env = await home();
  assertCleanError(await runAttic(["push", "c", "/nix/store/x", "-j", "0"], { env }), "Error: The number of jobs cannot be 0");
  assertCleanError(await runAttic(["watch-store", "c", "-j", "0"], { env }), "Error: The number of jobs cannot be 0");
  assertCleanError(await runAttic(["push", "c", "-j", "many"], { env }), "argument 'many' is invalid", 2);
  assertCleanError(await runAttic(["cache", "configure", "c", "--public", "--private"], { env }), "Error: `--public` and `--private` cannot be set at the same time.");
  assertCleanError(
    await runAttic(["cache", "configure", "c", "--retention-period", "1s", "--reset-retention-period"], { env }),
    "Error: `--retention-period` and `--reset-retention-period` cannot be set at the same time.",
  );
  assertCleanError(await runAttic(["cache", "configure", "c", "--retention-period", "soon"], { env }), /Error: Invalid retention period/);
  assertCleanError(await runAttic(["push", "c", "--frobnicate"], { env }), "Error: unknown option '--frobnicate'", 2);
  assertCleanError(await runAttic(["use", "bad/name"], { env }), 'Error: Invalid cache reference "bad/name"');
  assertCleanError(await runAttic(["use", "c"], { env }), "Error: No servers are available.");
  assertCleanError(await runAttic(["push", "c", "--stdin", "/nix/store/x"], { env }), "Error: Paths cannot be given as arguments together with --stdin");
  assertCleanError(await runAttic(["gen-completions"], { env }), "Error: Must specify a shell.");
});

test("--help works for every command, hidden ones included", async () => {
  const env = await home();
  const walk = (specs: CommandSpec[], prefix: string[]): string[][] =>
    specs.flatMap((s) => [[...prefix, s.name], ...walk(s.subcommands ?? [], [...prefix, s.name])]);
  const all = [[], ...walk(COMMANDS, [])];
  const results = await Promise.all(all.map((path) => runAttic([...path, "--help"], { env })));
  results.forEach((r, i) => {
    assert.equal(r.code, 0, `${all[i]!.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: attic/, all[i]!.join(" "));
  });
  assert.doesNotMatch(results[0]!.stdout, /get-closure/, "get-closure is hidden as upstream");
  const version = await runAttic(["--version"], { env });
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
});

test("login writes upstream's config with mode 0600 and keeps tokens and defaults as upstream", async () => {
  const env = await home();
  const file = join(env.XDG_CONFIG_HOME!, "attic", "config.toml");
  let r = await runAttic(["login", "local", "http://localhost:8080", "eyJtok"], { env });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, '✍️ Configuring server "local"\n');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal(await readFile(file, "utf8"), 'default-server = "local"\n\n[servers.local]\nendpoint = "http://localhost:8080"\ntoken = "eyJtok"\n');

  r = await runAttic(["login", "local", "http://localhost:9090"], { env });
  assert.equal(r.stderr, '✍️ Overwriting server "local"\n');
  assert.match(await readFile(file, "utf8"), /endpoint = "http:\/\/localhost:9090"\ntoken = "eyJtok"/);

  await runAttic(["login", "other", "http://o"], { env });
  assert.match(await readFile(file, "utf8"), /^default-server = "local"/);
  await runAttic(["login", "third", "http://t", "--set-default"], { env: { ...env } });
  assert.match(await readFile(file, "utf8"), /^default-server = "third"/);
  r = await runAttic(["login"], { env: { ...env, ATTIC_LOGIN_NAME: "env", ATTIC_LOGIN_ENDPOINT: "http://e", ATTIC_LOGIN_TOKEN: "t" } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(await readFile(file, "utf8"), /\[servers\.env\]\nendpoint = "http:\/\/e"\ntoken = "t"/);
  assertCleanError(await runAttic(["login", "bad name", "http://x"], { env }), 'Error: Invalid server name "bad name"');
});

test("cache create sends upstream's request and prints the seed's line", async () => {
  const env = await loggedIn();
  const r = await runAttic(["cache", "create", "hello"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '✨ Created cache "hello" on "local"\n');
  assert.equal(lastRequest().method, "POST");
  assert.equal(lastRequest().url, "/_api/v1/cache-config/hello");
  assert.equal(lastRequest().headers.authorization, "bearer tok");
  assert.deepEqual(JSON.parse(lastRequest().body.toString()), {
    keypair: "Generate",
    is_public: false,
    store_dir: "/nix/store",
    priority: 41,
    upstream_cache_key_names: ["cache.nixos.org-1"],
  });
  await runAttic(["cache", "create", "local:x", "--public", "--priority", "-3", "--upstream-cache-key-name", "a", "--upstream-cache-key-name", "b", "--store-dir", "/s"], { env });
  assert.deepEqual(JSON.parse(lastRequest().body.toString()), { keypair: "Generate", is_public: true, store_dir: "/s", priority: -3, upstream_cache_key_names: ["a", "b"] });
});

test("cache configure sends only what the flags set (retention only with a retention flag)", async () => {
  const env = await loggedIn();
  const body = async (...flags: string[]): Promise<unknown> => {
    const r = await runAttic(["cache", "configure", "hello", ...flags], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '✅ Configured "hello" on "local"\n');
    assert.equal(lastRequest().method, "PATCH");
    return JSON.parse(lastRequest().body.toString());
  };
  assert.deepEqual(await body("--public"), { is_public: true });
  assert.deepEqual(await body("--private", "--priority", "30"), { is_public: false, priority: 30 });
  assert.deepEqual(await body("--retention-period", "1s"), { retention_period: { Period: 1 } });
  assert.deepEqual(await body("--retention-period", "3 months"), { retention_period: { Period: 3 * 2_630_016 } });
  assert.deepEqual(await body("--reset-retention-period"), { retention_period: "Global" });
  assert.deepEqual(await body("--regenerate-keypair", "--upstream-cache-key-name", "k1"), { keypair: "Generate", upstream_cache_key_names: ["k1"] });
  assert.deepEqual(await body("--max-size", "10 GiB"), { max_size: 10 * 1024 ** 3 });
  assert.deepEqual(await body("--reset-max-size"), { max_size: null });
  const before = server.requests.length;
  assertCleanError(await runAttic(["cache", "configure", "hello"], { env }), "Error: Nothing to configure");
  assert.equal(server.requests.length, before, "nothing is sent");
});

test("cache info prints the seed's aligned lines", async () => {
  const env = await loggedIn();
  const r = await runAttic(["cache", "info", "hello"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stderr,
    [
      "               Public: true",
      "           Public Key: hello:vlsd7ZHIXNnKXEQShVnd7erE8zcuSKrBWRpV6zTibnA=",
      "Binary Cache Endpoint: http://localhost:8080/hello",
      "         API Endpoint: http://localhost:8080/",
      "      Store Directory: /nix/store",
      "             Priority: 41",
      '  Upstream Cache Keys: ["cache.nixos.org-1"]',
      "     Retention Period: Global Default",
      "",
    ].join("\n"),
  );
  const p = await runAttic(["cache", "info", "period"], { env });
  assert.match(p.stderr, /^ {5}Retention Period: 3600$/m);
});

test("use configures nix.conf and netrc as the seed shows", async () => {
  const env = await loggedIn();
  const nixDir = join(env.XDG_CONFIG_HOME!, "nix");
  await mkdir(nixDir, { recursive: true });
  await writeFile(join(nixDir, "nix.conf"), "# mine\nsubstituters=https://other\n");
  await writeFile(join(nixDir, "netrc"), "# mine\nmachine example.org password keep\n");
  const r = await runAttic(["use", "hello"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stderr,
    'Configuring Nix to use "hello" on "local":\n+ Substituter: http://localhost:8080/hello\n+ Trusted Public Key: hello:vlsd7ZHIXNnKXEQShVnd7erE8zcuSKrBWRpV6zTibnA=\n+ Access Token\n',
  );
  assert.equal(
    await readFile(join(nixDir, "nix.conf"), "utf8"),
    [
      "# mine",
      "substituters=http://localhost:8080/hello https://other",
      "trusted-public-keys = hello:vlsd7ZHIXNnKXEQShVnd7erE8zcuSKrBWRpV6zTibnA= cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
      `netrc-file = ${join(nixDir, "netrc")}`,
      "",
    ].join("\n"),
  );
  assert.equal(await readFile(join(nixDir, "netrc"), "utf8"), "# mine\nmachine example.org password keep\nmachine localhost\npassword tok\n");
  assert.equal((await stat(join(nixDir, "netrc"))).mode & 0o777, 0o600);

  // without a token: no netrc, no "+ Access Token"
  const anon = await home();
  await runAttic(["login", "local", server.url], { env: anon });
  const a = await runAttic(["use", "hello"], { env: anon });
  assert.doesNotMatch(a.stderr, /Access Token/);
  await assert.rejects(stat(join(anon.XDG_CONFIG_HOME!, "nix", "netrc")));
});

test("destroy asks for the cache name", async () => {
  const env = await loggedIn();
  const before = server.requests.length;
  const wrong = await runAttic(["cache", "destroy", "hello"], { env, input: "hullo\n" });
  assertCleanError(wrong, "Error: Incorrect answer. Aborting...");
  assert.match(wrong.stderr, /Type the cache name to confirm destroying "hello" on "local"/);
  assert.equal(server.requests.length, before);
  assertCleanError(await runAttic(["cache", "destroy", "hello"], { env, input: "" }), "Incorrect answer");

  const right = await runAttic(["cache", "destroy", "hello"], { env, input: "hello\n" });
  assert.equal(right.code, 0, right.stderr);
  assert.match(right.stderr, /🗑️ The cache was destroyed\.\n$/);
  assert.equal(lastRequest().method, "DELETE");
  const quick = await runAttic(["cache", "destroy", "hello", "--no-confirm"], { env });
  assert.equal(quick.stderr, "🗑️ The cache was destroyed.\n");
});

test("server errors are shown as `<error>: <message>`", async () => {
  const env = await loggedIn("bad");
  assertCleanError(await runAttic(["cache", "info", "hello"], { env }), "Error: Unauthorized: Unauthorized.\n");
  const ok = await loggedIn();
  assertCleanError(await runAttic(["cache", "info", "local:plain404"], { env: ok }), "Error: HTTP 404 Not Found: no such thing\n");
  assertCleanError(await runAttic(["cache", "info", "local:empty"], { env: ok }), "Error: Invalid response from the server (expected JSON, got an empty body)");
});

test("push with nothing to push says so", async () => {
  const env = await loggedIn();
  const r = await runAttic(["push", "hello"], { env });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "🤷 Nothing specified.\nHint: Pass --stdin to read the list of store paths from standard input.\n");
});

test("completion scripts are generated for bash, zsh and fish and are valid syntax", async () => {
  const env = await home();
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await runAttic(["gen-completions", shell], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /cache/);
    assert.match(r.stdout, /upstream-cache-key-name/);
    assert.doesNotMatch(r.stdout, /force-preamble|get-closure/, "hidden items stay hidden");
    const check = spawnSync(shell, shell === "fish" ? ["--no-execute"] : ["-n"], { input: r.stdout, encoding: "utf8" });
    if (check.error === undefined) assert.equal(check.status, 0, `${shell}: ${check.stderr}`);
    else if (shell === "bash") assert.fail("bash is needed to check the completion script");
  }
  assertCleanError(await runAttic(["gen-completions", "tcsh"], { env }), 'Error: Unsupported shell "tcsh"');
});
