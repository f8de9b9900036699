// The client's access to a real Nix store (Nix 2.8 here) and whole pushes to a real server:
// closures, path info, streamed NAR dumps, path resolution through `./result`; then `attic push`
// to atticd (buildApp on SQLite + local storage) and `nix-store -r` pulling the paths back
// through the substituter `attic use` configured, retries through a flaky proxy, and refusals.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, symlink } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { NixError } from "../../src/client/errors.ts";
import { NixCliStore } from "../../src/client/nix-store.ts";
import { buildChain, nixBuild, nixCommand, nixEnv, nixStore, textDrv } from "../helpers/nix.ts";
import { createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { json, startFakeServer } from "../unit/client/fakes.ts";
import { runAttic } from "../unit/client/run-attic.ts";

const TAG = `attic-client-${process.pid}-${Date.now().toString(36)}`;
const base = (p: string): string => p.slice("/nix/store/".length);
const hashOf = (p: string): string => base(p).slice(0, 32);

let chain: { a: string; b: string; c: string };
let upstreamSigned: string;
/** ~1.5 MiB of random bytes: chunked by the server (threshold 64 KiB), several chunks */
let big: string;
let many: string[];

before(async () => {
  chain = await buildChain(TAG);
  // a path carrying a signature by a key named like cache.nixos.org's, for the upstream filter
  const keyDir = await mkdtemp(join(tmpdir(), "attic-client-key-"));
  await nixStore(["--generate-binary-cache-key", "cache.nixos.org-1", join(keyDir, "sk"), join(keyDir, "pk")]);
  upstreamSigned = (await nixBuild(textDrv(`${TAG}-upstream`, "from upstream")))[0]!;
  await nixCommand(["store", "sign", "--key-file", join(keyDir, "sk"), upstreamSigned]);
  big = (
    await nixBuild(
      `derivation { name = "${TAG}-big"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" "head -c 1500000 /dev/urandom > $out" ]; }`,
    )
  )[0]!;
  many = await nixBuild(`[ ${Array.from({ length: 10 }, (_, i) => `(${textDrv(`${TAG}-many-${i}`, `many ${i}`)})`).join(" ")} ]`);
});

/** Pids of live `nix-store --dump <path>` processes (an exited child's zombie has no command line). */
function narDumpsOf(path: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited while we looked
    }
    if (argv[0]?.endsWith("nix-store") && argv[1] === "--dump" && argv[2] === path) pids.push(Number(entry));
  }
  return pids;
}

