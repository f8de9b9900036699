// Uploading one NAR in parts through an upload session (upstream's open PR #342): parts of the
// advertised size, one after the other, each sent with its length so a proxy with a body limit
// lets it pass. A part that fails on the way (no answer, a 5xx) is retried after asking the
// server which parts it has, so a broken connection costs at most the part in flight. The next
// part is read from the store while the current one is sent (two parts in memory at most).
import type { FinalizeUploadSessionResponse, StartUploadPathSessionResponse, UploadPathNarInfo, UploadSessionStatus } from "../../api/v1.ts";
import { outcomeOf, type UploadOutcome } from "../api.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiError, NetworkError, UserError } from "../errors.ts";
import type { PathBar } from "../progress.ts";
import { isProxyTooLarge, RefusedAsTooLarge } from "./part-size.ts";
import type { SessionJournal } from "./session-journal.ts";

export interface PartsApi {
  startUploadSession(info: UploadPathNarInfo, chunkSize: number): Promise<StartUploadPathSessionResponse>;
  uploadPart(sessionId: string, seq: number, part: Uint8Array, options?: { signal?: AbortSignal; onSent?: (bytes: number) => void }): Promise<void>;
  finalizeUploadSession(sessionId: string): Promise<FinalizeUploadSessionResponse>;
  uploadSessionStatus(sessionId: string): Promise<UploadSessionStatus>;
  deleteUploadSession(sessionId: string): Promise<void>;
}

export interface PartsPolicy {
  /** tries of one part (or of a finalize call) before giving up */
  attempts: number;
  /** delay before the second try, doubled each time up to 10 s */
  baseDelayMs: number;
  /** pause between polls of a pending finalize */
  pollMs: number;
}

export const DEFAULT_PARTS_POLICY: PartsPolicy = { attempts: 8, baseDelayMs: 500, pollMs: 1000 };

/** The server no longer has the session (it restarted, or gave it up): start again with a new one. */
export class SessionLost extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "SessionLost";
  }
}

export interface PartsDeps {
  api: PartsApi;
  policy?: PartsPolicy;
  signal?: AbortSignal;
  /** where open sessions are kept, so that a push run again resumes them */
  journal?: SessionJournal;
}

export async function uploadInParts(info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>, partSize: number, deps: PartsDeps, bar: PathBar): Promise<UploadOutcome> {
  const policy = deps.policy ?? DEFAULT_PARTS_POLICY;
  const opened = await openSession(info, partSize, deps, bar);
  if ("outcome" in opened) return opened.outcome;
  const { id, chunkSize, received } = opened;
  const numParts = Math.ceil(info.nar_size / chunkSize);
  try {
    let seq = 0;
    for await (const part of prefetched(fixedParts(nar, chunkSize))) {
      if (seq >= numParts) throw new UserError(`The NAR of ${info.store_path} is longer than its recorded size`);
      if (received.has(seq)) bar.advance(part.length);
      else await sendPart(deps, policy, bar, { id, seq, numParts }, part);
      seq++;
    }
    if (seq !== numParts) throw new UserError(`The NAR of ${info.store_path} is shorter than its recorded size`);
    bar.note?.(`finalizing ${numParts} parts`);
    const outcome = await finalize(deps, policy, id);
    await deps.journal?.forget(info);
    return outcome;
  } catch (err) {
    // interrupted (Ctrl-C): the session stays, and the next push resumes it
    if (deps.signal?.aborted === true && deps.journal !== undefined) throw err;
    await deps.journal?.forget(info);
    // give the server its space back at once, rather than after the grace period
    if (!(err instanceof SessionLost)) await deps.api.deleteUploadSession(id).catch(() => {});
    throw err;
  }
}

type Opened = { outcome: UploadOutcome } | { id: string; chunkSize: number; received: ReadonlySet<number> };

