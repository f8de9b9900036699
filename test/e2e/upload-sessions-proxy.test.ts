// Upload sessions behind a real reverse proxy that limits request bodies (Debian's nginx in front
// of a real atticd process with the default `[upload]` settings). Through `client_max_body_size
// 8m`: the real `attic push` of a path whose NAR is over 120 MB fails in one request (413, told in
// one line) and succeeds in parts, and real Nix pulls it back intact. Through nginx's default
// limit (1 MiB) a push goes on in smaller parts by itself; below 1 MiB it stops with one line
// naming the limit, never the proxy's HTML page. A push whose connection breaks in the middle
// (the client paused, the proxy stopped and started again) finishes without sending again the
// parts the server has, counted by the server; so does a push killed and run again (its session
// kept in the client's state folder); and an atticd killed in the middle of a session shows
// nothing of it.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { runAtticd, spawnAtticd, type AtticdProcess } from "../helpers/atticd-process.ts";
import { runNginxProxy, type NginxProcess } from "../helpers/nginx.ts";
import { dumpNar, nix, nixEnv, nixStore, NIX_OPTS, pathInfo } from "../helpers/nix.ts";
import { prepareServer, type ServerSetup } from "../helpers/server.ts";
import { ALL, atticClaims, mintHs256 } from "../helpers/tokens.ts";
import { runAttic, type RunResult } from "../unit/client/run-attic.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { waitFor } from "../helpers/wait.ts";

const MiB = 2 ** 20;
const TAG = `attic-sessions-${process.pid}-${Date.now().toString(36)}`;

let work: string;
let setup: ServerSetup;
let atticd: AtticdProcess;
let proxy: NginxProcess;
/** nginx with its default `client_max_body_size` (1 MiB) */
let proxy1m: NginxProcess;
/** a limit no part size gets under */
let proxyTiny: NginxProcess;
let token: string;
let env: NodeJS.ProcessEnv;
const paths: string[] = [];

/** A store path of one file of `size` incompressible bytes. */
async function randomPath(name: string, size: number): Promise<string> {
  const dir = join(work, `${TAG}-${name}`);
  await mkdir(dir);
  const cipher = createCipheriv("aes-128-ctr", randomBytes(16), Buffer.alloc(16, 0));
  await writeFile(join(dir, "data"), cipher.update(Buffer.alloc(size)));
  const path = await nixStore(["--add", dir]);
  await rm(dir, { recursive: true });
  paths.push(path);
  return path;
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${atticd.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
}

async function partBytes(): Promise<number> {
  const text = await (await fetch(`${atticd.url}/metrics`)).text();
  return Number(/^attic_upload_session_part_bytes_total (\d+)/m.exec(text)?.[1] ?? 0);
}

function push(args: string[], onSpawn?: (child: ChildProcess) => void): Promise<RunResult> {
  return runAttic(["push", ...args], { env, ...(onSpawn && { onSpawn }) });
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "attic-sessions-e2e-"));
  setup = await prepareServer({
    // the default part size: nothing about parts is configured but the staging folder
    top: `[upload]\nstaging-path = ${JSON.stringify(join(work, "staging"))}`,
    gc: `interval = "0"\nstale-grace-period = "1 hour"`,
  });
  atticd = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir });
  proxy = await runNginxProxy(atticd.url, "8m");
  proxy1m = await runNginxProxy(atticd.url, null);
  proxyTiny = await runNginxProxy(atticd.url, "512k");
  token = mintHs256(setup.secret, atticClaims("pusher", { "*": ALL }));
  const created = await api("/_api/v1/cache-config/big", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: true, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  assert.equal(created.status, 200, await created.text());
  const home = join(work, "home");
  await mkdir(join(home, "attic"), { recursive: true });
  const server = (name: string, p: NginxProcess) => `[servers.${name}]\nendpoint = "http://127.0.0.1:${p.port}/"\ntoken = "${token}"\n`;
  await writeFile(join(home, "attic", "config.toml"), `default-server = "proxy"\n${server("proxy", proxy)}${server("proxy1m", proxy1m)}${server("tiny", proxyTiny)}`);
  env = nixEnv({ HOME: home, XDG_CONFIG_HOME: home });
});

