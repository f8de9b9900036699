// server.toml text → frozen Config, validated against the schema in one pass that collects every
// problem. Like upstream, unknown top-level keys are errors while unknown keys inside tables are
// ignored (we warn about them, since they are usually typos).
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { ConfigError, type ConfigProblem } from "./errors.ts";
import { createReader } from "./reader.ts";
import { DEPRECATED_TOP_LEVEL_SECRET, ENV_DATABASE_URL, KEYS, splitKey, TABLES } from "./schema.ts";
import { readChunking, readCompression, readSigning, readStorage } from "./sections.ts";
import type { Config } from "./types.ts";
import { readOidc } from "./oidc.ts";
import { readDeclared } from "./declared.ts";
import { canSign } from "../../token/keys.ts";

export interface ParseOptions {
  /** the file path, or ATTIC_SERVER_CONFIG_BASE64; named in every problem */
  source: string;
  env?: NodeJS.ProcessEnv;
}

export interface ParsedConfig {
  config: Config;
  /** unknown keys inside tables and other ignored settings, for the caller to log */
  warnings: string[];
}

const DEPRECATED_MESSAGE = `the token-hs256-secret-base64 field has been moved to [jwt.signing].
To continue using HS256 signing, move your current line
  token-hs256-secret-base64 = "your token"
to the bottom of the file like so:
  [jwt.signing]
  token-hs256-secret-base64 = "your token"`;

/** smol-toml tables are null-prototype objects; dates are Date instances */
function isTable(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype;
}

