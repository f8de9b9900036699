// The README's first hour on a fresh clone, with the system's `node` first on PATH (Node 20 on
// the development machine: older than engines.node, so the bins must reach the pinned Node
// through src/bin/launch.ts). One `npm ci` and one build serve both ways of installing the
// three commands: `npm link` and `npm pack` + `npm install -g`, each into a temporary prefix;
// then --version, --help, and a real `attic login` + `attic cache create` against an atticd
// started through the installed bin. Clones the committed HEAD of this checkout.
// Needs the npm registry (npm ci; --prefer-offline uses npm's cache when it can); about 5 minutes
// on a loaded 2-core machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../helpers/ports.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
/** the system's node and npm: ATTIC_TEST_SYSTEM_NODE, else /usr/bin/node */
const SYSTEM_NODE = process.env.ATTIC_TEST_SYSTEM_NODE ?? "/usr/bin/node";
const SYSTEM_BIN = dirname(SYSTEM_NODE);

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, env: opts.env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 600_000 });
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

test("a newcomer's first hour: npm ci, build, link or pack + install -g, then the three commands on an old node", { timeout: 1_200_000 }, async (t) => {
  assert.ok(existsSync(SYSTEM_NODE), `${SYSTEM_NODE} (set ATTIC_TEST_SYSTEM_NODE to the system's node)`);
  const systemVersion = sh(SYSTEM_NODE, ["--version"]).trim();
  t.diagnostic(`system node: ${SYSTEM_NODE} ${systemVersion}`);
  const work = mkdtempSync(join(tmpdir(), "attic-first-hour-"));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const clone = join(work, "attic-ts");
  sh("git", ["clone", "--quiet", REPO, clone]);
  // the system's node and npm first, as on a machine the user brings (HOME kept: npm's cache)
  const basePath = `${SYSTEM_BIN}:/usr/bin:/bin`;
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: process.env.HOME, PATH: basePath, ...extra });
  sh("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], { cwd: clone, env: env() });
  sh("npm", ["run", "build"], { cwd: clone, env: env() });
  const version = (JSON.parse(sh("cat", [join(clone, "package.json")])) as { version: string }).version;

  // `npx attic` inside the checkout
  assert.equal(sh("npx", ["--no-install", "attic", "--version"], { cwd: clone, env: env() }).trim(), version);

  const linkPrefix = join(work, "link-prefix");
  sh("npm", ["link", "--no-audit", "--no-fund"], { cwd: clone, env: env({ npm_config_prefix: linkPrefix }) });

  const packPrefix = join(work, "pack-prefix");
  sh("npm", ["pack", "--ignore-scripts", "--pack-destination", work], { cwd: clone, env: env() });
  const tarball = join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!);
  sh("npm", ["install", "-g", "--prefer-offline", "--no-audit", "--no-fund", tarball], { cwd: work, env: env({ npm_config_prefix: packPrefix }) });

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
        const deadline = Date.now() + 120_000;
        while (!/attic login local \S+ \S+\n/.test(log)) {
          if (server.exitCode !== null || Date.now() > deadline) assert.fail(`atticd did not start:\n${log}`);
          await new Promise((r) => setTimeout(r, 200));
        }
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
