// The `/_api/v1` client (upstream client/src/api/mod.rs): fetch for the JSON calls, node:http
// for uploads (stream-request.ts: backpressure), `User-Agent`, lowercase `bearer` token, URLs
// joined as `Url::join` does, errors displayed as `<error>: <message>` or `HTTP <status>: <body>`.
import { STATUS_CODES } from "node:http";
import {
  API_PREFIX,
  HEADER_NAR_INFO,
  HEADER_NAR_INFO_PREAMBLE_SIZE,
  PREAMBLE_THRESHOLD,
  type CacheConfig,
  type CreateCacheRequest,
  type DeletePathsRequest,
  type FinalizeUploadSessionResponse,
  type GetMissingPathsRequest,
  type ListCachesResponse,
  type ListPinsResponse,
  type OidcExchangeResponse,
  type PinInfo,
  type StartUploadPathSessionRequest,
  type StartUploadPathSessionResponse,
  type UploadPathNarInfo,
  type UploadPathResult,
  type UploadSessionStatus,
} from "../api/v1.ts";
import { ApiError, NetworkError, UserError } from "./errors.ts";
import { BodyError, streamRequest, type StreamReply } from "./stream-request.ts";

export const USER_AGENT = "Attic/attic-client (attic-ts)";

/** What the client makes of an upload reply; unknown or unparsable replies count as uploaded. */
export interface UploadOutcome {
  deduplicated: boolean;
  fileSize: number | null;
  fracDeduplicated: number | null;
}

export interface UploadOptions {
  forcePreamble?: boolean;
  signal?: AbortSignal;
}

export class ApiClient {
  #endpoint: URL;
  readonly #token: string | null;

  constructor(endpoint: string, token: string | null) {
    this.#endpoint = parseEndpoint(endpoint);
    this.#token = token;
  }

  get endpoint(): string {
    return this.#endpoint.href;
  }

  /** Switch to the `api_endpoint` the server advertises, as upstream does before pushing. */
  setEndpoint(endpoint: string): void {
    this.#endpoint = parseEndpoint(endpoint);
  }

  async getCacheConfig(cache: string): Promise<CacheConfig> {
    const res = await this.#send("GET", this.#cacheUrl(cache));
    return (await readJson(res)) as CacheConfig;
  }

  async createCache(cache: string, request: CreateCacheRequest): Promise<void> {
    await this.#send("POST", this.#cacheUrl(cache), request);
  }

  async configureCache(cache: string, patch: CacheConfig): Promise<void> {
    await this.#send("PATCH", this.#cacheUrl(cache), patch);
  }

  async destroyCache(cache: string): Promise<void> {
    await this.#send("DELETE", this.#cacheUrl(cache));
  }

  /** Hashes (of those given) that the cache does not hold, in no particular order. */
  async getMissingPaths(cache: string, storePathHashes: string[]): Promise<string[]> {
    const body: GetMissingPathsRequest = { cache, store_path_hashes: storePathHashes };
    const res = await this.#send("POST", this.#url("get-missing-paths"), body);
    const reply = (await readJson(res)) as { missing_paths?: unknown };
    if (!Array.isArray(reply.missing_paths) || !reply.missing_paths.every((h) => typeof h === "string")) {
      throw new UserError("Invalid response from the server: `missing_paths` is not a list of hashes");
    }
    return reply.missing_paths;
  }

  /** The caches the token can see (ours; the route of upstream's open PR #367). */
  async listCaches(): Promise<ListCachesResponse> {
    const res = await this.#send("GET", this.#url("cache-config"));
    const reply = (await readJson(res)) as ListCachesResponse;
    if (!Array.isArray(reply.caches)) throw new UserError("Invalid response from the server: `caches` is not a list");
    return reply;
  }

