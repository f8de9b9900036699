// A real atticd for integration tests: the app built by buildApp() from a config parsed by the
// real loader, listening on a random loopback port (or, with `inject`, answering through
// app.inject() for route tests that need no socket), over one of the backend combinations
// {sqlite, postgres} × {local, s3}. Tokens come from test/helpers/tokens.ts (independent HS256).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/server/app.ts";
import { parseConfig } from "../../src/server/config/load.ts";
import type { Config } from "../../src/server/config/types.ts";
import { openDatabase, type Db } from "../../src/db/connect.ts";
import { migrate } from "../../src/db/migrations/index.ts";
import { createStorage } from "../../src/storage/index.ts";
import type { StorageDriver } from "../../src/storage/types.ts";
import type { Backend } from "./backends.ts";
import { createDatabase } from "./postgres.ts";
import { atticClaims, mintHs256, newSecret, ALL, type Flags } from "./tokens.ts";

export { ALL_BACKENDS, backendName, backendsFromEnv, type Backend, type DbKind, type StorageKind } from "./backends.ts";

export interface TestServer {
  url: string;
  app: FastifyInstance;
  config: Config;
  db: Db;
  storage: StorageDriver;
  dir: string;
  secret: Buffer;
  /** TOML text of the config (to run atticd/atticadm against the same setup) */
  configToml: string;
  databaseUrl: string;
  token(caches: Record<string, Flags>, extra?: Record<string, unknown>): string;
  rootToken(): string;
  /** fetch relative to the server URL, with an optional bearer token */
  fetch(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  stop(): Promise<void>;
}

export interface ServerOptions {
  backend?: Backend;
  /** extra top-level TOML lines */
  top?: string;
  chunking?: { threshold: number; min: number; avg: number; max: number };
  compression?: { type: string; level?: number };
  gc?: string;
  /** S3 endpoint the server talks to (default ATTIC_TEST_S3_ENDPOINT; e.g. a fault proxy in front of it) */
  s3Endpoint?: string;
  /** extra TOML lines in `[storage]` (e.g. `public-endpoint = "…"`, `packs = false`) */
  storageExtra?: string;
  /** PostgreSQL cluster URL to create the database in (default ATTIC_TEST_PG_URL) */
  pgClusterUrl?: string;
  /** fastify logger options (default: no logging), e.g. `{ level: "warn", stream }` to read the log */
  logger?: object;
  /** local storage folder (default `<dir>/storage`), e.g. a small tmpfs */
  storagePath?: string;
  /** extra TOML lines in `[nix-protocol]` (staging-path is always `<dir>/staging`) */
  nixProtocol?: string;
  /**
   * No socket: `fetch` goes through app.inject() (fastify's model for route logic). `url` is then
   * only a name (its host is sent as Host). Keep the default for streaming, keep-alive, aborts
   * and anything a real client or process must reach.
   */
  inject?: boolean;
}

export interface ServerSetup {
  dir: string;
  secret: Buffer;
  databaseUrl: string;
  /** TOML text of the config */
  configToml: string;
  /** the bucket when the storage is S3 */
  bucket?: string;
}

/**
 * A temporary folder, database (SQLite file or a fresh PostgreSQL database) and storage (local
 * folder or a fresh S3 bucket) with the TOML config that points at them. `share` reuses the
 * database and storage of an earlier setup (replicas of one deployment).
 */
export async function prepareServer(opts: ServerOptions = {}, share?: ServerSetup): Promise<ServerSetup> {
  const backend = opts.backend ?? { db: "sqlite", storage: "local" };
  const dir = mkdtempSync(join(tmpdir(), "attic-it-"));
  const secret = share?.secret ?? newSecret();
  const suffix = randomBytes(6).toString("hex");

  let databaseUrl: string;
  let bucket: string | undefined;
  if (share) databaseUrl = share.databaseUrl;
  else if (backend.db === "sqlite") databaseUrl = `sqlite://${join(dir, "server.db")}`;
  else {
    const cluster = opts.pgClusterUrl ?? process.env.ATTIC_TEST_PG_URL;
    if (!cluster) throw new Error("ATTIC_TEST_PG_URL is not set: run the tests through `npm test`");
    databaseUrl = await createDatabase(cluster, `it_${suffix}`);
  }

  let storageToml: string;
  if (backend.storage === "local") storageToml = `type = "local"\npath = ${JSON.stringify(opts.storagePath ?? join(share?.dir ?? dir, "storage"))}\n${opts.storageExtra ?? ""}`;
  else {
    const endpoint = process.env.ATTIC_TEST_S3_ENDPOINT;
    if (!endpoint) throw new Error("ATTIC_TEST_S3_ENDPOINT is not set: run the tests through `npm test`");
    bucket = share?.bucket ?? `attic-${suffix}`;
    if (!share) {
      const res = await fetch(`${endpoint}/${bucket}`, { method: "PUT" });
      if (!res.ok) throw new Error(`create bucket: ${res.status}`);
    }
    storageToml = [
      `type = "s3"`,
      `region = ${JSON.stringify(process.env.ATTIC_TEST_S3_REGION ?? "us-east-1")}`,
      `bucket = ${JSON.stringify(bucket)}`,
      `endpoint = ${JSON.stringify(opts.s3Endpoint ?? endpoint)}`,
      opts.storageExtra ?? "",
      `[storage.credentials]`,
      `access_key_id = ${JSON.stringify(process.env.ATTIC_TEST_S3_ACCESS_KEY_ID ?? "S3RVER")}`,
      `secret_access_key = ${JSON.stringify(process.env.ATTIC_TEST_S3_SECRET_ACCESS_KEY ?? "S3RVER")}`,
    ].join("\n");
  }
  const ch = opts.chunking ?? { threshold: 65536, min: 16384, avg: 65536, max: 262144 };
  const configToml = [
    `listen = "127.0.0.1:0"`,
    opts.top ?? "",
    `[database]`,
    `url = ${JSON.stringify(databaseUrl)}`,
    `[storage]`,
    storageToml,
    `[chunking]`,
    `nar-size-threshold = ${ch.threshold}`,
    `min-size = ${ch.min}`,
    `avg-size = ${ch.avg}`,
    `max-size = ${ch.max}`,
    `[compression]`,
    `type = ${JSON.stringify(opts.compression?.type ?? "zstd")}`,
    opts.compression?.level !== undefined ? `level = ${opts.compression.level}` : "",
    `[garbage-collection]`,
    opts.gc ?? `interval = "0"`,
    `[nix-protocol]`,
    `staging-path = ${JSON.stringify(join(dir, "staging"))}`,
    opts.nixProtocol ?? "",
    `[jwt.signing]`,
    `token-hs256-secret-base64 = ${JSON.stringify(secret.toString("base64"))}`,
    "",
  ].join("\n");

  return { dir, secret, databaseUrl, configToml, bucket };
}

/** `share`: a replica on the database and storage of an earlier setup (or server). */
export async function startServer(opts: ServerOptions = {}, share?: ServerSetup): Promise<TestServer> {
  const { dir, secret, databaseUrl, configToml } = await prepareServer(opts, share);
  const { config } = parseConfig(configToml, { source: join(dir, "server.toml"), env: {} });
  const db = await openDatabase(config.database.url, { poolSize: 10 });
  await migrate(db);
  const storage = await createStorage(config.storage);
  const app = await buildApp({ config, db, storage, logger: opts.logger ?? (process.env.ATTIC_TEST_DEBUG_LOG ? { level: "error" } : false) });
  let url = INJECT_URL;
  if (opts.inject) await app.ready();
  else {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const addr = app.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    url = `http://127.0.0.1:${addr.port}`;
  }

  const server: TestServer = {
    url,
    app,
    config,
    db,
    storage,
    dir,
    secret,
    configToml,
    databaseUrl,
    token: (caches, extra) => mintHs256(secret, atticClaims("tester", caches, extra)),
    rootToken: () => mintHs256(secret, atticClaims("root", { "*": ALL })),
    fetch(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.token) headers.set("authorization", `Bearer ${init.token}`);
      if (opts.inject) return injectFetch(app, path, { ...init, headers });
      return fetch(url + path, { ...init, headers });
    },
    async stop() {
      await app.close();
      await storage.close?.();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** The name an injected server goes by: its host is the Host header of every injected request. */
const INJECT_URL = "http://attic.inject:8080";

/** A request through app.inject(), answered as a fetch Response (no socket involved). */
async function injectFetch(app: FastifyInstance, path: string, init: RequestInit & { headers: Headers }): Promise<Response> {
  const headers: Record<string, string> = { host: new URL(INJECT_URL).host };
  init.headers.forEach((value, name) => (headers[name] = value));
  const body = init.body;
  if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) throw new Error("injectFetch: string or byte bodies only");
  const res = await app.inject({ method: (init.method ?? "GET") as "GET", url: path, headers, payload: body ?? undefined });
  const out = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.append(name, String(v));
  }
  const noBody = [101, 204, 205, 304].includes(res.statusCode);
  return new Response(noBody ? null : res.rawPayload, { status: res.statusCode, headers: out });
}

/** Create a cache through the API with the root token. */
export async function createCacheViaApi(server: TestServer, name: string, body: Partial<Record<string, unknown>> = {}): Promise<void> {
  const res = await server.fetch(`/_api/v1/cache-config/${name}`, {
    method: "POST",
    token: server.rootToken(),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      keypair: "Generate",
      is_public: false,
      store_dir: "/nix/store",
      priority: 41,
      upstream_cache_key_names: ["cache.nixos.org-1"],
      ...body,
    }),
  });
  if (res.status !== 200) throw new Error(`create cache ${name}: ${res.status} ${await res.text()}`);
}
