// The README's first hour on a fresh clone, with the system's `node` first on PATH (Node 20 on
// the development machine: older than engines.node, so the bins must reach the pinned Node
// through src/bin/launch.ts). One `npm ci` and one build serve both ways of installing the
// three commands: `npm link` and `npm pack` + `npm install -g`, each into a temporary prefix;
// then --version, --help, and a real `attic login` + `attic cache create` against an atticd
// started through the installed bin. Clones the committed HEAD of this checkout.
// No step talks to the npm registry: every npm command goes through a registry on loopback that
// serves what npm's cache holds since the checkout's own `npm ci` (test/helpers/npm-cache-registry.ts),
// with a cache of its own, so its time does not depend on the registry and the global install
// gets the lockfile's versions. The only download is that earlier `npm ci`, before `npm test`.
// About 3 minutes on a loaded 2-core machine (npm ci 70 s, build 50 s, npm install -g 30 s); each step
// is cut off after 5.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../helpers/ports.ts";
import { startCacheRegistry } from "../helpers/npm-cache-registry.ts";
import { waitFor } from "../helpers/wait.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
/** the system's node and npm: ATTIC_TEST_SYSTEM_NODE, else /usr/bin/node */
const SYSTEM_NODE = process.env.ATTIC_TEST_SYSTEM_NODE ?? "/usr/bin/node";
const SYSTEM_BIN = dirname(SYSTEM_NODE);

const STEP_TIMEOUT_MS = 300_000;

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, env: opts.env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: STEP_TIMEOUT_MS });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

