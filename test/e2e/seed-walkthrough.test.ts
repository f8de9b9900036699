// The README walkthrough (the seed), replayed as a user types it: every command line of the seed
// runs through `sh -c` exactly as written (only the port differs from 8080), with `attic`,
// `atticd` and `atticadm` on PATH and HOME/XDG dirs in a temporary folder. `atticd` does its
// first run; `attic` is installed the Nix way, so `$(which attic)` is a store path whose
// `bin/attic` launches this client, and `nix-store --store $PWD/nix-demo -r $(which attic)`
// pulls that closure back through the substituter `attic use` configured. Each step checks the
// lines the seed shows (with this run's port, key and store paths).
//
// Also, from issue 5: scoped and wildcard tokens doing what they allow and no more, a push
// refused for lack of permission, `nix-build … | attic push --stdin` with 10 paths,
// `watch-store` picking up a freshly built path, and `cache destroy`.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { nixBuild, nixCommand, nixEnv, nixStore, textDrv } from "../helpers/nix.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = (name: string): string => join(ROOT, "src", "bin", `${name}.ts`);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let env: NodeJS.ProcessEnv;
let port: number;
/** what the seed calls http://localhost:8080 */
let endpoint: string;
let server: ChildProcess;
let serverLog = "";

function run(cmd: string, args: string[], options: { input?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: dir, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    // a command that exits without reading its input (most do) closes the pipe first: EPIPE here
    // is not the command's failure, its exit code and output say how it went
    child.stdin.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") reject(err);
    });
    child.stdin.end(options.input ?? "");
  });
}

/** A command line of the seed, as written; `localhost:8080` becomes this run's server. */
function sh(line: string): Promise<Result> {
  return run("sh", ["-c", line.replaceAll("localhost:8080", `localhost:${port}`)]);
}

/** Runs and expects success; the message shows both streams when it fails. */
async function ok(p: Promise<Result>): Promise<Result> {
  const r = await p;
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Status lines of `attic` (stderr, as upstream). */
const lines = (r: Result): string[] => r.stderr.split("\n").filter((l) => l !== "");

function claimsOf(jwt: string): Record<string, unknown> {
  assert.match(jwt, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
}

const TAG = `seed-${randomBytes(4).toString("hex")}`;

/**
 * `attic-0.1.0`: `bin/attic` launches this client; it depends on two libraries so that its
 * closure has three paths (unique to this run).
 */
function atticDrv(): string {
  const launcher = `#!/bin/sh\\n# %s %s\\nexec ${process.execPath} ${BIN("attic")} \\"\\$@\\"\\n`;
  return `let
  lib1 = ${textDrv(`${TAG}-lib1`, `lib1 ${TAG}`)};
  lib2 = ${textDrv(`${TAG}-lib2`, `lib2 ${TAG}`, ["lib1"])};
in derivation {
  name = "attic-0.1.0"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
  inherit lib2; tag = "${TAG}";
  args = [ "-c" "mkdir -p $out/bin; printf '${launcher}' $lib2 $tag > $out/bin/attic; chmod +x $out/bin/attic" ];
}`;
}

let atticPath: string;
let rootToken: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "attic-seed-"));
  port = await freePort();
  endpoint = `http://localhost:${port}`;

  // atticd and atticadm as installed commands
  const bin = join(dir, "bin");
  await mkdir(bin);
  for (const name of ["atticd", "atticadm"]) {
    await writeFile(join(bin, name), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN(name))} "$@"\n`);
    await chmod(join(bin, name), 0o755);
  }
  // attic installed with Nix: ~/.nix-profile/bin/attic → /nix/store/…-attic-0.1.0/bin/attic
  atticPath = (await nixBuild(atticDrv()))[0]!;
  await mkdir(join(dir, ".nix-profile", "bin"), { recursive: true });
  await symlink(join(atticPath, "bin", "attic"), join(dir, ".nix-profile", "bin", "attic"));

  env = nixEnv({
    PATH: `${join(dir, ".nix-profile", "bin")}:${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, ".config"),
    XDG_CACHE_HOME: join(dir, ".cache"),
    XDG_DATA_HOME: join(dir, ".local", "share"),
    // Root without build users, and no network here: one quick attempt at cache.nixos.org.
    // The seed's second pull (after GC) asks for a path Nix had never looked up; ours pulled the
    // same path a minute before, and Nix would trust that cached narinfo for 30 days.
    NIX_CONFIG: "build-users-group =\ndownload-attempts = 1\nconnect-timeout = 2\nnarinfo-cache-positive-ttl = 0",
    ATTIC_LOG_LEVEL: "warn",
  });

  // The first run: atticd writes its config under ~/.config/attic and prints the login line.
  server = spawn("sh", ["-c", `exec atticd -l '[::]:${port}'`], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout!.setEncoding("utf8").on("data", (d: string) => (serverLog += d));
  server.stderr!.setEncoding("utf8").on("data", (d: string) => (serverLog += d));
  try {
    await waitFor(() => {
      if (server.exitCode !== null) throw new Error(`atticd exited (${server.exitCode})`);
      return /attic login local \S+ \S+\n/.test(serverLog);
    }, { what: "the login line", timeoutMs: 60_000, intervalMs: 100 });
  } catch (err) {
    assert.fail(`atticd did not start: ${(err as Error).message}\n${serverLog}`);
  }
});