  /** Remove paths from a cache (ours); the hashes that were there. */
  async deletePaths(cache: string, storePathHashes: string[]): Promise<string[]> {
    const body: DeletePathsRequest = { cache, store_path_hashes: storePathHashes };
    const reply = (await readJson(await this.#send("POST", this.#url("delete-paths"), body))) as { deleted_paths?: unknown };
    if (!Array.isArray(reply.deleted_paths)) throw new UserError("Invalid response from the server: `deleted_paths` is not a list");
    return reply.deleted_paths as string[];
  }

  async pin(cache: string, name: string, storePath: string): Promise<PinInfo> {
    const res = await this.#send("PUT", this.#pinUrl(cache, name), { store_path: storePath });
    return (await readJson(res)) as PinInfo;
  }

  async unpin(cache: string, name: string): Promise<void> {
    await this.#send("DELETE", this.#pinUrl(cache, name));
  }

  async listPins(cache: string): Promise<PinInfo[]> {
    const reply = (await readJson(await this.#send("GET", new URL(cache, this.#url("pins/"))))) as ListPinsResponse;
    if (!Array.isArray(reply.pins)) throw new UserError("Invalid response from the server: `pins` is not a list");
    return reply.pins;
  }

  /** Exchange a CI job's OIDC ID token for an Attic token (ours). */
  async oidcExchange(idToken: string): Promise<OidcExchangeResponse> {
    const reply = (await readJson(await this.#send("POST", this.#url("oidc/exchange"), { id_token: idToken }))) as Partial<OidcExchangeResponse>;
    if (typeof reply.token !== "string") throw new UserError("Invalid response from the server: no `token`");
    return reply as OidcExchangeResponse;
  }

  /**
   * PUT upload-path with the NAR streamed (chunked encoding, no Content-Length). The upload info
   * travels in the `X-Attic-Nar-Info` header, or as a preamble of the body when it is large.
   */
  async uploadPath(info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>, options: UploadOptions = {}): Promise<UploadOutcome> {
    const json = JSON.stringify(info);
    const headers: Record<string, string> = {};
    let body: AsyncIterable<Uint8Array>;
    if (usePreamble(json, options.forcePreamble ?? false)) {
      const preamble = Buffer.from(json);
      headers[HEADER_NAR_INFO_PREAMBLE_SIZE] = String(preamble.length);
      body = prepend(preamble, nar);
    } else {
      headers[HEADER_NAR_INFO] = json;
      body = nar;
    }
    const url = this.#url("upload-path");
    let reply: StreamReply;
    try {
      reply = await streamRequest(url, { method: "PUT", headers: this.#headers(headers), body, signal: options.signal });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      // The NAR producer failed (`nix-store --dump`, ...): its error, not the connection's.
      if (err instanceof BodyError) {
        if (err.cause instanceof UserError) throw err.cause;
        throw new NetworkError(url.href, err.cause);
      }
      throw new NetworkError(url.href, err);
    }
    if (reply.status < 200 || reply.status > 299) throw apiErrorFrom(reply.status, reply.text);
    return parseUploadOutcome(reply.text);
  }

  /** POST upload-path/sessions: a session (id, part size), or the upload already done. */
  async startUploadSession(info: UploadPathNarInfo, chunkSize: number): Promise<StartUploadPathSessionResponse> {
    const body: StartUploadPathSessionRequest = { nar_info: info, chunk_size: chunkSize };
    const reply = (await readJson(await this.#send("POST", this.#url("upload-path/sessions"), body))) as StartUploadPathSessionResponse;
    if (reply.kind === "session" && (typeof reply.session_id !== "string" || !/^[0-9a-f-]{36}$/.test(reply.session_id) || !(reply.chunk_size > 0))) {
      throw new UserError("Invalid response from the server: a malformed upload session");
    }
    return reply;
  }

  /** PUT one part (its length known, so proxies need not buffer a chunked body). */
  async uploadPart(sessionId: string, seq: number, part: Uint8Array, options: { signal?: AbortSignal; onSent?: (bytes: number) => void } = {}): Promise<void> {
    const url = this.#sessionUrl(sessionId, `/parts/${seq}`);
    let reply: StreamReply;
    try {
      reply = await streamRequest(url, {
        method: "PUT",
        headers: this.#headers({ "content-length": String(part.length), "content-type": "application/octet-stream" }),
        body: slices(part, options.onSent),
        signal: options.signal,
      });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      throw new NetworkError(url.href, err);
    }
    if (reply.status < 200 || reply.status > 299) throw apiErrorFrom(reply.status, reply.text);
  }

  async finalizeUploadSession(sessionId: string): Promise<FinalizeUploadSessionResponse> {
    return (await readJson(await this.#send("POST", this.#sessionUrl(sessionId, "/finalize")))) as FinalizeUploadSessionResponse;
  }

  /** Where the session stands: the parts the server has (ours; not in upstream's PR). */
  async uploadSessionStatus(sessionId: string): Promise<UploadSessionStatus> {
    const reply = (await readJson(await this.#send("GET", this.#sessionUrl(sessionId)))) as UploadSessionStatus;
    if (!Array.isArray(reply.received_parts)) throw new UserError("Invalid response from the server: an upload session without `received_parts`");
    return reply;
  }

  async deleteUploadSession(sessionId: string): Promise<void> {
    await this.#send("DELETE", this.#sessionUrl(sessionId));
  }

  #sessionUrl(sessionId: string, suffix = ""): URL {
    return this.#url(`upload-path/sessions/${encodeURIComponent(sessionId)}${suffix}`);
  }

  #url(route: string): URL {
    return new URL(route, new URL(API_PREFIX, this.#endpoint));
  }

  #pinUrl(cache: string, name: string): URL {
    return new URL(`${cache}/${name}`, this.#url("pins/"));
  }

  #cacheUrl(cache: string): URL {
    return new URL(cache, this.#url("cache-config/"));
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { "user-agent": USER_AGENT, ...extra };
    if (this.#token !== null) headers.authorization = `bearer ${this.#token}`;
    return headers;
  }

  async #send(method: string, url: URL, json?: unknown): Promise<Response> {
    const init: RequestInit = { method, headers: this.#headers() };
    if (json !== undefined) {
      init.headers = this.#headers({ "content-type": "application/json" });
      init.body = JSON.stringify(json);
    }
    const res = await this.#fetch(url, init);
    if (!res.ok) throw await apiErrorOf(res);
    return res;
  }

  async #fetch(url: URL, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      throw new NetworkError(url.href, err);
    }
  }
}

/** Preamble mode when the info is large (as upstream, ≥ 4 KiB), or cannot travel in a header. */
export function usePreamble(json: string, force: boolean): boolean {
  return force || Buffer.byteLength(json) >= PREAMBLE_THRESHOLD || /[^\x20-\x7e]/.test(json);
}

export async function apiErrorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  return apiErrorFrom(res.status, text);
}

/** `<error>: <message>` for the server's JSON errors, else `HTTP <status> <reason>: <body>`. */
export function apiErrorFrom(status: number, body: string): ApiError {
  try {
    const j = JSON.parse(body) as { error?: unknown; message?: unknown };
    if (typeof j.error === "string" && typeof j.message === "string") {
      return new ApiError(status, j.error, `${j.error}: ${j.message}`);
    }
  } catch {
    // not JSON: shown raw below
  }
  const reason = STATUS_CODES[status];
  return new ApiError(status, null, `HTTP ${status}${reason === undefined ? "" : ` ${reason}`}: ${plainBody(body)}`);
}

/**
 * An error page (a proxy's, a load balancer's) in one line: its title, not its markup. A
 * plain-text body is shown as it is.
 */
function plainBody(body: string): string {
  if (!/^\s*</.test(body)) return body;
  const title = /<title[^>]*>([^<]*)<\/title>/i.exec(body)?.[1]?.replace(/\s+/g, " ").trim();
  return `an HTML page${title ? ` titled "${title}"` : ""} (from a proxy in front of the server?)`;
}

export function parseUploadOutcome(body: string): UploadOutcome {
  let j: unknown;
  try {
    j = JSON.parse(body);
  } catch {
    return { deduplicated: false, fileSize: null, fracDeduplicated: null };
  }
  return outcomeOf(j);
}

/** An upload result (`UploadPathResult`), as the client reports it. */
export function outcomeOf(j: UploadPathResult | unknown): UploadOutcome {
  const r = (typeof j === "object" && j !== null ? j : {}) as Record<string, unknown>;
  return {
    deduplicated: r.kind === "Deduplicated",
    fileSize: typeof r.file_size === "number" ? r.file_size : null,
    fracDeduplicated: typeof r.frac_deduplicated === "number" ? r.frac_deduplicated : null,
  };
}

function parseEndpoint(endpoint: string): URL {
  try {
    return new URL(endpoint);
  } catch {
    throw new UserError(`Invalid endpoint URL "${endpoint}"`);
  }
}

async function readJson(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError(`Invalid response from the server (expected JSON, got ${text === "" ? "an empty body" : JSON.stringify(text.slice(0, 200))})`);
  }
}

/** A part in pieces, each counted as it is handed to the socket (which takes it at its pace). */
async function* slices(part: Uint8Array, onSent: ((bytes: number) => void) | undefined): AsyncIterable<Uint8Array> {
  const step = 256 * 1024;
  for (let at = 0; at < part.length; at += step) {
    const piece = part.subarray(at, Math.min(part.length, at + step));
    yield piece;
    onSent?.(piece.length);
  }
}

async function* prepend(head: Uint8Array, rest: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  yield head;
  yield* rest;
}
