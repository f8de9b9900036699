// A real atticd process for benchmarks, on a backend pair, with helpers to create caches and to
// push a store path through the API (nix-store --dump streamed into PUT /_api/v1/upload-path).
import { spawn, execFileSync } from "node:child_process";
import { request } from "node:http";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startFaultProxy, type FaultProxy } from "../../test/helpers/s3-fault-proxy.ts";
import { pipeline } from "node:stream/promises";
import { spawnAtticd, type AtticdProcess } from "../../test/helpers/atticd-process.ts";
import { prepareServer } from "../../test/helpers/server.ts";
import { atticClaims, ALL, mintHs256 } from "../../test/helpers/tokens.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { openDatabase } from "../../src/db/connect.ts";
import { backendFor } from "../backends.ts";

export const NIX_ENV = { ...process.env, NIX_REMOTE: "" };
export const NIX_OPTS = ["--option", "build-users-group", "", "--extra-experimental-features", "nix-command"];

export function nix(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { env: NIX_ENV, encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "pipe"] });
}

export interface PathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
}

/** Add a folder to the Nix store and return its path info. */
export function addToStore(folder: string): PathInfo {
  const path = nix(["nix-store", "--add", folder, ...NIX_OPTS.slice(0, 3)]).trim();
  return pathInfo(path);
}

export function pathInfo(path: string): PathInfo {
  const info = JSON.parse(nix(["nix", "path-info", "--json", path, ...NIX_OPTS]))[0] as { narHash: string; narSize: number; references?: string[] };
  return { path, narHash: info.narHash, narSize: info.narSize, references: info.references ?? [] };
}

export interface BenchServer {
  proc: AtticdProcess;
  url: string;
  /** a token with every permission on every cache */
  token: string;
  createCache(name: string, isPublic: boolean): Promise<string>;
  push(cache: string, info: PathInfo): Promise<void>;
  /** compressed bytes of the valid chunks, from the server's database */
  storedBytes(): Promise<number>;
  /** S3 requests seen so far by method (counted at a proxy in front of the S3 server); {} on local storage */
  s3Requests(): Record<string, number>;
  /** files under the local storage folder (VERSION excluded); 0 on S3 */
  storageFiles(): number;
  /** stop atticd and start it again on the same port, database and storage (a fresh process: its RSS starts over) */
  restart(): Promise<void>;
  /** on S3: the bucket's URL through the counting proxy and straight at the S3 server (the test S3 server takes unsigned requests) */
  s3Bucket?: { viaProxy: string; direct: string };
  stop(): Promise<void>;
}

/** `env`: extra environment for atticd (e.g. NODE_OPTIONS with --cpu-prof). */
export async function startBenchServer(
  spec: string,
  compression: { type: string; level: number },
  top = "",
  env: NodeJS.ProcessEnv = {},
  /** extra `[storage]` lines, e.g. `packs = false` */
  storageExtra = "",
): Promise<BenchServer> {
  const backend = await backendFor(spec);
  // S3 requests are counted at a pass-through proxy in front of the S3 server (no faults)
  const proxy: FaultProxy | null = backend.storage === "s3" ? await startFaultProxy(process.env.ATTIC_TEST_S3_ENDPOINT!) : null;
  const setup = await prepareServer({ backend, compression, top, ...(proxy ? { s3Endpoint: proxy.endpoint } : {}), ...(storageExtra ? { storageExtra } : {}) });
  // at the level an operator runs it (the tests' default is warn)
  let proc = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir, env: { ATTIC_LOG_LEVEL: "info", ...env } });
  const token = mintHs256(setup.secret, atticClaims("bench", { "*": ALL }));
  const auth = { authorization: `Bearer ${token}` };
  const bench: BenchServer = {
    proc,
    url: proc.url,
    token,
    async createCache(name, isPublic) {
      const created = await fetch(`${proc.url}/_api/v1/cache-config/${name}`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ keypair: "Generate", is_public: isPublic, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
      });
      if (!created.ok) throw new Error(`create cache: ${created.status} ${await created.text()}`);
      const res = await fetch(`${proc.url}/_api/v1/cache-config/${name}`, { headers: auth });
      return ((await res.json()) as { public_key: string }).public_key;
    },
    async push(cache, info) {
      const dump = spawn("nix-store", ["--dump", info.path], { env: NIX_ENV, stdio: ["ignore", "pipe", "inherit"] });
      const narInfo = {
        cache,
        store_path_hash: info.path.slice(11, 43),
        store_path: info.path,
        references: info.references.map((r) => r.slice(11)),
        system: null,
        deriver: null,
        sigs: [],
        ca: null,
        nar_hash: NixHash.parse(info.narHash).toTypedBase16(),
        nar_size: info.narSize,
      };
      const req = request(`${proc.url}/_api/v1/upload-path`, {
        method: "PUT",
        headers: { ...auth, "x-attic-nar-info": JSON.stringify(narInfo), "content-type": "application/octet-stream" },
      });
      const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
        req.on("response", (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (s: string) => (body += s));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
      });
      await pipeline(dump.stdout, req);
      const { status, body } = await response;
      if (status !== 200) throw new Error(`upload: ${status} ${body}`);
    },
    async storedBytes() {
      const db = await openDatabase(setup.databaseUrl, { poolSize: 1 });
      try {
        const row = await db.kysely
          .selectFrom("chunk")
          .select((eb) => eb.fn.sum("file_size").as("total"))
          .where("state", "=", "V")
          .executeTakeFirstOrThrow();
        return Number(row.total ?? 0);
      } finally {
        await db.close();
      }
    },
    s3Requests() {
      const counts: Record<string, number> = {};
      for (const r of proxy?.seen ?? []) counts[r.method] = (counts[r.method] ?? 0) + 1;
      return counts;
    },
    storageFiles() {
      if (backend.storage !== "local") return 0;
      const entries = readdirSync(join(setup.dir, "storage"), { recursive: true, withFileTypes: true });
      return entries.filter((e) => e.isFile() && e.name !== "VERSION").length;
    },
    async restart() {
      const port = Number(new URL(proc.url).port);
      await proc.stop();
      proc = await spawnAtticd({ configToml: setup.configToml, dir: setup.dir, port, env: { ATTIC_LOG_LEVEL: "info", ...env } });
      bench.proc = proc;
    },
    ...(proxy && setup.bucket ? { s3Bucket: { viaProxy: `${proxy.endpoint}/${setup.bucket}`, direct: `${process.env.ATTIC_TEST_S3_ENDPOINT}/${setup.bucket}` } } : {}),
    async stop() {
      await proc.stop();
      await proxy?.close();
      rmSync(setup.dir, { recursive: true, force: true });
    },
  };
  return bench;
}