after(async () => {
  await proxy?.close();
  await proxy1m?.close();
  await proxyTiny?.close();
  await atticd?.stop();
  await nixStore(["--delete", ...paths]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
  await rm(setup.dir, { recursive: true, force: true });
});

describe("upload sessions through nginx with client_max_body_size 8m", () => {
  test("a NAR over 120 MB with the server's defaults: one PUT gets 413, told in one line; parts get through, and Nix pulls it intact", async () => {
    const path = await randomPath("big", 115 * MiB);
    const [info] = await pathInfo([path]);
    assert.ok(info!.narSize > 120_000_000);

    let t = performance.now();
    const lap = (what: string) => {
      console.log(`${what}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      t = performance.now();
    };
    lap("store path");
    const single = await push(["big", path, "--chunk-size", "0"]);
    lap("single PUT");
    assert.notEqual(single.code, 0, single.stderr);
    assert.match(single.stderr, /HTTP 413\b.*client_max_body_size/);
    assert.doesNotMatch(single.stderr, /<html|<center|<\/?body/i, "no HTML page");

    const before = await partBytes();
    const inParts = await push(["big", path]);
    assert.equal(inParts.code, 0, inParts.stderr);
    assert.match(inParts.stderr, /✅ .*-big/);
    assert.equal((await partBytes()) - before, info!.narSize, "every byte sent once");
    lap("push in parts");

    const store = join(work, "pulled");
    const config = (await (await api("/_api/v1/cache-config/big")).json()) as { public_key: string };
    await nix("nix-store", [
      "--store", store, "-r", path, ...NIX_OPTS,
      "--option", "substituters", `http://127.0.0.1:${proxy.port}/big`,
      "--option", "trusted-public-keys", config.public_key,
      "--option", "require-sigs", "true",
    ]);
    lap("nix pull");
    assert.ok((await readFile(join(store, path, "data"))).equals(await readFile(join(path, "data"))), "the pulled file is the pushed one");
    await rm(store, { recursive: true, force: true });
  });

  test("behind nginx's default limit (1 MiB): the push goes on in smaller parts by itself, keeps that size, and says so in a line", async () => {
    const small = await randomPath("small-1m", 700 * 1024);
    const middle = await randomPath("middle-1m", 5 * MiB);
    const large = await randomPath("large-1m", 20 * MiB);
    const infos = await pathInfo([small, middle, large]);
    const before = await partBytes();
    const result = await push(["proxy1m:big", small, middle, large, "--jobs", "1"]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /<html|<center/i, "no HTML page");
    assert.match(result.stderr, /HTTP 413\); going on in parts of/);
    for (const p of [small, middle, large]) assert.equal((await fetch(`${atticd.url}/big/${p.slice(11, 43)}.narinfo`)).status, 200, p);
    // the NARs over 1 MiB went in parts of 1 MiB in the end; the small one in one request
    const inParts = infos.filter((i) => i.narSize > MiB).reduce((n, i) => n + i.narSize, 0);
    assert.equal((await partBytes()) - before, inParts, "every byte of the parts that got through sent once");
    // found once and kept: at most two refusals on the way from 8 MiB down to 1 MiB
    assert.ok((result.stderr.match(/going on in parts/g) ?? []).length <= 3, result.stderr);
  });

  test("behind a limit below 1 MiB: one line naming the proxy's limit, never its HTML page", async () => {
    const path = await randomPath("tiny", 3 * MiB);
    const result = await push(["tiny:big", path]);
    assert.notEqual(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /<html|<center|<\/?body/i, "no HTML page");
    assert.match(result.stderr, /refused a request body of 1\.00 MiB \(HTTP 413, even in parts of 1\.00 MiB\): raise its request body limit \(nginx: client_max_body_size\)/);
  });

  test("attic push killed mid-upload and run again resumes its session: the parts the server has are not sent again", async () => {
    const path = await randomPath("killed", 24 * MiB);
    const [info] = await pathInfo([path]);
    const before = await partBytes();
    let client: ChildProcess | undefined;
    const first = push(["big", path, "--chunk-size", String(MiB)], (c) => (client = c));
    const deadline = Date.now() + 60_000;
    while ((await partBytes()) - before < 6 * MiB) {
      assert.ok(Date.now() < deadline, "the first push sent 6 MiB within a minute");
      await sleep(5);
    }
    client!.kill("SIGKILL");
    await first;
    const atKill = (await partBytes()) - before;
    assert.ok(atKill < info!.narSize - 4 * MiB, "killed in the middle");
    const again = await push(["big", path, "--chunk-size", String(MiB)]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming the upload session of an earlier push: \d+ of \d+ parts are on the server/);
    const received = (await partBytes()) - before;
    // the part cut by the kill arrives again; nothing before it
    assert.ok(received <= info!.narSize + 2 * MiB, `received ${received} bytes for a NAR of ${info!.narSize}\n${again.stderr}`);
    assert.equal((await fetch(`${atticd.url}/big/${path.slice(11, 43)}.narinfo`)).status, 200);
  });

  test("a broken connection mid-session: the push finishes without resending the parts the server has", async () => {
    const path = await randomPath("cut", 24 * MiB);
    const [info] = await pathInfo([path]);
    const before = await partBytes();
    let client: ChildProcess | undefined;
    const running = push(["big", path, "--chunk-size", String(MiB)], (c) => (client = c));
    await waitFor(async () => (await partBytes()) - before >= 4 * MiB, { what: "4 MiB of parts at the server", timeoutMs: 120_000, intervalMs: 5 });
    client!.kill("SIGSTOP");
    const atPause = (await partBytes()) - before;
    assert.ok(atPause < info!.narSize - 4 * MiB, "paused in the middle");
    await proxy.stop();
    client!.kill("SIGCONT");
    // the outage (a fault, not a wait for something): its connection was cut when the proxy stopped
    await sleep(1000);
    await proxy.start();
    const result = await running;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /resuming/);
    const received = (await partBytes()) - before;
    // the part in flight when the proxy stopped is sent again; nothing before it
    assert.ok(received >= info!.narSize && received <= info!.narSize + MiB, `received ${received} bytes for a NAR of ${info!.narSize}\n${result.stderr}\n${atticd.stderr().slice(-3000)}`);
    const narinfo = await fetch(`http://127.0.0.1:${proxy.port}/big/${path.slice(11, 43)}.narinfo`);
    assert.equal(narinfo.status, 200);
  });

  test("atticd killed mid-session: nothing visible, the session is gone, a new push succeeds", async () => {
    const path = await randomPath("kill", 3 * MiB);
    const [info] = await pathInfo([path]);
    const hash = path.slice(11, 43);
    const started = await api("/_api/v1/upload-path/sessions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        nar_info: { cache: "big", store_path_hash: hash, store_path: path, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: NixHash.parse(info!.narHash).toTypedBase16(), nar_size: info!.narSize },
        chunk_size: MiB,
      }),
    });
    const session = (await started.json()) as { kind: string; session_id: string; chunk_size: number };
    assert.equal(session.kind, "session", JSON.stringify(session));
    const bytes = await dumpNar(path);
    for (const seq of [0, 2]) {
      const res = await api(`/_api/v1/upload-path/sessions/${session.session_id}/parts/${seq}`, { method: "PUT", body: bytes.subarray(seq * session.chunk_size, (seq + 1) * session.chunk_size) });
      assert.equal(res.status, 200, await res.text());
    }
    await atticd.stop("SIGKILL");
    atticd = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir, port: Number(new URL(atticd.url).port) });
    assert.equal((await fetch(`${atticd.url}/big/${hash}.narinfo`)).status, 404, "nothing visible");
    // the new process cannot know the session's holder is gone until its heartbeat is overdue
    // (it could be another replica): 503, retry; then 409, start a new session
    const part = await waitFor(async () => {
      const res = await api(`/_api/v1/upload-path/sessions/${session.session_id}/parts/1`, { method: "PUT", body: bytes.subarray(session.chunk_size, 2 * session.chunk_size) });
      if (res.status !== 503) return res;
      await res.arrayBuffer();
      return undefined;
    }, { what: "the new process to stop answering 503 for the dead holder's session", timeoutMs: 60_000, intervalMs: 500 });
    const refused = (await part.json()) as { error: string; message: string };
    assert.equal(part.status, 409, JSON.stringify(refused));
    assert.equal(refused.error, "UploadSessionFailed");
    // once the grace period (1 s for this run) is over, GC takes what the killed server left: its
    // pending NAR, the session (a run before that takes nothing: run until it has)
    const gcConfig = join(setup.dir, "gc.toml");
    await writeFile(gcConfig, setup.configToml.replace(`stale-grace-period = "1 hour"`, `stale-grace-period = "1s"`));
    let gc = { code: -1, stderr: "", stdout: "" };
    await waitFor(async () => {
      gc = await runAtticd(["-f", gcConfig, "--mode", "garbage-collector-once"], { ATTIC_LOG_LEVEL: "info" });
      assert.equal(gc.code, 0, gc.stderr);
      const res = await api(`/_api/v1/upload-path/sessions/${session.session_id}`);
      await res.arrayBuffer();
      return res.status === 404;
    }, { what: "garbage-collector-once to reap the killed server's session", timeoutMs: 60_000, intervalMs: 200 });
    const gone = await api(`/_api/v1/upload-path/sessions/${session.session_id}`);
    assert.equal(gone.status, 404, `the session's row is reaped: ${await gone.text()}\n${gc.stderr}`);
    const result = await push(["big", path]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await fetch(`${atticd.url}/big/${hash}.narinfo`)).status, 200);
  });
});