describe("NixCliStore against real Nix", () => {
  const store = new NixCliStore(nixEnv());

  test("closure and path info", async () => {
    const closure = await store.closure([chain.c]);
    assert.deepEqual([...closure].sort(), [chain.a, chain.b, chain.c].sort());
    const infos = await store.pathInfos(closure);
    const c = infos.find((i) => i.path === chain.c)!;
    assert.deepEqual(c.references, [chain.b]);
    assert.match(c.narHash, /^sha256:[0-9a-f]{64}$/);
    assert.ok(c.narSize > 0);
    assert.equal(c.deriver?.endsWith(`-${TAG}-c.drv`), true);
    const signed = await store.pathInfos([upstreamSigned]);
    assert.match(signed[0]!.sigs[0] ?? "", /^cache\.nixos\.org-1:/);
    // closure and metadata in one call, overlapping roots counted once
    const together = await store.closurePathInfos([chain.c, chain.b]);
    assert.deepEqual(together.map((i) => i.path).sort(), [chain.a, chain.b, chain.c].sort());
    assert.deepEqual(together.find((i) => i.path === chain.c), c);
  });

  test("the NAR stream hashes to the narHash Nix recorded", async () => {
    for (const info of await store.pathInfos([chain.a, chain.b, chain.c, big])) {
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of store.nar(info.path)) {
        hash.update(chunk);
        size += chunk.length;
      }
      assert.equal(`sha256:${hash.digest("hex")}`, info.narHash);
      assert.equal(size, info.narSize);
    }
  });

  test("invalid paths are reported quickly and clearly", async () => {
    const ghost = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ghost";
    const start = Date.now();
    await assert.rejects(store.pathInfos([chain.a, ghost]), (err: unknown) => err instanceof NixError && err.message === `path '${ghost}' is not valid`);
    await assert.rejects(store.closure([ghost]), (err: unknown) => err instanceof NixError && err.message === `nix-store --query failed: path '${ghost}' is not valid`);
    await assert.rejects(store.closurePathInfos([chain.a, ghost]), (err: unknown) => err instanceof NixError && err.message === `nix path-info failed: path '${ghost}' is not valid`);
    assert.deepEqual(await store.validPaths([ghost, chain.a]), [chain.a]);
    assert.ok(Date.now() - start < 3000, "no substituter retries");
    // nix-store writes the NAR header before it notices: the stream must end in an error
    await assert.rejects(async () => {
      for await (const _ of store.nar(ghost));
    }, /nix-store --dump \/nix\/store\/a{32}-ghost failed: getting status of/);
  });

  test("aborting a NAR stream stops nix-store", async () => {
    const abort = new AbortController();
    const it = store.nar(big, abort.signal)[Symbol.asyncIterator]();
    try {
      await it.next();
      // 1.5 MB, read no further: nix-store now waits on a full pipe and would wait for ever
      assert.equal(narDumpsOf(big).length, 1, "nix-store --dump is running");
      abort.abort();
      const deadline = Date.now() + 5000;
      while (narDumpsOf(big).length > 0) {
        assert.ok(Date.now() < deadline, `nix-store --dump (pid ${narDumpsOf(big).join(", ")}) still running 5 s after the abort`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await it.return?.();
    }
  });
});

test("get-closure resolves ./result and prints the closure", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attic-client-result-"));
  await symlink(chain.c, join(dir, "result"));
  const r = await runAttic(["get-closure", "./result"], { env: nixEnv({ XDG_CONFIG_HOME: dir }), cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n").sort(), [chain.a, chain.b, chain.c].sort());
  const inside = await runAttic(["get-closure", `${chain.a}/some/file`], { env: nixEnv({ XDG_CONFIG_HOME: dir }), cwd: dir });
  assert.equal(inside.stdout, `${chain.a}\n`);
});

describe("attic push to a real atticd", () => {
  let server: TestServer;
  let home: string;
  let env: NodeJS.ProcessEnv;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    server = await startServer();
    await createCacheViaApi(server, "c");
    home = await mkdtemp(join(tmpdir(), "attic-client-home-"));
    // cache.nixos.org (in the substituters `attic use` writes) is unreachable here: fail fast
    env = nixEnv({ HOME: home, XDG_CONFIG_HOME: join(home, "config"), NIX_CONFIG: "connect-timeout = 2\ndownload-attempts = 1" });
    const login = await runAttic(["login", "local", server.url, server.rootToken()], { env });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    for (const close of closers) await close();
    await server.stop();
  });

  const narinfo = async (path: string): Promise<{ status: number; text: string }> => {
    const res = await server.fetch(`/c/${hashOf(path)}.narinfo`, { token: server.rootToken() });
    return { status: res.status, text: await res.text() };
  };

  test("a closure through ./result: cached and upstream-signed paths skipped, the rest uploaded and served", async () => {
    const first = await runAttic(["push", "c", "--no-closure", chain.a], { env });
    assert.equal(first.code, 0, first.stderr);
    await symlink(chain.c, join(home, "result"));

    const r = await runAttic(["push", "c", "./result", upstreamSigned, "-j", "2"], { env, cwd: home });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines[0], '⚙️ Pushing 2 paths to "c" on "local" (1 already cached, 1 in upstream)...');
    assert.equal(lines.length, 4, r.stderr);
    for (const p of [chain.b, chain.c]) {
      assert.ok(lines.some((l) => new RegExp(`^✅ ${base(p)} \\(\\d+(\\.\\d\\d)? (B|KiB|MiB)/s\\)$`).test(l)), `${p}:\n${r.stderr}`);
    }
    assert.equal(lines[3], "✅ All done! (1 already cached, 1 in upstream)");

    const c = await narinfo(chain.c);
    assert.equal(c.status, 200, c.text);
    assert.match(c.text, new RegExp(`^StorePath: ${chain.c}$`, "m"));
    assert.match(c.text, new RegExp(`^References: ${base(chain.b)}$`, "m"));
    assert.equal((await narinfo(upstreamSigned)).status, 404, "the upstream-signed path was not pushed");

    // everything is there now: nothing is uploaded
    const again = await runAttic(["push", "c", "./result"], { env, cwd: home });
    assert.equal(again.stderr, "✅ All done! (3 already cached, 0 in upstream)\n");
    const ignored = await runAttic(["push", "c", "--ignore-upstream-cache-filter", upstreamSigned], { env });
    assert.match(ignored.stderr, /^⚙️ Pushing 1 paths to "c" on "local" \(0 already cached, 0 in upstream\)\.\.\.$/m);
    assert.equal((await narinfo(upstreamSigned)).status, 200);
  });

  test("a chunked path in preamble mode; nix-store -r pulls the closure back through `attic use`", async () => {
    const pushed = await runAttic(["push", "c", "--force-preamble", big], { env });
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stderr, new RegExp(`^✅ ${base(big)} \\(`, "m"));

    const use = await runAttic(["use", "c"], { env });
    assert.equal(use.code, 0, use.stderr);
    assert.match(use.stderr, /\+ Access Token\n$/);
    const demo = await mkdtemp(join(tmpdir(), "attic-client-pull-"));
    for (const p of [chain.c, big]) {
      const out = await nixStore(["--store", demo, "-r", p], env);
      assert.equal(out.trim(), p);
    }
    assert.equal(await readFile(join(demo, chain.a), "utf8"), `a ${TAG}\n`);
    const original = await readFile(big);
    assert.ok((await readFile(join(demo, big))).equals(original), "the chunked NAR round-trips byte for byte");
  });

  test("push --stdin with 10 paths (and repeats) uploads each once", async () => {
    const input = [...many, "", ...many.slice(0, 3)].join("\n") + "\n";
    const r = await runAttic(["push", "c", "--stdin"], { env, input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.split("\n").filter((l) => new RegExp(`^✅ [a-z0-9]{32}-${TAG}-many-\\d `).test(l)).length, 10, r.stderr);
    assert.match(r.stderr, /✅ All done! \(0 already cached, 0 in upstream\)\n$/);
    for (const p of many) assert.equal((await narinfo(p)).status, 200);
  });

  test("a push without the push permission fails clearly with exit 1", async () => {
    const [fresh] = await nixBuild(textDrv(`${TAG}-refused`, "refused"));
    const pullOnly = server.token({ c: { r: 1 } });
    assert.equal((await runAttic(["login", "reader", server.url, pullOnly], { env })).code, 0);
    const r = await runAttic(["push", "reader:c", fresh!], { env });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "Error: AccessError: Access error: User does not have permission to complete this action.\n");

    const none = server.token({ other: { r: 1, w: 1 } });
    assert.equal((await runAttic(["login", "stranger", server.url, none], { env })).code, 0);
    const s = await runAttic(["push", "stranger:c", fresh!], { env });
    assert.equal(s.code, 1);
    assert.equal(s.stderr, "Error: Unauthorized: Unauthorized.\n");
  });

  test("transient upload failures (502, a dropped connection) are retried and the path arrives intact", async () => {
    const [p1, p2] = await nixBuild(`[ (${textDrv(`${TAG}-flaky-1`, "flaky one")}) (${textDrv(`${TAG}-flaky-2`, "flaky two")}) ]`);
    const proxy = await flakyProxy(server.url, ["502", "drop"]);
    closers.push(proxy.close);
    assert.equal((await runAttic(["login", "flaky", proxy.url, server.rootToken()], { env })).code, 0);
    const r = await runAttic(["push", "flaky:c", "-j", "1", p1!, p2!], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.uploads(), 4, "two failed attempts, then one upload per path");
    for (const p of [p1!, p2!]) assert.equal((await narinfo(p)).status, 200);
    assert.match(r.stderr, /✅ All done! \(0 already cached, 0 in upstream\)\n$/);
  });

  test("uploads failing for good are reported per path, the others still go, exit 1", async () => {
    const paths = await nixBuild(`[ ${[1, 2, 3].map((i) => `(${textDrv(`${TAG}-broken-${i}`, `broken ${i}`)})`).join(" ")} ]`);
    // one at a time: the first path meets three 502s (all its attempts), the second an immediate
    // refusal (not retried, answered before the body was read), the third goes through
    const proxy = await flakyProxy(server.url, ["502", "502", "502", "403"]);
    closers.push(proxy.close);
    assert.equal((await runAttic(["login", "broken", proxy.url, server.rootToken()], { env })).code, 0);
    const r = await runAttic(["push", "broken:c", "-j", "1", ...paths], { env });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.filter((l) => /^❌ [a-z0-9]{32}-.*-broken-\d: HTTP 502 Bad Gateway: upstream hiccup$/.test(l)).length, 1, r.stderr);
    const refused = /^❌ [a-z0-9]{32}-.*-broken-\d: AccessError: Access error: User does not have permission to complete this action\.$/;
    assert.equal(lines.filter((l) => refused.test(l)).length, 1, r.stderr);
    assert.equal(lines.filter((l) => /^✅ [a-z0-9]{32}-.*-broken-\d \(/.test(l)).length, 1, r.stderr);
    assert.equal(lines.at(-1), "Error: Failed to push 2 paths");
    assert.equal(proxy.uploads(), 5);
  });
});