/** The session a killed push left (the parts the server has), or a new one, recorded in the journal. */
async function openSession(info: UploadPathNarInfo, partSize: number, deps: PartsDeps, bar: PathBar): Promise<Opened> {
  const saved = await deps.journal?.load(info);
  if (saved) {
    const status = await deps.api.uploadSessionStatus(saved.session_id).catch(() => null);
    if (status?.state === "uploading" && status.chunk_size === saved.chunk_size) {
      bar.note?.(`resuming the upload session of an earlier push: ${status.received_parts.length} of ${status.num_parts} parts are on the server`, true);
      return { id: saved.session_id, chunkSize: saved.chunk_size, received: new Set(status.received_parts) };
    }
    await deps.journal!.forget(info);
  }
  const started = await deps.api.startUploadSession(info, partSize);
  if (started.kind === "completed") return { outcome: outcomeOf(started.result) };
  await deps.journal?.save(info, { session_id: started.session_id, chunk_size: started.chunk_size });
  return { id: started.session_id, chunkSize: started.chunk_size, received: new Set() };
}

function lost(err: unknown): boolean {
  return err instanceof ApiError && (err.kind === "NoSuchUploadSession" || err.kind === "UploadSessionFailed");
}

function transient(err: unknown): boolean {
  return (err instanceof ApiError && err.transient) || err instanceof NetworkError;
}

const delay = (policy: PartsPolicy, attempt: number) => Math.min(10_000, policy.baseDelayMs * 2 ** (attempt - 1));

async function sendPart(deps: PartsDeps, policy: PartsPolicy, bar: PathBar, at: { id: string; seq: number; numParts: number }, part: Uint8Array): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let sent = 0;
    try {
      await deps.api.uploadPart(at.id, at.seq, part, {
        signal: deps.signal,
        onSent: (n) => {
          sent += n;
          bar.advance(n);
        },
      });
      return;
    } catch (err) {
      bar.advance(-sent);
      // a proxy's body limit: the caller goes on in smaller parts
      if (isProxyTooLarge(err)) throw new RefusedAsTooLarge(part.length, err);
      if (lost(err)) throw new SessionLost((err as Error).message);
      if (!transient(err) || attempt >= policy.attempts || deps.signal?.aborted === true) throw err;
      bar.note?.(`part ${at.seq + 1} of ${at.numParts} failed (${(err as Error).message}); resuming`, true);
      await sleep(delay(policy, attempt), undefined, { signal: deps.signal });
      // did it arrive after all? (the answer may be what was lost)
      const status = await deps.api.uploadSessionStatus(at.id).catch((e: unknown) => {
        if (lost(e)) throw new SessionLost((e as Error).message);
        return null;
      });
      // failed for a reason a new session cannot help (its storage is full): that error, once
      if (status?.state === "failed" && status.error !== undefined && status.code !== undefined) {
        throw new ApiError(status.code, status.error, `${status.error}: ${status.message ?? ""}`);
      }
      if (status?.received_parts.includes(at.seq) === true) {
        bar.advance(part.length);
        return;
      }
    }
  }
}

async function finalize(deps: PartsDeps, policy: PartsPolicy, id: string): Promise<UploadOutcome> {
  for (let attempt = 1; ; ) {
    let reply: FinalizeUploadSessionResponse;
    try {
      reply = await deps.api.finalizeUploadSession(id);
    } catch (err) {
      if (lost(err)) throw new SessionLost((err as Error).message);
      if (!transient(err) || attempt >= policy.attempts) throw err;
      await sleep(delay(policy, attempt++), undefined, { signal: deps.signal });
      continue;
    }
    if (reply.kind === "completed") return outcomeOf(reply.result);
    if (reply.kind === "failed") throw new SessionLost(`The upload session failed: ${reply.message}`);
    await sleep(policy.pollMs, undefined, { signal: deps.signal });
  }
}

/** The NAR in parts of `size` bytes (the last one shorter). */
export async function* fixedParts(nar: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let part = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const piece of nar) {
    for (let at = 0; at < piece.length; ) {
      const n = Math.min(size - filled, piece.length - at);
      part.set(piece.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === size) {
        yield part;
        part = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield part.subarray(0, filled);
}

/** The next item is read while the current one is in use. */
async function* prefetched<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let next = it.next();
  try {
    for (;;) {
      const r = await next;
      if (r.done === true) return;
      next = it.next();
      // a failure while no one awaits it is seen at the next await, not as an unhandled rejection
      next.catch(() => {});
      yield r.value;
    }
  } finally {
    // not awaited: it would wait for the part being read ahead
    void it.return?.()?.catch(() => {});
  }
}
