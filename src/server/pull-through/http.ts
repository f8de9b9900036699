// Requests to upstreams (issue 27): every URL, redirect targets included, is checked against the
// allowlist before a request is sent; a request has a deadline for its answer and the body a
// deadline per pause; an upstream's body is never put in an error (a tenant must not read
// internal services through our error texts).
import { Readable, Transform } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { isAllowedUrl } from "./allowlist.ts";

const MAX_REDIRECTS = 3;

export type UpstreamFailure = "refused" | "timeout" | "network" | "status";

export class UpstreamError extends Error {
  readonly kind: UpstreamFailure;
  readonly status: number | undefined;
  constructor(kind: UpstreamFailure, message: string, status?: number) {
    super(message);
    this.name = "UpstreamError";
    this.kind = kind;
    this.status = status;
  }
}

export interface UpstreamResponse {
  status: number;
  /** the body as a Node stream (a pause longer than the timeout destroys it); null for 404 */
  body: Readable | null;
  /** the URL that answered (after redirects) */
  url: string;
}

/**
 * GET `url`: 200 with its body, 404/403/410 as "absent" (body null), anything else an
 * UpstreamError. `allowed` is checked for the URL and each redirect target.
 */
export async function upstreamGet(
  url: string,
  allowed: readonly string[],
  timeoutMs: number,
  opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<UpstreamResponse> {
  const { signal, onBytes } = opts;
  let current = url;
  for (let hop = 0; ; hop++) {
    if (!isAllowedUrl(current, allowed)) throw new UpstreamError("refused", "the upstream URL is not in pull-through.allowed-upstreams");
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    let res: Response;
    try {
      res = await fetch(current, { redirect: "manual", signal: abort.signal, headers: { "user-agent": "atticd pull-through" } });
    } catch {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (abort.signal.aborted && !signal?.aborted) throw new UpstreamError("timeout", `no answer within ${timeoutMs} ms`);
      throw new UpstreamError("network", "the upstream could not be reached");
    }
    clearTimeout(timer);
    const discard = () => void res.body?.cancel().catch(() => {});
    if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
      discard();
      signal?.removeEventListener("abort", onAbort);
      if (hop >= MAX_REDIRECTS) throw new UpstreamError("status", "too many redirects", res.status);
      current = new URL(res.headers.get("location")!, current).toString();
      continue;
    }
    if (res.status === 404 || res.status === 403 || res.status === 410) {
      discard();
      signal?.removeEventListener("abort", onAbort);
      return { status: res.status, body: null, url: current };
    }
    if (res.status !== 200 || !res.body) {
      discard();
      signal?.removeEventListener("abort", onAbort);
      throw new UpstreamError("status", `the upstream answered ${res.status}`, res.status);
    }
    const body = guarded(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), timeoutMs, () => abort.abort(), onBytes);
    body.once("close", () => signal?.removeEventListener("abort", onAbort));
    return { status: 200, body, url: current };
  }
}

/**
 * `source` through a Transform that fails it when the upstream sends nothing for `ms` (a pause
 * while our side is the slow one, its buffer full, does not count), and counts the bytes. No
 * `data` listener on `source`: that would start the flow before the caller reads.
 */
function guarded(source: Readable, ms: number, onTimeout: () => void, onBytes?: (n: number) => void): Readable {
  let timer: NodeJS.Timeout | undefined;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      arm();
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      clearTimeout(timer);
      cb();
    },
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (out.readableLength >= out.readableHighWaterMark || out.writableNeedDrain) return arm();
      onTimeout();
      out.destroy(new UpstreamError("timeout", `the upstream paused for more than ${ms} ms`));
    }, ms);
  };
  source.on("error", (err) => out.destroy(err));
  out.once("close", () => {
    clearTimeout(timer);
    source.destroy();
  });
  source.pipe(out);
  arm();
  return out;
}

/** The whole body, at most `limit` bytes (a narinfo). */
export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const piece of body) {
    size += (piece as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new UpstreamError("status", `the answer is larger than ${limit} bytes`);
    }
    parts.push(piece as Buffer);
  }
  return Buffer.concat(parts);
}
