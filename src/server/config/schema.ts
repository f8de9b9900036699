// The one description of server.toml: every table and key with its kind, default, env var and
// meaning. load.ts validates against it, reference.ts renders docs/config-reference.md from it.
// Defaults are written as they would appear in TOML and go through the same readers as the file.
import type { ValueKind, ValueRules } from "./values.ts";

export type TomlDefault = string | number | boolean | readonly string[];

export interface KeySpec extends ValueRules {
  /** dotted path, e.g. `garbage-collection.interval` */
  key: string;
  kind: ValueKind;
  description: string;
  default?: TomlDefault;
  /** shown in the docs instead of `default` when the default depends on something else */
  defaultNote?: string;
  /** when the key must be given (docs text); the loader enforces it */
  required?: string;
  /** read when the key is absent */
  env?: string;
  /** the key only applies to this storage type */
  storageType?: "local" | "s3";
  /** not in upstream Attic */
  ours?: boolean;
}

export interface TableSpec {
  /** dotted path; "" is the top level */
  table: string;
  description: string;
  required: boolean;
  ours?: boolean;
  /** an array of tables (`[[oidc.issuers]]`), read by its own reader (oidc.ts) */
  array?: boolean;
}

export const ENV_CONFIG_BASE64 = "ATTIC_SERVER_CONFIG_BASE64";
export const ENV_DATABASE_URL = "ATTIC_SERVER_DATABASE_URL";
export const ENV_TOKEN_RS256_PUBKEY_BASE64 = "ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64";
export const ENV_TOKEN_RS256_SECRET_BASE64 = "ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64";
export const ENV_TOKEN_HS256_SECRET_BASE64 = "ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64";
export const ENV_METRICS_TOKEN = "ATTIC_SERVER_METRICS_TOKEN";

/** The legacy top-level key: its presence is an error that explains the move. */
export const DEPRECATED_TOP_LEVEL_SECRET = "token-hs256-secret-base64";

