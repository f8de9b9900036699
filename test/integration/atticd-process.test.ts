// atticd as users run it: the first-run setup and banner, config errors, the modes, graceful
// shutdown on SIGTERM, and a crash (SIGKILL) in the middle of an upload.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { runAtticd, spawnAtticd } from "../helpers/atticd-process.ts";
import { prepareServer } from "../helpers/server.ts";
import { atticClaims, ALL, mintHs256 } from "../helpers/tokens.ts";
import { narFixture, seededBytes, uploadInfo, type NarFixture } from "../helpers/nar.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { waitFor } from "../helpers/wait.ts";
import { openDatabase } from "../../src/db/connect.ts";

function xdgEnv(home: string): NodeJS.ProcessEnv {
  return { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_DATA_HOME: join(home, ".local/share"), ATTIC_SERVER_CONFIG_BASE64: "" };
}

async function createCache(url: string, token: string, name: string): Promise<void> {
  const res = await fetch(`${url}/_api/v1/cache-config/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  assert.equal(res.status, 200, await res.text());
}

const uploadHeader = (fx: NarFixture, cache: string): string => JSON.stringify(uploadInfo(fx, cache));

/** Waits until the server (another process) is in the middle of an upload: its pending NAR row is there. */
async function uploadUnderway(databaseUrl: string): Promise<void> {
  const db = await openDatabase(databaseUrl);
  try {
    await waitFor(async () => (await db.kysely.selectFrom("nar").select("id").where("state", "=", "P").execute()).length > 0, {
      what: "the upload to be underway (its pending NAR row)",
      intervalMs: 50,
    });
  } finally {
    await db.close();
  }
}

/** Starts a PUT upload-path whose body is sent in two halves; returns hooks to drive it. */
function slowUpload(url: string, token: string, fx: NarFixture, cache: string) {
  const u = new URL(`${url}/_api/v1/upload-path`);
  let status = 0;
  let body = "";
  const req = request({
    host: u.hostname,
    port: u.port,
    path: u.pathname,
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "x-attic-nar-info": uploadHeader(fx, cache), "transfer-encoding": "chunked" },
  });
  const done = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on("response", (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (b: Buffer) => (body += b.toString()));
      res.on("end", () => resolve({ status, body }));
    });
    req.on("error", reject);
  });
  const half = Math.floor(fx.nar.length / 2);
  req.write(fx.nar.subarray(0, half));
  return {
    done,
    finish: () => req.end(fx.nar.subarray(half)),
    abort: () => req.destroy(),
  };
}

describe("atticd process", () => {
  test("first run writes a config, prints a working root token once; the second start reuses it", async () => {
    const home = mkdtempSync(join(tmpdir(), "attic-home-"));
    try {
      const env = xdgEnv(home);
      const first = await spawnAtticd({ env, readyText: "Enjoy!" });
      const out = first.stderr();
      const m = /attic login local (http:\/\/localhost:(\d+)) (\S+)/.exec(out);
      assert.ok(m, out);
      assert.equal(Number(m[2]), Number(new URL(first.url).port), "the banner names the real port");
      const token = m[3]!;
      const configPath = join(home, ".config/attic/server.toml");
      assert.ok(existsSync(configPath));
      const config = readFileSync(configPath, "utf8");
      assert.match(config, /sqlite:\/\//);
      assert.match(config, /nar-size-threshold = 65536/);
      await createCache(first.url, token, "hello");
      assert.equal(await first.stop(), 0);

      const second = await spawnAtticd({ env });
      try {
        // the same secret: the first token still works, the cache is still there
        const res = await fetch(`${second.url}/_api/v1/cache-config/hello`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.status, 200);
      } finally {
        // a clean exit on SIGTERM: the process got past the point where a banner is printed
        assert.equal(await second.stop(), 0, second.stderr());
      }
      assert.doesNotMatch(second.stderr(), /attic login/);
      const secret = /token-hs256-secret-base64 = "([^"]+)"/.exec(config)?.[1];
      assert.ok(secret, "the first-run config holds a signing secret");
      assert.ok(!out.includes(secret), "the secret is not printed");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("config errors name the key and the file; check-config accepts a good one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "attic-cfg-"));
    try {
      const bad = join(dir, "bad.toml");
      writeFileSync(bad, `listen = "127.0.0.1:0"\nbogus-key = 1\n[database]\nurl = "sqlite://${dir}/x.db"\n[storage]\ntype = "local"\npath = "${dir}/s"\n[chunking]\nnar-size-threshold = 1\nmin-size = 4096\navg-size = 1024\nmax-size = 8192\n`);
      const r = await runAtticd(["-f", bad, "--mode", "check-config"], { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: Buffer.alloc(32, 1).toString("base64") });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /bogus-key/);
      assert.match(r.stderr, /bad\.toml/);
      assert.match(r.stderr, /min-size|avg-size/);

      const setup = await prepareServer();
      const good = join(setup.dir, "server.toml");
      writeFileSync(good, setup.configToml);
      const ok = await runAtticd(["-f", good, "--mode", "check-config"]);
      assert.equal(ok.code, 0, ok.stderr);
      rmSync(setup.dir, { recursive: true, force: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a host name as listen address: -l exits 2 with one line, the config key gives the same message", async () => {
    const home = mkdtempSync(join(tmpdir(), "attic-home-"));
    try {
      const message = 'expected a socket address such as "[::]:8080" or "127.0.0.1:8080", got "localhost:80" (host names are not allowed)';
      const flag = await runAtticd(["-l", "localhost:80"], xdgEnv(home));
      assert.equal(flag.code, 2, flag.stderr);
      assert.equal(flag.stderr, `Error: option '-l, --listen <addr>' argument 'localhost:80' is invalid. ${message}\n(add --help for more information)\n`);
      assert.ok(!existsSync(join(home, ".config/attic/server.toml")), "refused before the first-run setup");

      const configPath = join(home, "server.toml");
      writeFileSync(configPath, `listen = "localhost:80"\n[database]\nurl = "sqlite://${home}/x.db"\n[storage]\ntype = "local"\npath = "${home}/s"\n[chunking]\nnar-size-threshold = 1\nmin-size = 4096\navg-size = 8192\nmax-size = 16384\n`);
      const key = await runAtticd(["-f", configPath], { ...xdgEnv(home), ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: Buffer.alloc(32, 1).toString("base64") });
      assert.equal(key.code, 1, key.stderr);
      assert.ok(key.stderr.includes(`Error: invalid server configuration: ${configPath}: listen: ${message}\n`), key.stderr);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("api-server refuses an unmigrated database; db-migrations then api-server works", async () => {
    const setup = await prepareServer();
    const configPath = join(setup.dir, "server.toml");
    writeFileSync(configPath, setup.configToml);
    try {
      const refused = await spawnAtticd({ configPath, mode: "api-server", readyText: null });
      const code = await refused.exited;
      assert.notEqual(code, 0);
      assert.match(refused.stderr(), /not migrated/);
      assert.match(refused.stderr(), /db-migrations/);
      const migrated = await runAtticd(["-f", configPath, "--mode", "db-migrations"]);
      assert.equal(migrated.code, 0, migrated.stderr);
      const api = await spawnAtticd({ configPath, mode: "api-server" });
      try {
        const health = await fetch(`${api.url}/healthz`);
        assert.equal(health.status, 200);
      } finally {
        assert.equal(await api.stop(), 0);
      }
    } finally {
      rmSync(setup.dir, { recursive: true, force: true });
    }
  });

  test("SIGTERM: an upload in flight finishes, then the process exits 0 and accepts nothing new", async () => {
    const setup = await prepareServer();
    const server = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
    try {
      const token = mintHs256(setup.secret, atticClaims("root", { "*": ALL }));
      await createCache(server.url, token, "c");
      const fx = narFixture(seededBytes(600_000, 5), "inflight");
      const upload = slowUpload(server.url, token, fx, "c");
      await uploadUnderway(setup.databaseUrl);
      server.child.kill("SIGTERM");
      await waitFor(() => server.stderr().includes("Received SIGTERM, shutting down gracefully"), { what: "atticd to start shutting down" });
      upload.finish();
      const result = await upload.done;
      assert.equal(result.status, 200, result.body);
      assert.equal(JSON.parse(result.body).kind, "Uploaded");
      assert.equal(await server.exited, 0);
      await assert.rejects(fetch(`${server.url}/`));
    } finally {
      await server.stop();
      rmSync(setup.dir, { recursive: true, force: true });
    }
  });

  test("SIGKILL mid-upload: after a restart nothing is visible, a re-upload works and serves intact", async () => {
    const setup = await prepareServer({ chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 } });
    const token = mintHs256(setup.secret, atticClaims("root", { "*": ALL }));
    const fx = narFixture(seededBytes(900_000, 6), "crash");
    const first = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
    try {
      await createCache(first.url, token, "c");
      const upload = slowUpload(first.url, token, fx, "c");
      upload.done.catch(() => {});
      await uploadUnderway(setup.databaseUrl);
      first.child.kill("SIGKILL");
      await first.exited;
      upload.abort();

      const second = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
      try {
        const auth = { authorization: `Bearer ${token}` };
        assert.equal((await fetch(`${second.url}/c/${fx.storePathHash}.narinfo`, { headers: auth })).status, 404);
        assert.equal((await fetch(`${second.url}/c/nar/${fx.storePathHash}.nar`, { headers: auth })).status, 404);
        const res = await fetch(`${second.url}/_api/v1/upload-path`, {
          method: "PUT",
          headers: { ...auth, "x-attic-nar-info": uploadHeader(fx, "c") },
          body: fx.nar,
        });
        assert.equal(res.status, 200, await res.text());
        const info = parseNarInfo(await (await fetch(`${second.url}/c/${fx.storePathHash}.narinfo`, { headers: auth })).text());
        const nar = Buffer.from(await (await fetch(`${second.url}/c/${info.url}`, { headers: auth })).arrayBuffer());
        assert.ok((await decompressWithCli(info.compression ?? "none", nar)).equals(fx.nar));
      } finally {
        await second.stop();
      }
    } finally {
      await first.stop();
      rmSync(setup.dir, { recursive: true, force: true });
    }
  });
});
