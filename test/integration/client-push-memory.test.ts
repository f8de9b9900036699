// `attic push` streams a NAR with backpressure end to end: the real CLI (a child process) pushes
// a ~400 MiB store path of incompressible files, made with real Nix, to a stand-in server that
// speaks just enough of the API (cache config, get-missing-paths, upload-path) and reads the
// upload slowly. The client's peak RSS must stay far below the NAR's size (a client that
// buffers the NAR goes past the bound by hundreds of MiB), and the server must receive the NAR
// byte for byte. The same push over https, to a server with a throwaway certificate, checks
// that both schemes work.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { NixCliStore } from "../../src/client/nix-store.ts";
import { nixEnv, nixStore } from "../helpers/nix.ts";
import { trackPeakRss } from "../helpers/peak-rss.ts";
import { runAttic } from "../unit/client/run-attic.ts";

const MiB = 2 ** 20;
const FILES = 4;
const FILE_SIZE = 100 * MiB;
const PEAK_RSS_LIMIT = 200 * MiB;
/** how fast the stand-in server reads an upload, with a longer pause every PAUSE_EVERY bytes */
const READ_RATE = 40 * MiB;
const PAUSE_EVERY = 64 * MiB;
const PAUSE_MS = 300;

const TAG = `attic-push-memory-${process.pid}-${Date.now().toString(36)}`;
const store = new NixCliStore(nixEnv());
let work: string;
let bigPath: string;
let smallPath: string;

/** `count` files of `size` bytes of AES-CTR keystream (incompressible) in a new folder. */
async function randomFolder(dir: string, count: number, size: number): Promise<string> {
  await mkdir(dir);
  const zeros = Buffer.alloc(Math.min(size, 4 * MiB));
  for (let i = 0; i < count; i++) {
    const cipher = createCipheriv("aes-128-ctr", randomBytes(16), Buffer.alloc(16, 0));
    const parts: Buffer[] = [];
    for (let left = size; left > 0; left -= zeros.length) parts.push(cipher.update(zeros.subarray(0, Math.min(left, zeros.length))));
    await writeFile(join(dir, `file-${i}`), Buffer.concat(parts));
  }
  return dir;
}

async function addToStore(dir: string): Promise<string> {
  return (await nixStore(["--add", dir])).trim();
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "attic-push-memory-"));
  bigPath = await addToStore(await randomFolder(join(work, `${TAG}-big`), FILES, FILE_SIZE));
  smallPath = await addToStore(await randomFolder(join(work, `${TAG}-small`), 1, MiB));
  await rm(join(work, `${TAG}-big`), { recursive: true });
});

after(async () => {
  // Nothing refers to these paths: give the disk space back.
  await nixStore(["--delete", bigPath, smallPath]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

interface Received {
  info: { store_path: string; nar_hash: string; nar_size: number };
  size: number;
  hash: string;
}

/** Reads at `rate` bytes/s, pausing longer now and then; hashes what arrives. */
async function readSlowly(req: IncomingMessage, rate: number): Promise<{ size: number; hash: string }> {
  const hash = createHash("sha256");
  const start = performance.now();
  let size = 0;
  let paused = 0;
  let nextPause = PAUSE_EVERY;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    if (size >= nextPause) {
      nextPause += PAUSE_EVERY;
      paused += PAUSE_MS;
      await sleep(PAUSE_MS);
    }
    const ahead = (size / rate) * 1000 + paused - (performance.now() - start);
    if (ahead > 5) await sleep(ahead);
  }
  return { size, hash: `sha256:${hash.digest("hex")}` };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readAll(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts).toString("utf8");
}

/** Just enough of `/_api/v1` for `attic push` to cache "c": every path is missing. */
function atticLite(received: Received[], readRate: number): RequestListener {
  return (req, res) => {
    void (async () => {
      if (req.method === "GET" && req.url === "/_api/v1/cache-config/c") {
        return json(res, 200, { is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
      }
      if (req.method === "POST" && req.url === "/_api/v1/get-missing-paths") {
        const body = JSON.parse(await readAll(req)) as { store_path_hashes: string[] };
        return json(res, 200, { missing_paths: body.store_path_hashes });
      }
      if (req.method === "PUT" && req.url === "/_api/v1/upload-path") {
        const info = JSON.parse(String(req.headers["x-attic-nar-info"])) as Received["info"];
        const got = await readSlowly(req, readRate);
        received.push({ info, ...got });
        return json(res, 200, { kind: "Uploaded", file_size: got.size, frac_deduplicated: 0 });
      }
      json(res, 404, { code: 404, error: "NotFound", message: "The URL you requested was not found." });
    })().catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  };
}

async function listen(server: Server, scheme: "http" | "https"): Promise<{ url: string; close(): Promise<void> }> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function clientEnv(extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const home = await mkdtemp(join(work, "home-"));
  return nixEnv({ HOME: home, XDG_CONFIG_HOME: join(home, "config"), ...extra });
}

test(`attic push of a ${(FILES * FILE_SIZE) / MiB} MiB NAR to a slow reader stays under ${PEAK_RSS_LIMIT / MiB} MiB RSS`, async () => {
  const [info] = await store.pathInfos([bigPath]);
  const received: Received[] = [];
  const server = await listen(createServer(atticLite(received, READ_RATE)), "http");
  try {
    const env = await clientEnv();
    assert.equal((await runAttic(["login", "local", server.url, "tok"], { env })).code, 0);
    let rss: ReturnType<typeof trackPeakRss> | undefined;
    const r = await runAttic(["push", "c", bigPath], { env, onSpawn: (child) => (rss = trackPeakRss(child.pid!)) });
    rss!.stop();
    const peak = rss!.peak();
    console.log(`attic push: peak RSS ${(peak / MiB).toFixed(0)} MiB for a ${(info!.narSize / MiB).toFixed(0)} MiB NAR`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /✅ All done! \(0 already cached, 0 in upstream\)\n$/);
    assert.equal(received.length, 1);
    assert.equal(received[0]!.info.store_path, bigPath);
    assert.equal(received[0]!.size, info!.narSize, "the whole NAR arrived");
    assert.equal(received[0]!.hash, info!.narHash, "the NAR arrived byte for byte");
    assert.ok(peak > 0, "RSS was sampled");
    assert.ok(peak < PEAK_RSS_LIMIT, `peak RSS ${(peak / MiB).toFixed(0)} MiB`);
  } finally {
    await server.close();
  }
});

test("attic push over https (a throwaway certificate the client is told to trust)", async () => {
  const tls = await mkdtemp(join(work, "tls-"));
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-keyout", join(tls, "key.pem"), "-out", join(tls, "cert.pem"), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
  ]);
  const [key, cert] = await Promise.all([readFile(join(tls, "key.pem")), readFile(join(tls, "cert.pem"))]);
  const [info] = await store.pathInfos([smallPath]);
  const received: Received[] = [];
  const server = await listen(createHttpsServer({ key, cert }, atticLite(received, Infinity)), "https");
  try {
    const env = await clientEnv({ NODE_EXTRA_CA_CERTS: join(tls, "cert.pem") });
    assert.equal((await runAttic(["login", "local", server.url, "tok"], { env })).code, 0);
    const r = await runAttic(["push", "c", smallPath], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(received.length, 1);
    assert.equal(received[0]!.hash, info!.narHash);
    assert.equal(received[0]!.size, info!.narSize);
  } finally {
    await server.close();
  }
});