export const TABLES: readonly TableSpec[] = [
  { table: "", description: "Top-level keys.", required: true },
  {
    table: "database",
    description: "The database holding caches, objects, NARs and chunks. The table must be present, but may be empty when `ATTIC_SERVER_DATABASE_URL` is set.",
    required: true,
  },
  { table: "storage", description: "Where NAR chunks are stored: a local folder or an S3-compatible bucket.", required: true },
  {
    table: "storage.credentials",
    description: "Static S3 credentials. Without this table the AWS default credential chain is used (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, instance roles, …).",
    required: false,
  },
  {
    table: "chunking",
    description:
      "Content-defined chunking of NARs (FastCDC). The whole table is required. Changing the sizes later moves the cut points, so new uploads deduplicate poorly against old chunks for a while.",
    required: true,
  },
  {
    table: "upload",
    description:
      "Uploads in parts (upload sessions, the shape of upstream's open PR #342): a client pushes a NAR larger than `max-chunk-size` as a series of requests of at most that many bytes each, which pass reverse proxies that limit request bodies and resume after a broken connection. On by default.",
    required: false,
    ours: true,
  },
  { table: "compression", description: "Compression of stored chunks. Optional; if the table is present, `type` is required.", required: false },
  { table: "garbage-collection", description: "Garbage collection of unaccessed objects and orphaned data.", required: false },
  {
    table: "nix-protocol",
    description:
      "Pushing with Nix itself (`nix copy --to http://…/CACHE`): each NAR is staged on the server's disk until its narinfo arrives, then verified and stored like an `attic push` upload. Ours.",
    required: false,
    ours: true,
  },
  { table: "jwt", description: "Verification of JSON Web Tokens.", required: false },
  {
    table: "metrics",
    description: "Who may read the Prometheus metrics at `GET /metrics` (docs/metrics.md). Without this table they are served on `listen` to anyone.",
    required: false,
    ours: true,
  },
  {
    table: "jwt.signing",
    description:
      "The key that signs and verifies tokens: exactly one of the three keys. Without this table the environment is read, in this order: `ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64`, `ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64`, `ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64` (empty values count as unset).",
    required: false,
  },
  {
    table: "oidc",
    description:
      "*(ours)* OIDC token exchange for CI jobs: a job presents its OIDC ID token (GitHub Actions, GitLab CI, any issuer with a JWKS) to `POST /_api/v1/oidc/exchange` (`attic login NAME ENDPOINT --oidc`) and gets a short-lived Attic token whose permissions come from the rules below. The server's signing key must be able to sign (an HS256 secret or an RS256 private key).",
    required: false,
    ours: true,
  },
  {
    table: "oidc.issuers",
    description:
      "*(ours)* One `[[oidc.issuers]]` table per trusted issuer. An ID token is accepted when its `iss` is one of these issuers, its signature verifies with a key of the issuer's JWKS (RS256/384/512, PS256, ES256/384 or EdDSA; never `none`), its `aud` contains `audience`, and it is within its `nbf`/`exp` (with `jwt.time-tolerance`). Anything else is refused with 401 `InvalidIdToken` naming the reason.",
    required: false,
    ours: true,
    array: true,
  },
  {
    table: "oidc.issuers.rules",
    description:
      "*(ours)* One `[[oidc.issuers.rules]]` table per rule, after its issuer. A rule applies when every claim it names matches (wildcard `*` matches any text, `/` included; a list matches if any entry does); the token gets the union of the permissions of all rules that apply, on the cache name patterns given (exact-name-then-first-pattern resolution as for any token). Example: `claims = { repository = \"org/*\", ref = \"refs/heads/main\" }` with `push = [\"org-*\"]`. No rule applies: the exchange is refused.",
    required: false,
    ours: true,
    array: true,
  },
  {
    table: "caches",
    description:
      "*(ours)* Declarative caches: one `[[caches]]` table per cache. At start (monolithic and api-server modes) atticd creates each missing cache and sets, on existing ones, the keys given here (keys left out are left as they are, or get the default of `attic cache create` on creation); it logs what it changed, and does nothing on the next start if nothing changed. Caches not declared are left alone unless `bootstrap.prune-caches` is set.",
    required: false,
    ours: true,
    array: true,
  },
  {
    table: "caches.upstreams",
    description:
      "*(ours)* The cache's pull-through upstreams, in the order they are asked: one `[[caches.upstreams]]` table each, after its cache (issue 27; `attic cache configure --upstream` sets the same). When declared, the list replaces the cache's upstreams at start; leave it out to keep what was configured.",
    required: false,
    ours: true,
    array: true,
  },
  {
    table: "pull-through",
    description:
      "*(ours)* Pull-through from upstream binary caches (docs/pull-through.md): a narinfo a cache does not have is looked up at the cache's upstreams, and its NAR is fetched once, verified and stored. These keys bound where and how atticd fetches.",
    required: false,
    ours: true,
  },
  {
    table: "bootstrap",
    description: "*(ours)* What atticd applies at start besides `[[caches]]`.",
    required: false,
    ours: true,
  },
];

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const KEYS: readonly KeySpec[] = [
  { key: "listen", kind: "socket-address", default: "[::]:8080", description: "Socket address to listen on (`IPv4:port` or `[IPv6]:port`)." },
  {
    key: "allowed-hosts",
    kind: "string-list",
    default: [],
    description: "Allowed `Host` headers. Empty: every host is allowed; configure this in production.",
  },
  {
    key: "api-endpoint",
    kind: "endpoint",
    description:
      "The canonical API endpoint given to clients, ending with `/` (e.g. `https://cache.example/`). Unset: synthesised from the request's `Host` and `X-Forwarded-Proto`, which is unsafe in production.",
  },
  {
    key: "substituter-endpoint",
    kind: "endpoint",
    description: "The canonical binary cache endpoint, ending with `/`. Unset: the API endpoint.",
  },
  {
    key: "soft-delete-caches",
    kind: "boolean",
    default: false,
    description: "Mark destroyed caches as deleted instead of removing their rows; their names stay taken.",
  },
  {
    key: "require-proof-of-possession",
    kind: "boolean",
    default: true,
    description: "Require uploading the whole NAR even when it already exists in the global store (otherwise knowing its hash is enough to add it to a cache).",
  },
  { key: "max-nar-info-size", kind: "integer", min: 1, default: 1048576, description: "Largest accepted upload info (narinfo JSON), in bytes." },
  {
    key: "presigned-redirects",
    kind: "boolean",
    default: true,
    ours: true,
    description:
      "With S3 storage, answer downloads of single-chunk NARs with a 307 redirect to a presigned URL instead of streaming through the server. Only where the redirect cannot break a pull: a public cache, a request without an `Authorization` header, and a presigned URL whose host name differs from the one the client asked (netrc credentials follow a redirect to the same host name, and S3 refuses a request with two kinds of authentication). Other downloads are streamed.",
  },

  {
    key: "database.url",
    kind: "database-url",
    env: "ATTIC_SERVER_DATABASE_URL",
    required: "unless `ATTIC_SERVER_DATABASE_URL` is set",
    description: "`sqlite:///absolute/path/server.db` or `postgres://user:password@host/db`.",
  },
  { key: "database.heartbeat", kind: "boolean", default: false, description: "Send a heartbeat query every minute." },
  { key: "database.pool-size", kind: "integer", min: 1, max: 1000, default: 10, ours: true, description: "Maximum number of database connections (PostgreSQL)." },

  { key: "storage.type", kind: "enum", values: ["local", "s3"], required: "always", description: "`local` or `s3`." },
  { key: "storage.path", kind: "string", storageType: "local", required: "for `local`", description: "The folder holding the chunks." },
  { key: "storage.region", kind: "string", storageType: "s3", required: "for `s3`", description: "The S3 region." },
  { key: "storage.bucket", kind: "string", storageType: "s3", required: "for `s3`", description: "The S3 bucket." },
  {
    key: "storage.endpoint",
    kind: "string",
    storageType: "s3",
    description: "A custom S3 endpoint (MinIO, R2, Garage, …). When set, path-style addressing is used. Unset: AWS.",
  },
  {
    key: "storage.public-endpoint",
    kind: "url",
    storageType: "s3",
    ours: true,
    description:
      "The S3 endpoint clients reach the bucket at, used only in presigned URLs (`presigned-redirects`) when it differs from `endpoint` (e.g. `endpoint = \"http://minio:9000\"` inside a compose network, `public-endpoint = \"https://s3.example.com\"`). atticd itself still reads and writes through `endpoint`. The public endpoint must pass the request's `Host` through unchanged: the URL's signature covers it. Path-style addressing. Unset: presigned URLs use `endpoint`. As upstream's open PR #356.",
  },
  {
    key: "storage.packs",
    kind: "boolean",
    default: true,
    ours: true,
    description:
      "Append new chunks to pack files or objects of up to `pack-size` (one read or ranged GET per run of chunks, about one S3 PUT per upload or per pack instead of one per chunk; docs/packs.md). `false`: store each new chunk as its own file or object, upstream's layout, for going back to upstream atticd. Chunks stored either way stay readable.",
  },
  {
    key: "storage.pack-size",
    kind: "size",
    default: "64 MiB",
    min: 4 * MiB,
    max: GiB,
    ours: true,
    description:
      'The size at which a pack is sealed and the next one opened, in bytes or with a unit (`"64 MiB"`). On S3 an open pack is held in memory until it is sealed (at most about three packs per server). A chunk larger than this gets a pack of its own.',
  },
  { key: "storage.credentials.access_key_id", kind: "string", storageType: "s3", required: "in `[storage.credentials]`", description: "The access key ID." },
  {
    key: "storage.credentials.secret_access_key",
    kind: "string",
    storageType: "s3",
    required: "in `[storage.credentials]`",
    description: "The secret access key.",
  },

  {
    key: "chunking.nar-size-threshold",
    kind: "integer",
    min: 0,
    required: "always",
    description: "NARs at least this large (bytes) are chunked. `0` disables chunking, `1` chunks every NAR.",
  },
  { key: "chunking.min-size", kind: "integer", min: 64, max: 64 * MiB, required: "always", description: "Preferred minimum chunk size in bytes (64 B – 64 MiB)." },
  { key: "chunking.avg-size", kind: "integer", min: 256, max: 256 * MiB, required: "always", description: "Preferred average chunk size in bytes (256 B – 256 MiB)." },
  { key: "chunking.max-size", kind: "integer", min: KiB, max: GiB, required: "always", description: "Maximum chunk size in bytes (1 KiB – 1 GiB). `min-size ≤ avg-size ≤ max-size`." },

  {
    key: "upload.max-chunk-size",
    kind: "size",
    min: 64 * KiB,
    max: 4 * GiB,
    default: "8 MiB",
    ours: true,
    description:
      'The largest part of an upload session, in bytes or with a unit (`"32 MiB"`), advertised to clients in the cache config (`upload_chunking.max_chunk_size`). The default passes the usual request body limits of proxies (nginx `client_max_body_size 8m`, 10m or 100m, Cloudflare 100 MB, cloud API gateways 10 MB); behind a smaller one (nginx\'s own default of 1 MiB, Kubernetes ingress-nginx) `attic push` sees the proxy\'s 413 and goes on in smaller parts, down to 1 MiB, by itself. Set it below the smallest limit on the way to spare clients that first refused request.',
  },
  {
    key: "upload.staging-path",
    kind: "string",
    ours: true,
    defaultNote: "`atticd-upload-staging` in the system's temporary folder",
    description:
      "The folder where parts that arrive ahead of their turn wait (at most 8 per session, on disk) until the parts before them are in. Parts that arrive in order never touch it.",
  },
  {
    key: "compression.type",
    kind: "enum",
    values: ["none", "brotli", "zstd", "xz"],
    default: "zstd",
    required: "when `[compression]` is present",
    description: "`none`, `brotli`, `zstd` or `xz`.",
  },
  {
    key: "compression.level",
    kind: "integer",
    defaultNote: "zstd `8`, brotli `5`, xz `2`",
    description: "Compression level: zstd 1–22, brotli 0–11, xz 0–9. Ignored for `none`.",
  },

  {
    key: "garbage-collection.interval",
    kind: "duration",
    default: "12 hours",
    description: "How often garbage collection runs (humantime, e.g. `12 hours`). `0` disables the periodic run; `atticd --mode garbage-collector-once` still works.",
  },
  {
    key: "garbage-collection.default-retention-period",
    kind: "duration",
    default: "0",
    description:
      "Objects whose creation and last access are both older than this are collected, unless the cache sets its own period. `0` disables time-based collection by default.",
  },
  {
    key: "garbage-collection.stale-grace-period",
    kind: "duration",
    default: "1 hour",
    ours: true,
    description: "Pending NAR and chunk rows and upload holders older than this (left by a crashed or interrupted server) are reaped.",
  },
  {
    key: "garbage-collection.compaction-threshold",
    kind: "integer",
    min: 1,
    max: 100,
    default: 10,
    ours: true,
    description:
      "Compaction of packs (docs/compaction.md): a pack is rewritten once this percentage of its bytes belongs to deleted chunks (borg's default; restic's is 5). Packs with no live chunk are always dropped without copying.",
  },
  {
    key: "garbage-collection.compaction-max-rewrite",
    kind: "size",
    default: "4 GiB",
    ours: true,
    description: "Live bytes one garbage-collection run copies at most while compacting packs, worst packs first; the rest waits for the next run.",
  },
  {
    key: "garbage-collection.pack-retire-grace",
    kind: "duration",
    default: "1 hour",
    ours: true,
    description:
      "How long a pack whose chunks compaction moved is kept before it is deleted: downloads on any replica that read its chunk rows just before the move may still read it. `0` deletes it in the same run (only when no atticd serves the storage).",
  },
  {
    key: "garbage-collection.max-size",
    kind: "size",
    ours: true,
    description:
      'Global quota on the logical size of all caches, in bytes or with a unit (`"500 GiB"`). Over it, least-recently-used objects are collected. Unset: no quota.',
  },

  {
    key: "nix-protocol.staging-path",
    kind: "string",
    defaultNote: "`atticd-nar-staging` in the system's temp folder",
    ours: true,
    description:
      "The folder where NARs pushed with `nix copy` wait for their narinfo (one subfolder per cache). Local to each server process: replicas behind a load balancer need sticky sessions or a shared folder. Staged NARs whose narinfo never comes are removed by garbage collection after `garbage-collection.stale-grace-period`.",
  },
  {
    key: "nix-protocol.max-nar-size",
    kind: "size",
    default: "4 GiB",
    ours: true,
    description: "Largest NAR accepted from `nix copy`: both the compressed file sent and the `NarSize` of its narinfo. Bigger ones are refused with 413 `NarTooLarge`.",
  },
  {
    key: "nix-protocol.staging-max-size",
    kind: "size",
    default: "16 GiB",
    ours: true,
    description: "Total size of the NARs staged at once by this server. A NAR that would go over it is refused with 503 `StagingFull` (Nix retries).",
  },
  {
    key: "nix-protocol.max-log-size",
    kind: "size",
    default: "64 MiB",
    ours: true,
    description: "Largest build log accepted by `PUT /<cache>/log/<drv>` (uncompressed).",
  },
  {
    key: "metrics.listen",
    kind: "socket-address",
    ours: true,
    description:
      "Serve `/metrics` on this separate socket address only (e.g. `127.0.0.1:9100`), never on `listen`, so that the public listener does not expose it. Unset: `/metrics` is on `listen`.",
  },
  {
    key: "metrics.token",
    kind: "string",
    env: ENV_METRICS_TOKEN,
    ours: true,
    description: "If set, `/metrics` answers only requests with `Authorization: Bearer <this token>` (Prometheus' `authorization.credentials`); others get 401.",
  },

  { key: "jwt.token-bound-issuer", kind: "string", description: "If set, tokens must carry this `iss` claim (and minted tokens get it)." },
  {
    key: "jwt.token-bound-audiences",
    kind: "string-list",
    description: "If set, a token's `aud` claim must contain one of these (and minted tokens get them all).",
  },
  {
    key: "jwt.time-tolerance",
    kind: "duration",
    default: "10s",
    ours: true,
    description:
      "Clock skew allowed when checking a token's times (`nbf`, `iat`, `exp`): a token is accepted this long before it becomes valid and after it expires, so replicas and clients whose clocks differ slightly do not refuse fresh tokens. `0` checks exactly, as upstream. The name is that of upstream's open PR #336.",
  },
  {
    key: "jwt.signing.token-rs256-pubkey-base64",
    kind: "secret",
    env: ENV_TOKEN_RS256_PUBKEY_BASE64,
    description: "Base64 of a PEM RSA public key (SPKI or PKCS#1): verify tokens only; `atticadm make-token` cannot mint.",
  },
  {
    key: "jwt.signing.token-rs256-secret-base64",
    kind: "secret",
    env: ENV_TOKEN_RS256_SECRET_BASE64,
    description: "Base64 of a PEM RSA private key (PKCS#1 or PKCS#8): sign and verify with RS256.",
  },
  {
    key: "jwt.signing.token-hs256-secret-base64",
    kind: "secret",
    env: ENV_TOKEN_HS256_SECRET_BASE64,
    description: "Base64 of an HMAC secret (any bytes; e.g. `openssl rand 64 | base64 -w0`): sign and verify with HS256.",
  },

  { key: "oidc.issuers.name", kind: "string", required: "always", ours: true, description: "A short name for the issuer (letters, digits, `-`, `_`); minted tokens have the subject `oidc:<name>:<sub of the ID token>`." },
  { key: "oidc.issuers.issuer", kind: "string", required: "always", ours: true, description: "The issuer URL exactly as in the ID tokens' `iss` (GitHub: `https://token.actions.githubusercontent.com`, GitLab: `https://gitlab.com`)." },
  { key: "oidc.issuers.jwks-url", kind: "url", required: "always", ours: true, description: "Where the issuer's signing keys are published (GitHub: `https://token.actions.githubusercontent.com/.well-known/jwks`, GitLab: `https://gitlab.com/oauth/discovery/keys`). Fetched when needed and cached." },
  { key: "oidc.issuers.audience", kind: "string", required: "always", ours: true, description: "The audience the ID tokens must carry in `aud` (GitHub: what the job asks for, by default the endpoint given to `attic login`; GitLab: `aud` of the job's `id_tokens:`)." },
  { key: "oidc.issuers.token-validity", kind: "duration", default: "1 hour", ours: true, description: "How long the minted Attic token is valid." },
  { key: "oidc.issuers.rules.claims", kind: "string-table", required: "always", ours: true, description: "Claim name → wildcard pattern (or list of patterns) that the ID token's claim must match, e.g. `{ repository = \"org/*\", ref = \"refs/heads/main\" }`." },
  { key: "oidc.issuers.rules.pull", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may pull from." },
  { key: "oidc.issuers.rules.push", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may push to." },
  { key: "oidc.issuers.rules.delete", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may delete paths from." },
  { key: "oidc.issuers.rules.create-cache", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may create." },
  { key: "oidc.issuers.rules.configure-cache", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may configure." },
  { key: "oidc.issuers.rules.configure-cache-retention", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may change the retention, quota and pins of." },
  { key: "oidc.issuers.rules.destroy-cache", kind: "string-list", default: [], ours: true, description: "Cache name patterns the token may destroy." },

  { key: "caches.name", kind: "string", required: "always", ours: true, description: "The cache's name." },
  { key: "caches.public", kind: "boolean", ours: true, defaultNote: "on creation: `false`", description: "Anyone may pull from the cache without a token." },
  { key: "caches.priority", kind: "integer", min: -(2 ** 31), max: 2 ** 31 - 1, ours: true, defaultNote: "on creation: `41`", description: "The binary cache priority (lower is preferred; cache.nixos.org has 40)." },
  { key: "caches.store-dir", kind: "string", ours: true, defaultNote: 'on creation: `"/nix/store"`', description: "The Nix store directory the cache serves." },
  { key: "caches.upstream-cache-key-names", kind: "string-list", ours: true, defaultNote: 'on creation: `["cache.nixos.org-1"]`', description: "Signing key names of upstream caches: `attic push` skips paths they signed." },
  { key: "caches.retention-period", kind: "duration", ours: true, defaultNote: "on creation: the global default", description: "The cache's retention period (`0`: never collected by age)." },
  { key: "caches.max-size", kind: "size", ours: true, defaultNote: "on creation: no quota", description: "The cache's size quota." },
  {
    key: "caches.keypair-file",
    kind: "string",
    ours: true,
    defaultNote: "on creation: a new key pair",
    description:
      "A file holding a Nix secret key (`name:base64`, as `nix key generate-secret` writes) to sign the cache's paths with; when the cache's key differs, it is replaced. Read at start, never logged.",
  },
  { key: "caches.upstreams.url", kind: "string", required: "always", ours: true, description: "The upstream binary cache's URL, e.g. `https://cache.nixos.org`. Must match `pull-through.allowed-upstreams`." },
  { key: "caches.upstreams.keys", kind: "string-list", required: "always", ours: true, description: "The public keys (`name:base64`) whose signatures make an upstream narinfo trusted, e.g. `[\"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"]`." },
  {
    key: "pull-through.allowed-upstreams",
    kind: "string-list",
    default: ["https://cache.nixos.org"],
    ours: true,
    description:
      "The URLs a cache's upstream may point at: an upstream URL is accepted when its scheme, host and port equal those of an entry and its path is the entry's path or below it. Checked when an upstream is configured and again before every request and redirect, so a token that may configure a cache cannot make atticd reach internal addresses. Refused URLs are a 400 naming this setting. `[]` turns pull-through off.",
  },
  { key: "pull-through.timeout", kind: "duration", default: "10s", ours: true, description: "How long a request to an upstream may take to answer (a narinfo, or the headers of a NAR), and the longest pause in a NAR transfer." },
  { key: "pull-through.negative-ttl", kind: "duration", default: "1 minute", ours: true, description: "How long a path that no upstream has is answered 404 without asking them again." },
  { key: "pull-through.breaker-threshold", kind: "integer", min: 1, max: 1000, default: 3, ours: true, description: "Consecutive failures (timeouts, refused connections, 5xx) after which an upstream is considered down: its misses answer 404 at once, without a request, for `breaker-cooldown`." },
  { key: "pull-through.breaker-cooldown", kind: "duration", default: "30s", ours: true, description: "How long a down upstream is left alone; then one request probes it, and its success closes the breaker." },
  { key: "bootstrap.revoke-subjects", kind: "string-list", default: [], ours: true, description: "Token subjects to revoke, as `atticadm revoke-token --sub` does: every token of the subject issued before the first start that declared it is refused; the revocation is added once." },
  { key: "bootstrap.prune-caches", kind: "boolean", default: false, ours: true, description: "Destroy the caches not declared in `[[caches]]` (soft or hard as `soft-delete-caches` says). Off by default: undeclared caches are never touched." },
];

/** The signing keys in the order the environment is consulted. */
export const SIGNING_KEYS = KEYS.filter((k) => k.key.startsWith("jwt.signing."));

export function keySpec(key: string): KeySpec {
  const spec = KEYS.find((k) => k.key === key);
  if (!spec) throw new Error(`internal: no config key ${key}`);
  return spec;
}

/** The table a key belongs to ("" for the top level) and its name inside it. */
export function splitKey(key: string): { table: string; name: string } {
  const table = TABLES.filter((t) => t.table !== "" && key.startsWith(`${t.table}.`)).sort((a, b) => b.table.length - a.table.length)[0];
  return table ? { table: table.table, name: key.slice(table.table.length + 1) } : { table: "", name: key };
}