/**
 * A proxy in front of the server whose first upload-path requests fail as `faults` says: "502"
 * answers Bad Gateway after reading the body, "403" refuses at once without reading it, "drop"
 * cuts the connection mid-body. The Host
 * header is passed on, so the api_endpoint the server advertises points back at the proxy.
 */
async function flakyProxy(target: string, faults: ("502" | "403" | "drop")[]): Promise<{ url: string; uploads(): number; close(): Promise<void> }> {
  const pending = [...faults];
  let uploads = 0;
  const { hostname, port } = new URL(target);
  const proxy: Server = createServer((req, res) => {
    if (req.url === "/_api/v1/upload-path") {
      uploads++;
      const fault = pending.shift();
      if (fault === "drop") {
        req.once("data", () => req.socket.destroy());
        return;
      }
      if (fault === "403") {
        return json(res, 403, { code: 403, error: "AccessError", message: "Access error: User does not have permission to complete this action." });
      }
      if (fault === "502") {
        req.resume();
        req.once("end", () => {
          res.writeHead(502, { "content-type": "text/plain" });
          res.end("upstream hiccup");
        });
        return;
      }
    }
    const upstream = request({ hostname, port, path: req.url, method: req.method, headers: req.headers }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    upstream.once("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    uploads: () => uploads,
    close: () =>
      new Promise((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  };
}

test("push talks to the api_endpoint the server advertises", async () => {
  const prefix = "/moved";
  const seen: string[] = [];
  const server = await startFakeServer((req, res) => {
    seen.push(req.url);
    if (req.method === "GET" && req.url === "/_api/v1/cache-config/c") {
      return json(res, 200, { api_endpoint: `${server.url}${prefix}/`, upstream_cache_key_names: [], store_dir: "/nix/store" });
    }
    if (req.url === `${prefix}/_api/v1/get-missing-paths`) return json(res, 200, { missing_paths: [] });
    json(res, 404, { code: 404, error: "NotFound", message: "The URL you requested was not found." });
  });
  try {
    const home = await mkdtemp(join(tmpdir(), "attic-client-moved-"));
    const env = nixEnv({ XDG_CONFIG_HOME: home, HOME: home });
    assert.equal((await runAttic(["login", "local", server.url, "tok"], { env })).code, 0);
    const r = await runAttic(["push", "c", chain.c], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(seen, ["/_api/v1/cache-config/c", `${prefix}/_api/v1/get-missing-paths`]);
  } finally {
    await server.close();
  }
});