/** Freezes plain objects and arrays; keys (KeyObject, Uint8Array) are left as they are. */
function deepFreeze<T>(value: T): T {
  if (Array.isArray(value) || isTable(value)) {
    for (const v of Object.values(value as object)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const TOP_LEVEL_NAMES = [
  ...KEYS.filter((k) => splitKey(k.key).table === "").map((k) => k.key),
  ...TABLES.filter((t) => t.table && !t.table.includes(".")).map((t) => `[${t.table}]`),
].join(", ");

/** Parse and validate server.toml. Throws ConfigError listing every problem. */
export function parseConfig(text: string, options: ParseOptions): ParsedConfig {
  const { source } = options;
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (error) {
    throw new ConfigError([{ source, key: "", message: `not valid TOML: ${(error as Error).message}` }]);
  }

  // 1. structure: the tables present, raw values by key, unknown keys
  const raw = new Map<string, unknown>();
  const tables = new Set<string>();
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const r = createReader(source, options.env ?? process.env, raw, tables, problems, warnings);
  const walk = (table: string, body: Record<string, unknown>): void => {
    tables.add(table);
    for (const [name, value] of Object.entries(body)) {
      const key = table ? `${table}.${name}` : name;
      if (table === "" && name === DEPRECATED_TOP_LEVEL_SECRET) r.problem(key, DEPRECATED_MESSAGE);
      else if (TABLES.some((t) => t.table === key && t.array)) {
        // arrays of tables have their own reader (oidc.ts)
        tables.add(key);
        raw.set(key, value);
      } else if (TABLES.some((t) => t.table === key)) {
        if (isTable(value)) walk(key, value);
        else r.problem(key, `expected a table [${key}]`);
      } else if (KEYS.some((k) => k.key === key)) raw.set(key, value);
      else if (table === "") r.problem(key, `unknown key (top-level keys are: ${TOP_LEVEL_NAMES})`);
      else r.warn(key, "unknown key, ignored");
    }
  };
  walk("", doc);
  for (const t of TABLES) {
    if (t.required && !tables.has(t.table) && !r.hasProblem(t.table)) r.problem(t.table, `missing table [${t.table}]`);
  }

  // 2. values, each problem collected
  const database = tables.has("database") ? r.read<string>("database.url") : undefined;
  if (tables.has("database") && database === undefined && !r.hasProblem("database.url")) {
    r.problem("database.url", `missing: set database.url or the ${ENV_DATABASE_URL} environment variable`);
  }
  const staleGracePeriod = r.read<number>("garbage-collection.stale-grace-period");
  if (staleGracePeriod === 0) r.problem("garbage-collection.stale-grace-period", "must be longer than 0 (in-flight uploads would be reaped)");
  const config = {
    listen: r.read<string>("listen"),
    allowedHosts: r.read<readonly string[]>("allowed-hosts"),
    apiEndpoint: r.read<string>("api-endpoint") ?? null,
    substituterEndpoint: r.read<string>("substituter-endpoint") ?? null,
    softDeleteCaches: r.read<boolean>("soft-delete-caches"),
    requireProofOfPossession: r.read<boolean>("require-proof-of-possession"),
    maxNarInfoSize: r.read<number>("max-nar-info-size"),
    presignedRedirects: r.read<boolean>("presigned-redirects"),
    database: { url: database, heartbeat: r.read<boolean>("database.heartbeat"), poolSize: r.read<number>("database.pool-size") },
    storage: tables.has("storage") ? readStorage(r) : undefined,
    chunking: tables.has("chunking") ? readChunking(r) : undefined,
    upload: {
      maxChunkSize: r.read<number>("upload.max-chunk-size") ?? null,
      stagingPath: r.read<string>("upload.staging-path") ?? join(tmpdir(), "atticd-upload-staging"),
    },
    compression: readCompression(r),
    garbageCollection: {
      interval: r.read<number>("garbage-collection.interval"),
      defaultRetentionPeriod: r.read<number>("garbage-collection.default-retention-period"),
      staleGracePeriod,
      maxSize: r.read<number>("garbage-collection.max-size") ?? null,
      compaction: {
        threshold: (r.read<number>("garbage-collection.compaction-threshold") ?? 10) / 100,
        maxRewriteBytes: r.read<number>("garbage-collection.compaction-max-rewrite"),
        retiredGraceMs: (r.read<number>("garbage-collection.pack-retire-grace") ?? 3600) * 1000,
        // from [storage] below: compaction writes packs of that size, and packs loose chunks only when new ones are packed
        packSize: 64 * 2 ** 20,
        packLoose: true,
      },
    },
    nixProtocol: {
      stagingPath: r.read<string>("nix-protocol.staging-path") ?? join(tmpdir(), "atticd-nar-staging"),
      maxNarSize: r.read<number>("nix-protocol.max-nar-size"),
      stagingMaxSize: r.read<number>("nix-protocol.staging-max-size"),
      maxLogSize: r.read<number>("nix-protocol.max-log-size"),
    },
    metrics: { listen: r.read<string>("metrics.listen") ?? null, token: r.read<string>("metrics.token") ?? null },
    jwt: {
      tokenBoundIssuer: r.read<string>("jwt.token-bound-issuer") ?? null,
      tokenBoundAudiences: r.read<readonly string[]>("jwt.token-bound-audiences") ?? null,
      timeTolerance: r.read<number>("jwt.time-tolerance"),
      signing: readSigning(r),
    },
    oidc: readOidc(r),
    pullThrough: {
      allowedUpstreams: r.read<readonly string[]>("pull-through.allowed-upstreams"),
      timeout: r.read<number>("pull-through.timeout"),
      negativeTtl: r.read<number>("pull-through.negative-ttl"),
      breakerThreshold: r.read<number>("pull-through.breaker-threshold"),
      breakerCooldown: r.read<number>("pull-through.breaker-cooldown"),
    },
    declared: readDeclared(r),
  };
  const signing = config.jwt.signing;
  if (config.oidc.issuers.length > 0 && signing && !canSign(signing)) {
    r.problem("oidc.issuers", "the OIDC exchange mints tokens, but the JWT key is an RS256 public key: configure token-rs256-secret-base64 or token-hs256-secret-base64");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (config.storage) {
    config.garbageCollection.compaction.packSize = config.storage.packSize ?? config.garbageCollection.compaction.packSize;
    config.garbageCollection.compaction.packLoose = config.storage.packs ?? true;
  }
  // without problems every value above is defined
  return { config: deepFreeze(config as Config), warnings };
}
