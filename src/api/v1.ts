// Wire types of the Attic API (/_api/v1), shared by server and client. Field names and shapes
// are upstream's exactly (serde snake_case, externally tagged enums); see spec section 1.3.

export const API_PREFIX = "_api/v1/";
export const HEADER_NAR_INFO = "X-Attic-Nar-Info";
export const HEADER_NAR_INFO_PREAMBLE_SIZE = "X-Attic-Nar-Info-Preamble-Size";
export const HEADER_CACHE_VISIBILITY = "X-Attic-Cache-Visibility";
/** The official client switches to preamble mode when the JSON is at least this long. */
export const PREAMBLE_THRESHOLD = 4096;

/** `"Generate"` or `{"Keypair": "name:base64(64 bytes)"}` */
export type KeypairConfig = "Generate" | { Keypair: string };

/** `"Global"` (use the server default) or `{"Period": seconds}` (0 = never collect). */
export type RetentionPeriodConfig = "Global" | { Period: number };

/** GET /_api/v1/cache-config/{cache}; PATCH takes the same shape with every field optional. */
export interface CacheConfig {
  keypair?: KeypairConfig;
  substituter_endpoint?: string;
  api_endpoint?: string;
  public_key?: string;
  is_public?: boolean;
  store_dir?: string;
  priority?: number;
  upstream_cache_key_names?: string[];
  retention_period?: RetentionPeriodConfig;
  /** Ours (not upstream): logical size quota in bytes, null = none. Needs `cq` to change. */
  max_size?: number | null;
  /** Upload sessions (upstream's open PR #342): present when the server takes uploads in parts. Read-only. */
  upload_chunking?: UploadChunkingConfig;
  /** Ours (issue 27): pull-through upstreams, asked in order. PATCH replaces the whole list. */
  upstreams?: UpstreamConfig[];
}

/** A pull-through upstream: its base URL and the keys whose signatures it is trusted for. */
export interface UpstreamConfig {
  url: string;
  keys: string[];
}

/** The largest part of an upload session the server takes, in bytes. */
export interface UploadChunkingConfig {
  max_chunk_size: number;
}

/** POST /_api/v1/cache-config/{cache}: every field required, as upstream. */
export interface CreateCacheRequest {
  keypair: KeypairConfig;
  is_public: boolean;
  store_dir: string;
  priority: number;
  upstream_cache_key_names: string[];
}

export interface GetMissingPathsRequest {
  cache: string;
  store_path_hashes: string[];
}

export interface GetMissingPathsResponse {
  missing_paths: string[];
}

/**
 * GET /_api/v1/cache-config: the caches the caller can see. `caches` is the shape of upstream's
 * open PR #367 (`ListCachesResponse`); `cache_info` is ours, one entry per name in the same order.
 */
export interface ListCachesResponse {
  caches: string[];
  cache_info?: CacheSummary[];
}

export interface CacheSummary {
  name: string;
  is_public: boolean;
  /** logical size in bytes: the sum of the NAR sizes of its objects */
  size: number;
  object_count: number;
}

/** POST /_api/v1/delete-paths (ours): remove store paths from a cache; needs `d`. */
export interface DeletePathsRequest {
  cache: string;
  store_path_hashes: string[];
}

export interface DeletePathsResponse {
  /** the hashes that were in the cache and are now removed; the others were not there */
  deleted_paths: string[];
}

/** PUT /_api/v1/pins/{cache}/{name} (ours): pin a path (and its closure in the cache); needs `cq`. */
export interface PinRequest {
  store_path: string;
}

export interface PinInfo {
  name: string;
  store_path: string;
  /** RFC 3339 */
  created_at: string;
  created_by: string | null;
  /** paths kept by the pin: the path and its closure as the cache held it when pinned */
  paths: number;
}

/** GET /_api/v1/pins/{cache} (ours); needs `r`. */
export interface ListPinsResponse {
  pins: PinInfo[];
}

/** POST /_api/v1/oidc/exchange (ours): a CI job's OIDC ID token for a short-lived Attic token. */
export interface OidcExchangeRequest {
  id_token: string;
}

export interface OidcExchangeResponse {
  token: string;
  /** Unix seconds */
  expires_at: number;
}

/** The upload info sent with PUT /_api/v1/upload-path (header or preamble). */
export interface UploadPathNarInfo {
  cache: string;
  store_path_hash: string;
  store_path: string;
  /** base names (`hash-name`), not full paths */
  references: string[];
  system?: string | null;
  deriver?: string | null;
  sigs: string[];
  ca?: string | null;
  /** `sha256:<64 hex>` or `sha256:<52 nix32>` */
  nar_hash: string;
  nar_size: number;
}

export type UploadPathResult =
  | { kind: "Uploaded"; file_size: number; frac_deduplicated: number | null }
  | { kind: "Deduplicated"; frac_deduplicated: null };

/** POST /_api/v1/upload-path/sessions (PR #342). */
export interface StartUploadPathSessionRequest {
  nar_info: UploadPathNarInfo;
  /** the part size wanted; default and maximum: the advertised `max_chunk_size` */
  chunk_size?: number | null;
}

/** serde `tag = "kind"`, variants in camelCase, fields as named */
export type StartUploadPathSessionResponse =
  | { kind: "session"; session_id: string; chunk_size: number }
  | { kind: "completed"; result: UploadPathResult };

/** POST /_api/v1/upload-path/sessions/{id}/finalize (PR #342): poll while pending. */
export type FinalizeUploadSessionResponse =
  | { kind: "pending" }
  | { kind: "failed"; message: string }
  | { kind: "completed"; result: UploadPathResult };

/**
 * GET /_api/v1/upload-path/sessions/{id} (ours, not in PR #342): where a session stands, so a
 * client that lost its connection resumes from the first part the server does not have.
 * `uploading` sessions take parts; `pending` ones are being finalized.
 */
export interface UploadSessionStatus {
  session_id: string;
  state: "uploading" | "pending" | "failed" | "completed";
  chunk_size: number;
  num_parts: number;
  /** the parts received whole, ascending */
  received_parts: number[];
  message?: string;
  /** (ours) state `failed` for a reason no new session can help (a full storage): the error's kind and status */
  error?: string;
  code?: number;
}

/** Every JSON error the server returns. */
export interface ErrorResponse {
  code: number;
  error: string;
  message: string;
}

/** Cache names: `^[A-Za-z0-9][A-Za-z0-9-_+]{0,49}$` (upstream attic/src/cache.rs). */
export const CACHE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$/;
/** Token patterns: like cache names, plus `*`. */
export const CACHE_NAME_PATTERN_RE = /^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$/;

export function isValidCacheName(name: string): boolean {
  return CACHE_NAME_RE.test(name);
}
