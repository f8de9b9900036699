// Uploading one path: the upload info as upstream's client builds it (references as base
// names, `deriver` and `system` null, `nar_hash` as `sha256:<hex>`), the NAR streamed from the
// store, and retries with exponential backoff when the failure is transient (no answer, 429, a
// 5xx other than 507 "storage full"). Each attempt streams the NAR again from the start. NARs
// larger than a part go through an upload session (parts.ts), which resumes by itself. A body a
// proxy refuses as too large (413) is sent again in smaller parts (part-size.ts).
import type { UploadPathNarInfo } from "../../api/v1.ts";
import type { UploadOutcome, UploadOptions } from "../api.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiError, NetworkError, NixError } from "../errors.ts";
import type { PathInfo } from "../nix-path-info.ts";
import type { LocalStore } from "../nix-store.ts";
import type { PathBar } from "../progress.ts";
import { hashOfPath } from "./plan.ts";
import { SessionLost, uploadInParts, type PartsApi, type PartsPolicy } from "./parts.ts";
import { isProxyTooLarge, PartSizer, RefusedAsTooLarge } from "./part-size.ts";
import type { SessionJournal } from "./session-journal.ts";
import { humanBytes } from "../../util/size.ts";

/** The upload calls; those of upload sessions only where a NAR may go in parts. */
export interface UploadApi extends Partial<PartsApi> {
  uploadPath(info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>, options?: UploadOptions): Promise<UploadOutcome>;
}

export interface RetryPolicy {
  attempts: number;
  /** delay before the second attempt; doubled each time */
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 500 };

export interface UploadDeps {
  store: Pick<LocalStore, "nar">;
  api: UploadApi;
  cache: string;
  forcePreamble: boolean;
  /** NARs larger than this go in parts through an upload session; null: always one request */
  partSize?: number | null;
  /** the part size shared by the workers of a run (made from `partSize` when absent) */
  sizer?: PartSizer;
  /** open upload sessions, kept so that a push run again resumes them */
  journal?: SessionJournal;
  retry?: RetryPolicy;
  partsPolicy?: PartsPolicy;
  signal?: AbortSignal;
}

export function uploadInfoOf(info: PathInfo, cache: string): UploadPathNarInfo {
  // Field order as upstream's struct, so the JSON is byte-for-byte what its client sends.
  return {
    cache,
    store_path_hash: hashOfPath(info.path),
    store_path: info.path,
    references: info.references.map((r) => r.slice(r.lastIndexOf("/") + 1)),
    system: null,
    deriver: null,
    sigs: info.sigs,
    ca: info.ca,
    nar_hash: info.narHash,
    nar_size: info.narSize,
  };
}

export function isTransient(err: unknown): boolean {
  if (err instanceof SessionLost) return true;
  if (err instanceof ApiError) return err.transient;
  return err instanceof NetworkError;
}

export async function uploadWithRetry(info: PathInfo, deps: UploadDeps, bar: PathBar): Promise<UploadOutcome> {
  const retry = deps.retry ?? DEFAULT_RETRY;
  const uploadInfo = uploadInfoOf(info, deps.cache);
  const sizer = deps.sizer ?? new PartSizer(hasParts(deps.api) ? (deps.partSize ?? null) : null);
  /** a proxy refused the whole NAR: parts from now on, whatever its size */
  let inParts = false;
  for (let attempt = 1, tries = 1; ; tries++) {
    const attemptAbort = new AbortController();
    const signal = deps.signal === undefined ? attemptAbort.signal : AbortSignal.any([deps.signal, attemptAbort.signal]);
    if (tries > 1) bar.restart();
    const partSize = sizer.size;
    try {
      if (partSize !== null && (inParts || info.narSize > partSize) && hasParts(deps.api)) {
        const parts = { api: deps.api, signal, ...(deps.partsPolicy && { policy: deps.partsPolicy }), ...(deps.journal && { journal: deps.journal }) };
        return await uploadInParts(uploadInfo, deps.store.nar(info.path, signal), partSize, parts, bar);
      }
      try {
        return await deps.api.uploadPath(uploadInfo, counted(deps.store.nar(info.path, signal), bar), {
          forcePreamble: deps.forcePreamble,
          signal,
        });
      } catch (err) {
        throw isProxyTooLarge(err) ? new RefusedAsTooLarge(info.narSize, err) : err;
      }
    } catch (err) {
      if (err instanceof RefusedAsTooLarge && deps.signal?.aborted !== true) {
        // throws the one-line explanation when no smaller part is possible
        const next = sizer.shrink(err.bytes);
        bar.note?.(`a proxy refused ${humanBytes(err.bytes)} in one request (HTTP 413); going on in parts of ${humanBytes(next)}`, true);
        inParts = true;
        continue;
      }
      if (err instanceof NixError || !isTransient(err) || attempt >= retry.attempts || deps.signal?.aborted === true) throw err;
      await sleep(retry.baseDelayMs * 2 ** (attempt - 1), undefined, { signal: deps.signal });
      attempt++;
    } finally {
      // Stops `nix-store --dump` if the server answered before reading the whole body.
      attemptAbort.abort();
    }
  }
}

async function* counted(source: AsyncIterable<Uint8Array>, bar: PathBar): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    bar.advance(chunk.length);
    yield chunk;
  }
}

function hasParts(api: UploadApi): api is UploadApi & PartsApi {
  return (["startUploadSession", "uploadPart", "finalizeUploadSession", "uploadSessionStatus", "deleteUploadSession"] as const).every((m) => api[m] !== undefined);
}
