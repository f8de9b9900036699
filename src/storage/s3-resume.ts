// An S3 object body that survives a broken connection: when the response breaks off mid-body (a
// reset, a proxy timeout, a short body), the rest is fetched with a ranged GET from the byte
// reached (`Range: bytes=N-`, `If-Match` on the first response's ETag so a replaced object is
// never spliced onto the old one's head), a few times at most. The consumer sees one stream of
// the whole object, or an error; never a short stream that ends as if complete.
import { addAbortSignal, PassThrough, type Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

/** Resumes per object body before the error is passed on. */
const MAX_RESUMES = 3;
const RESUME_DELAY_MS = 50;

/** Fetch the object's bytes from `offset` on (a ranged GET), checking it is still `etag`. */
export type ReopenAt = (offset: number, etag: string, signal: AbortSignal) => Promise<Readable>;

export class ShortBodyError extends Error {
  constructor(got: number, expected: number) {
    super(`S3 response ended after ${got} of ${expected} bytes`);
    this.name = "ShortBodyError";
  }
}

/**
 * The whole object as one stream, starting from the first response's `body`. Without a known
 * length and ETag a break cannot be resumed safely, and the error passes through. Destroying the
 * result (or `signal` firing) aborts the request in flight.
 */
export function resumingBody(
  first: { body: Readable; length: number | undefined; etag: string | undefined },
  reopen: ReopenAt,
  opts: { signal?: AbortSignal; onResume?: (offset: number, error: unknown) => void } = {},
): Readable {
  const out = new PassThrough({ highWaterMark: first.body.readableHighWaterMark });
  const controller = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
  const { length, etag } = first;
  let offset = 0;
  let resumes = 0;
  let current = first.body;

  const fail = (error: unknown) => {
    if (!out.destroyed) out.destroy(error as Error);
  };
  const resume = async (error: unknown) => {
    if (out.destroyed || signal.aborted) return;
    if (length === undefined || etag === undefined || resumes >= MAX_RESUMES) return fail(error);
    resumes++;
    opts.onResume?.(offset, error);
    try {
      await sleep(RESUME_DELAY_MS * resumes, undefined, { signal });
      attach(await reopen(offset, etag, signal));
    } catch (err) {
      fail(signal.aborted ? error : err);
    }
  };
  const attach = (body: Readable) => {
    current = body;
    body.on("data", (piece: Buffer) => (offset += piece.length));
    body.once("error", (err) => void resume(err));
    body.once("end", () => {
      if (length !== undefined && offset < length) void resume(new ShortBodyError(offset, length));
      else out.end();
    });
    body.pipe(out, { end: false });
  };

  out.once("close", () => {
    controller.abort();
    current.destroy();
  });
  if (opts.signal) addAbortSignal(opts.signal, out);
  attach(first.body);
  return out;
}
