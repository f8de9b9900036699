// The internal, validated and frozen configuration. The on-disk shape (upstream's server.toml,
// kebab-case) is described by schema.ts; this is what the rest of the server reads.
import type { JwtSigning } from "../../token/keys.ts";
import type { PermissionName } from "../../token/permissions.ts";

export type { CompressionType, NarinfoCompression } from "../../compression/index.ts";
import type { CompressionType, NarinfoCompression } from "../../compression/index.ts";

import type { StorageConfig } from "../../storage/index.ts";

export type { StorageConfig };

/** ours: one `[[oidc.issuers.rules]]`: claim patterns that must all match, and what they grant */
export interface OidcRule {
  /** claim name → patterns (any may match) */
  claims: Readonly<Record<string, readonly string[]>>;
  grants: readonly { pattern: string; permission: PermissionName }[];
}

/** ours: one `[[oidc.issuers]]` */
export interface OidcIssuerConfig {
  name: string;
  issuer: string;
  jwksUrl: string;
  audience: string;
  /** seconds */
  tokenValidity: number;
  rules: readonly OidcRule[];
}

/** ours: one `[[caches]]`; undefined = not declared (left as it is; the create default when new) */
export interface DeclaredCache {
  name: string;
  isPublic?: boolean;
  priority?: number;
  storeDir?: string;
  upstreamCacheKeyNames?: readonly string[];
  /** seconds */
  retentionPeriod?: number;
  /** bytes */
  maxSize?: number;
  keypairFile?: string;
  /** ours (issue 27): the pull-through upstreams; undefined = not declared */
  upstreams?: readonly { url: string; keys: readonly string[] }[];
}

export interface Config {
  /** a validated socket address, `IPv4:port` or `[IPv6]:port` (e.g. `[::]:8080`) */
  listen: string;
  /** empty: every Host header is accepted */
  allowedHosts: readonly string[];
  /** ends with `/`; null: synthesised from the request's Host and X-Forwarded-Proto */
  apiEndpoint: string | null;
  /** ends with `/`; null: same as the API endpoint */
  substituterEndpoint: string | null;
  softDeleteCaches: boolean;
  requireProofOfPossession: boolean;
  maxNarInfoSize: number;
  /** ours: answer single-chunk NAR downloads on S3 with a 307 to a presigned URL */
  presignedRedirects: boolean;
  database: {
    url: string;
    heartbeat: boolean;
    /** ours: connection pool size (PostgreSQL) */
    poolSize: number;
  };
  storage: StorageConfig;
  chunking: {
    /** NARs at least this large are chunked; 0 disables chunking */
    narSizeThreshold: number;
    minSize: number;
    avgSize: number;
    maxSize: number;
  };
  /** ours: upload sessions (uploads in parts) */
  upload: {
    /** the largest part, in bytes; null: sessions are off */
    maxChunkSize: number | null;
    /** where early parts wait on disk */
    stagingPath: string;
  };
  compression: {
    type: CompressionType;
    /** the effective level (the per-type default when unset) */
    level: number;
    /** the narinfo `Compression:` name stored with NARs and chunks: none, br, zstd, xz */
    narinfoName: NarinfoCompression;
  };
  garbageCollection: {
    /** seconds between runs; 0 disables the periodic run */
    interval: number;
    /** seconds; 0 disables time-based collection unless a cache sets its own */
    defaultRetentionPeriod: number;
    /** ours: seconds after which stale pending uploads and holders are reaped */
    staleGracePeriod: number;
    /** ours: global quota on the logical size of all caches in bytes; null = none */
    maxSize: number | null;
    /** ours: compaction of packs (docs/compaction.md) */
    compaction: {
      /** dead share of a pack that gets it rewritten, 0 < threshold ≤ 1 */
      threshold: number;
      /** live bytes copied per run at most */
      maxRewriteBytes: number;
      /** ms a retired pack is kept for downloads in flight */
      retiredGraceMs: number;
      /** a full pack's size, bytes */
      packSize: number;
      /** pack chunks stored one object each: on when new chunks are packed */
      packLoose: boolean;
    };
  };
  /** ours: pushing with `nix copy --to http://…` */
  nixProtocol: {
    /** absolute folder of staged NARs */
    stagingPath: string;
    /** bytes: largest staged NAR file and largest NarSize */
    maxNarSize: number;
    /** bytes staged at once by this process */
    stagingMaxSize: number;
    /** bytes: largest build log */
    maxLogSize: number;
  };
  /** ours: where /metrics is served and who may read it */
  metrics: {
    /** a separate socket address for /metrics (then not on `listen`); null = on `listen` */
    listen: string | null;
    /** bearer token required on /metrics; null = none */
    token: string | null;
  };
  jwt: {
    tokenBoundIssuer: string | null;
    tokenBoundAudiences: readonly string[] | null;
    /** ours: seconds of clock skew allowed on token times */
    timeTolerance: number;
    signing: JwtSigning;
  };
  /** ours: OIDC token exchange; no issuers = disabled */
  oidc: { issuers: readonly OidcIssuerConfig[] };
  /** ours: pull-through from upstream caches (issue 27) */
  pullThrough: {
    allowedUpstreams: readonly string[];
    /** seconds */
    timeout: number;
    /** seconds */
    negativeTtl: number;
    breakerThreshold: number;
    /** seconds */
    breakerCooldown: number;
  };
  /** ours: declared caches and revocations, applied at start (server/bootstrap.ts) */
  declared: { caches: readonly DeclaredCache[]; revokeSubjects: readonly string[]; pruneCaches: boolean };
}