test("a newcomer's first hour: npm ci, build, link or pack + install -g, then the three commands on an old node", { timeout: 900_000 }, async (t) => {
  let lapStart = Date.now();
  const lap = (what: string) => {
    t.diagnostic(`${what}: ${((Date.now() - lapStart) / 1000).toFixed(1)} s`);
    lapStart = Date.now();
  };
  assert.ok(existsSync(SYSTEM_NODE), `${SYSTEM_NODE} (set ATTIC_TEST_SYSTEM_NODE to the system's node)`);
  const systemVersion = sh(SYSTEM_NODE, ["--version"]).trim();
  t.diagnostic(`system node: ${SYSTEM_NODE} ${systemVersion}`);
  const work = mkdtempSync(join(tmpdir(), "attic-first-hour-"));
  // tens of thousands of files (three installs and an npm cache): removed in the background, which
  // took 90 s of the test's time on a loaded machine
  t.after(() => spawn("rm", ["-rf", work], { detached: true, stdio: "ignore" }).unref());
  const clone = join(work, "attic-ts");
  sh("git", ["clone", "--quiet", REPO, clone]);
  // the system's node and npm first, as on a machine the user brings (HOME kept: the user's npmrc)
  const basePath = `${SYSTEM_BIN}:/usr/bin:/bin`;
  const userNpm = { HOME: process.env.HOME, PATH: basePath };
  const registry = await startCacheRegistry(sh("npm", ["config", "get", "cache"], { env: userNpm }).trim(), sh("npm", ["config", "get", "registry"], { env: userNpm }).trim());
  t.after(() => registry.close());
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    ...userNpm,
    npm_config_registry: registry.url,
    npm_config_cache: join(work, "npm-cache"),
    npm_config_update_notifier: "false",
    ...extra,
  });
  // asynchronous: the registry answers from this process. An npm step that fails says what the cache lacked.
  const npm = async (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }): Promise<string> => {
    try {
      return (await promisify(execFile)("npm", args, { ...opts, encoding: "utf8", timeout: STEP_TIMEOUT_MS, maxBuffer: 64 << 20 })).stdout;
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`npm ${args.join(" ")} failed: ${e.message}\n${e.stderr ?? ""}\nnot in the npm cache: ${registry.misses.join(", ") || "nothing"}`, { cause: err });
    }
  };
  lap("git clone, npm config");
  await npm(["ci", "--no-audit", "--no-fund"], { cwd: clone, env: env() });
  lap("npm ci");
  await npm(["run", "build"], { cwd: clone, env: env() });
  lap("npm run build");
  const version = (JSON.parse(sh("cat", [join(clone, "package.json")])) as { version: string }).version;

  // `npx attic` inside the checkout
  assert.equal((await promisify(execFile)("npx", ["--no-install", "attic", "--version"], { cwd: clone, env: env(), encoding: "utf8", timeout: STEP_TIMEOUT_MS })).stdout.trim(), version);

  const linkPrefix = join(work, "link-prefix");
  await npm(["link", "--no-audit", "--no-fund"], { cwd: clone, env: env({ npm_config_prefix: linkPrefix }) });
  lap("npx attic --version, npm link");

  const packPrefix = join(work, "pack-prefix");
  await npm(["pack", "--ignore-scripts", "--pack-destination", work], { cwd: clone, env: env() });
  const tarball = join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!);
  await npm(["install", "-g", "--no-audit", "--no-fund", tarball], { cwd: work, env: env({ npm_config_prefix: packPrefix }) });
  lap("npm pack, npm install -g");
  // no native module was compiled (lzma-native ships prebuilt binaries; @ronomon/deduplication's build is not allowed)
  for (const dir of [join(clone, "node_modules/lzma-native"), join(clone, "node_modules/@ronomon/deduplication"), join(packPrefix, "lib/node_modules/attic-ts/node_modules/lzma-native")]) {
    assert.ok(!existsSync(join(dir, "build")), `${dir} was built from source`);
  }

  for (const [how, prefix] of [["npm link", linkPrefix], ["npm pack + npm install -g", packPrefix]] as const) {
    await t.test(how, async () => {
      const home = join(work, `home-${how.split(" ")[1]}`);
      const userEnv = env({
        PATH: `${join(prefix, "bin")}:${basePath}`,
        HOME: home,
        XDG_CONFIG_HOME: join(home, ".config"),
        XDG_DATA_HOME: join(home, ".local/share"),
      });
      const v = await run("attic", ["--version"], userEnv);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stdout, `${version}\n`);
      for (const tool of ["atticd", "atticadm", "attic"]) {
        const help = await run(tool, ["--help"], userEnv);
        assert.equal(help.code, 0, help.stderr);
        assert.match(help.stdout, /\nExamples?:\n {2}\S/, `${tool} --help shows an example`);
        assert.ok(help.stdout.endsWith("\n"), `${tool} --help ends with a newline`);
      }

      const port = await freePort();
      const server = spawn("atticd", ["-l", `127.0.0.1:${port}`], { env: userEnv, stdio: ["ignore", "pipe", "pipe"] });
      let log = "";
      server.stderr.on("data", (b: Buffer) => (log += b.toString()));
      server.stdout.on("data", (b: Buffer) => (log += b.toString()));
      const exited = new Promise<number | null>((resolve) => server.on("exit", (code) => resolve(code)));
      try {
        await waitFor(() => {
          if (server.exitCode !== null) assert.fail(`atticd exited (${server.exitCode}):\n${log}`);
          return /attic login local \S+ \S+\n/.test(log);
        }, { what: "atticd's login line", timeoutMs: 120_000, intervalMs: 200 }).catch((err: Error) => assert.fail(`${err.message}:\n${log}`));
        const [, , token] = /attic login local (\S+) (\S+)\n/.exec(log)!;
        const login = await run("attic", ["login", "local", `http://127.0.0.1:${port}`, token!], userEnv);
        assert.equal(login.code, 0, login.stderr);
        const create = await run("attic", ["cache", "create", "hello"], userEnv);
        assert.equal(create.code, 0, create.stderr);
        assert.match(create.stderr + create.stdout, /Created cache "hello" on "local"/);
        assert.match(log, /Listening on 127\.0\.0\.1:\d+/);
        assert.doesNotMatch(log, /\n\s+at /, "no stack trace");
      } finally {
        server.kill("SIGTERM");
      }
      assert.equal(await exited, 0, `atticd stops cleanly on SIGTERM (through the launcher when relaunched):\n${log}`);
    });
  }
});