after(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("the seed walkthrough", () => {
  test("attic login (copied from the atticd output)", async () => {
    const login = /^\s*(attic login local (\S+) (\S+))$/m.exec(serverLog)!;
    assert.equal(login[2], endpoint, "the first-run banner names the port we listen on");
    rootToken = login[3]!;
    const r = await ok(sh(login[1]!));
    assert.deepEqual(lines(r), ['✍️ Configuring server "local"']);
  });

  test("attic cache create hello", async () => {
    const r = await ok(sh("attic cache create hello"));
    assert.deepEqual(lines(r), ['✨ Created cache "hello" on "local"']);
  });

  test("attic push hello $(which attic)", async () => {
    const r = await ok(sh("attic push hello $(which attic)"));
    const out = lines(r);
    assert.equal(out[0], '⚙️ Pushing 3 paths to "hello" on "local" (0 already cached, 0 in upstream)...');
    const base = atticPath.slice("/nix/store/".length);
    assert.ok(out.some((l) => new RegExp(`^✅ ${base} \\(\\d+(\\.\\d\\d)? (B|KiB|MiB|GiB)/s(, [\\d.]+% deduplicated)?\\)$`).test(l)), r.stderr);
    assert.equal(out.filter((l) => l.startsWith("✅ ") && !l.startsWith("✅ All done")).length, 3);
    assert.equal(out.at(-1), "✅ All done! (0 already cached, 0 in upstream)");

    // pushing again uploads nothing
    const again = await ok(sh("attic push hello $(which attic)"));
    assert.deepEqual(lines(again), ["✅ All done! (3 already cached, 0 in upstream)"]);
  });

  test("paths signed by an upstream cache key are skipped", async () => {
    const keys = join(dir, "keys");
    await mkdir(keys);
    await nixStore(["--generate-binary-cache-key", "cache.nixos.org-1", join(keys, "sk"), join(keys, "pk")], env);
    const [upstream] = await nixBuild(textDrv(`${TAG}-from-upstream`, "upstream"));
    await nixCommand(["store", "sign", "--key-file", join(keys, "sk"), upstream!], env);
    const r = await ok(sh(`attic push hello ${upstream!}`));
    assert.deepEqual(lines(r), ["✅ All done! (0 already cached, 1 in upstream)"]);
  });

  test("attic use hello", async () => {
    const res = await fetch(`${endpoint}/_api/v1/cache-config/hello`, { headers: { authorization: `bearer ${rootToken}` } });
    const { public_key: publicKey } = (await res.json()) as { public_key: string };
    assert.match(publicKey, /^hello:[A-Za-z0-9+/]{43}=$/);
    const r = await ok(sh("attic use hello"));
    assert.deepEqual(lines(r), [
      'Configuring Nix to use "hello" on "local":',
      `+ Substituter: ${endpoint}/hello`,
      `+ Trusted Public Key: ${publicKey}`,
      "+ Access Token",
    ]);
    const nixConf = await readFile(join(dir, ".config", "nix", "nix.conf"), "utf8");
    assert.equal(
      nixConf,
      [
        `substituters = ${endpoint}/hello https://cache.nixos.org`,
        `trusted-public-keys = ${publicKey} cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=`,
        `netrc-file = ${join(dir, ".config", "nix", "netrc")}`,
        "", // the file ends with a newline
      ].join("\n"),
    );
    assert.equal(await readFile(join(dir, ".config", "nix", "netrc"), "utf8"), `machine localhost\npassword ${rootToken}\n`);
  });

  test("nix-store --store $PWD/nix-demo -r $(which attic), then ls", async () => {
    const r = await ok(sh("nix-store --store $PWD/nix-demo -r $(which attic)"));
    assert.match(r.stderr, new RegExp(`copying path '${atticPath}' from '${endpoint}/hello'\\.\\.\\.`));
    assert.equal(r.stdout.trim(), atticPath);
    const ls = await ok(sh(`ls nix-demo${atticPath}/bin/attic`));
    assert.equal(ls.stdout, `nix-demo${atticPath}/bin/attic\n`);
    // what came back is the client itself, and it runs
    const version = await ok(sh(`nix-demo${atticPath}/bin/attic --version`));
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test("atticadm make-token: a token scoped to hello", async () => {
    const made = await ok(sh("atticadm make-token --sub alice --validity '3 months' --pull hello --push hello"));
    const token = made.stdout.trim();
    const claims = claimsOf(token);
    assert.equal(claims.sub, "alice");
    assert.deepEqual(claims["https://jwt.attic.rs/v1"], { caches: { hello: { r: 1, w: 1 } } });
    assert.ok(Math.abs((claims.exp as number) - Date.now() / 1000 - 3 * 2_630_016) < 60, "valid for 3 months");

    // alice can pull and push on hello
    await ok(sh(`attic login alice ${endpoint} ${token}`));
    const info = await ok(sh("attic cache info alice:hello"));
    assert.match(info.stderr, /^ {15}Public: false$/m);
    const [fresh] = await nixBuild(textDrv(`${TAG}-alice`, "by alice"));
    const pushed = await ok(sh(`attic push alice:hello ${fresh!}`));
    assert.match(pushed.stderr, /^⚙️ Pushing 1 paths to "hello" on "alice" \(0 already cached, 0 in upstream\)\.\.\.$/m);

    // but nothing else
    const create = await sh("attic cache create alice:other");
    assert.equal(create.code, 1);
    assert.equal(create.stderr, "Error: Unauthorized: Unauthorized.\n");
    const configure = await sh("attic cache configure alice:hello --public");
    assert.equal(configure.code, 1);
    assert.equal(configure.stderr, "Error: AccessError: Access error: User does not have permission to complete this action.\n");

    // a pull-only token reads the cache, but its push is refused, clearly and with exit 1
    const pullOnly = (await ok(sh("atticadm make-token --sub carol --validity '1 hour' --pull hello"))).stdout.trim();
    await ok(sh(`attic login carol ${endpoint} ${pullOnly}`));
    await ok(sh("attic cache info carol:hello"));
    const [another] = await nixBuild(textDrv(`${TAG}-carol`, "by carol"));
    const refused = await sh(`attic push carol:hello ${another!}`);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, "Error: AccessError: Access error: User does not have permission to complete this action.\n");
  });

  test("atticadm make-token: wildcard patterns let alice create her own caches", async () => {
    const line = "atticadm make-token --sub alice --validity '3 months' --pull 'alice-*' --push 'alice-*' --create-cache 'alice-*'";
    const token = (await ok(sh(line))).stdout.trim();
    assert.deepEqual(claimsOf(token)["https://jwt.attic.rs/v1"], { caches: { "alice-*": { r: 1, w: 1, cc: 1 } } });
    // "Try passing --dump-claims to show the JWT claims without encoding the token"
    const dumped = JSON.parse((await ok(sh(`${line} --dump-claims`))).stdout) as Record<string, unknown>;
    assert.equal(dumped.sub, "alice");
    assert.deepEqual(dumped["https://jwt.attic.rs/v1"], { caches: { "alice-*": { r: 1, w: 1, cc: 1 } } });

    await ok(sh(`attic login alice2 ${endpoint} ${token}`));
    const created = await ok(sh("attic cache create alice2:alice-stuff"));
    assert.deepEqual(lines(created), ['✨ Created cache "alice-stuff" on "alice2"']);
    const pushed = await ok(sh("attic push alice2:alice-stuff $(which attic)"));
    assert.match(pushed.stderr, /Pushing 3 paths to "alice-stuff" on "alice2"/);
    assert.equal(lines(pushed).filter((l) => l.endsWith("(deduplicated)")).length, 3, "the NARs are stored once (global dedup)");

    const bob = await sh("attic cache create alice2:bob");
    assert.equal(bob.code, 1);
    assert.equal(bob.stderr, "Error: Unauthorized: Unauthorized.\n");
    // a push without permission fails with a clear message and a non-zero exit
    const refused = await sh("attic push alice2:hello $(which attic)");
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, "Error: Unauthorized: Unauthorized.\n");
  });

  test("nix-build … | attic push hello --stdin (10 paths)", async () => {
    const expr = `[ ${Array.from({ length: 10 }, (_, i) => `(${textDrv(`${TAG}-stdin-${i}`, `stdin ${i}`)})`).join(" ")} ]`;
    const r = await ok(sh(`nix-build --no-out-link -E '${expr.replace(/'/g, "'\\''")}' | attic push hello --stdin`));
    const done = lines(r).filter((l) => new RegExp(`^✅ [a-z0-9]{32}-${TAG}-stdin-\\d `).test(l));
    assert.equal(done.length, 10, r.stderr);
    assert.match(r.stderr, /✅ All done! \(0 already cached, 0 in upstream\)\n$/);
  });

  test("attic cache configure hello --public, then anonymous curl of nix-cache-info", async () => {
    const before = await sh("curl -sS http://localhost:8080/hello/nix-cache-info");
    assert.equal(before.stdout, '{"code":401,"error":"Unauthorized","message":"Unauthorized."}');
    const r = await ok(sh("attic cache configure hello --public"));
    assert.deepEqual(lines(r), ['✅ Configured "hello" on "local"']);
    const curl = await ok(sh("curl http://localhost:8080/hello/nix-cache-info"));
    assert.equal(curl.stdout, "WantMassQuery: 1\nStoreDir: /nix/store\nPriority: 41\n");
  });

  test("attic watch-store hello pushes a freshly built path", async () => {
    const child = spawn("sh", ["-c", "exec attic watch-store hello"], { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] });
    let out = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const saw = async (re: RegExp, what: string): Promise<void> => {
      try {
        await waitFor(() => {
          if (child.exitCode !== null) throw new Error(`watch-store exited (${child.exitCode})`);
          return re.test(out);
        }, { what, timeoutMs: 60_000, intervalMs: 100 });
      } catch (err) {
        assert.fail(`${(err as Error).message}; watch-store said:\n${out}`);
      }
    };
    try {
      await saw(/👀 Pushing new store paths to "hello" on "local"/, "watch-store to start");
      const [built] = await nixBuild(textDrv(`${TAG}-watched`, "watched"));
      const base = built!.slice("/nix/store/".length);
      await saw(new RegExp(`✅ ${base} `), `${base} to be pushed`);
      const narinfo = await ok(sh(`curl -sSf http://localhost:8080/hello/${base.slice(0, 32)}.narinfo`));
      assert.match(narinfo.stdout, new RegExp(`^StorePath: ${built!}$`, "m"));
    } finally {
      child.kill("SIGINT");
      assert.equal(await exited, 0, out);
    }
  });

  test("retention period 1s, garbage-collector-once, and the path is gone", async () => {
    const r = await ok(sh("attic cache configure hello --retention-period '1s'"));
    assert.deepEqual(lines(r), ['✅ Configured "hello" on "local"']);
    // A wait on the clock, not on another process: retention counts wall-clock time since each
    // object's last access, and every access happened before the command above returned. A loaded
    // machine only makes this wait longer. (Polling for the effect cannot be done here: a narinfo
    // read refreshes the object's last access and so keeps it alive.)
    const configuredAt = Date.now();
    await waitFor(() => Date.now() - configuredAt > 2000, { what: "the 1 s retention period (and a second of margin) to pass", timeoutMs: 10_000, intervalMs: 50 });
    await ok(sh("atticd --mode garbage-collector-once"));

    const pull = await sh("nix-store --store $PWD/nix-demo-2 -r $(which attic)");
    assert.notEqual(pull.code, 0, pull.stdout);
    assert.match(pull.stderr, /don't know how to build these paths/);
    assert.match(pull.stderr, new RegExp(`^\\s+${atticPath}$`, "m"));

    const hash = atticPath.slice("/nix/store/".length, "/nix/store/".length + 32);
    const curl = await sh(`curl http://localhost:8080/hello/${hash}.narinfo`);
    assert.equal(curl.stdout, '{"code":404,"error":"NoSuchObject","message":"The requested object does not exist."}');
  });

  test("attic cache configure hello --reset-retention-period, and attic cache info hello", async () => {
    const r = await ok(sh("attic cache configure hello --reset-retention-period"));
    assert.deepEqual(lines(r), ['✅ Configured "hello" on "local"']);
    const info = await ok(sh("attic cache info hello"));
    // the key `attic use` put into nix.conf earlier
    const publicKey = /^trusted-public-keys = (\S+)/m.exec(await readFile(join(dir, ".config", "nix", "nix.conf"), "utf8"))?.[1];
    assert.ok(publicKey?.startsWith("hello:"));
    assert.deepEqual(lines(info), [
      "               Public: true",
      `           Public Key: ${publicKey}`,
      `Binary Cache Endpoint: ${endpoint}/hello`,
      `         API Endpoint: ${endpoint}/`,
      "      Store Directory: /nix/store",
      "             Priority: 41",
      '  Upstream Cache Keys: ["cache.nixos.org-1"]',
      "     Retention Period: Global Default",
    ]);
  });

  test("attic cache destroy", async () => {
    const r = await ok(sh("attic cache destroy --no-confirm alice-stuff"));
    assert.deepEqual(lines(r), ["🗑️ The cache was destroyed."]);
    const gone = await sh("attic cache info alice-stuff");
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, "Error: NoSuchCache: The requested cache does not exist.\n");
  });
});
