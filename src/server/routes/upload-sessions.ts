// Upload sessions (the routes of upstream's open PR #342, plus GET for resuming):
//   POST   /_api/v1/upload-path/sessions                    start (the upload info; a session id and the part size)
//   PUT    /_api/v1/upload-path/sessions/{id}/parts/{seq}   one part, raw bytes; idempotent
//   POST   /_api/v1/upload-path/sessions/{id}/finalize      pending / failed / completed; poll while pending
//   GET    /_api/v1/upload-path/sessions/{id}               (ours) the parts received, to resume
//   DELETE /_api/v1/upload-path/sessions/{id}               give up
// A session belongs to the user who started it: anyone else is told it does not exist.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { FinalizeUploadSessionResponse, StartUploadPathSessionResponse, UploadPathResult, UploadSessionStatus } from "../../api/v1.ts";
import { getCacheByName } from "../../db/queries/caches.ts";
import { deleteUploadSession } from "../../db/queries/upload-sessions.ts";
import { authorizeCache } from "../auth.ts";
import { noSuchUploadSession, requestError, ServerError, storageFull, uploadSessionFailed } from "../errors.ts";
import { asObject, isInt, requireJsonContentType, shapeError } from "../json-body.ts";
import { parseUploadInfo, type UploadInfo } from "../upload/info.ts";
import type { Uploader } from "../upload/pipeline.ts";
import { UploadSessions, type LiveSession } from "../upload/sessions.ts";

const SESSION_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** finalize answers `pending` after this long; the client polls */
const FINALIZE_WAIT_MS = 5_000;
const BASE = "/_api/v1/upload-path/sessions";

export async function uploadSessionRoutes(app: FastifyInstance, uploader: Uploader): Promise<void> {
  const routes = new UploadSessionRoutes(app, uploader);
  app.addHook("preClose", async () => routes.sessions.close());
  app.post(BASE, { preValidation: requireJsonContentType }, (request, reply) => routes.start(request, reply));
  app.register(async (scope) => {
    // a part's body is read by the session itself, as it arrives
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    scope.put(`${BASE}/:id/parts/:seq`, { bodyLimit: Number.MAX_SAFE_INTEGER }, (request, reply) => routes.putPart(request, reply));
  });
  app.post(`${BASE}/:id/finalize`, (request, reply) => routes.finalize(request, reply));
  app.get(`${BASE}/:id`, (request, reply) => routes.status(request, reply));
  app.delete(`${BASE}/:id`, (request, reply) => routes.abort(request, reply));
}

/** One named handler per route, over the server's live sessions. */
class UploadSessionRoutes {
  readonly sessions: UploadSessions;
  private readonly app: FastifyInstance;
  private readonly uploader: Uploader;

  constructor(app: FastifyInstance, uploader: Uploader) {
    const { db, config } = app.deps;
    this.app = app;
    this.uploader = uploader;
    this.sessions = new UploadSessions(db, uploader, app.metrics, {
      stagingPath: config.upload.stagingPath,
      idleMs: config.garbageCollection.staleGracePeriod * 1000,
    });
  }

  /** POST: a session for the upload info (or the path's result at once, when its NAR is already stored). */
  async start(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { db, config } = this.app.deps;
    const { info, wanted } = readStartBody(asObject(request.body));
    const { cache } = authorizeCache(request.attic.claims, info.cache, await getCacheByName(db, info.cache), ["push"]);
    const sub = request.attic.claims?.sub ?? null;
    const max = config.upload.maxChunkSize;
    if (max === null) throw requestError("Chunked transport upload is not enabled");
    const chunkSize = wanted ?? max;
    if (chunkSize === 0) throw requestError("Chunk size cannot be 0");
    if (chunkSize > max) throw requestError("Chunk size exceeds server limit");
    const dedup = await this.uploader.dedupWithoutProof(info, cache, sub);
    let answer: StartUploadPathSessionResponse;
    if (dedup) answer = { kind: "completed", result: dedup };
    else {
      const session = await this.sessions.start(info, cache, sub, chunkSize);
      answer = { kind: "session", session_id: session.id, chunk_size: chunkSize };
    }
    return reply.type("application/json").send(answer);
  }

  /** PUT a part: its bytes go into the session's pipeline as they arrive (a resent part is checked, not stored twice). */
  async putPart(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const found = await this.sessionOf(request);
    if (!("live" in found)) throw found.row.state === "completed" ? notAccepting() : this.sessions.notHere(found.row);
    const session = found.live;
    if (session.outcome.state === "failed") throw failedSession(session.outcome.error);
    if (session.outcome.state !== "uploading") throw notAccepting();
    const seqText = (request.params as { seq: string }).seq;
    const seq = /^\d{1,9}$/.test(seqText) ? Number(seqText) : -1;
    const cutOff = new AbortController();
    const socket = request.raw.socket;
    const onClose = (): void => cutOff.abort(new Error("the connection closed"));
    socket.once("close", onClose);
    try {
      await session.parts.receive(seq, request.raw, cutOff.signal);
    } catch (err) {
      if (err instanceof ServerError) throw err;
      // the pipeline stopped reading: its failure is about to be known
      await Promise.race([session.done, new Promise((r) => setTimeout(r, 1000).unref())]);
      const outcome = session.outcome as LiveSession["outcome"];
      if (outcome.state === "failed") throw failedSession(outcome.error);
      throw err;
    } finally {
      socket.off("close", onClose);
    }
    await this.sessions.touch(session);
    return reply.code(200).send();
  }

  /** POST finalize: completed, failed, or pending (the client polls). */
  async finalize(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const found = await this.sessionOf(request);
    let answer: FinalizeUploadSessionResponse;
    if (!("live" in found)) {
      const row = found.row;
      if (row.state === "completed" && row.result !== null) answer = { kind: "completed", result: JSON.parse(row.result) as UploadPathResult };
      else if (row.state === "failed") answer = { kind: "failed", message: row.message ?? "unknown reason" };
      else throw this.sessions.notHere(row);
    } else {
      await this.sessions.touch(found.live);
      answer = finalizeAnswer(await this.sessions.finalize(found.live, FINALIZE_WAIT_MS));
    }
    return reply.type("application/json").send(answer);
  }

  /** GET (ours): the parts received, so that a client resumes from the first one missing. */
  async status(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const found = await this.sessionOf(request);
    if (!("live" in found)) {
      const row = found.row;
      if (row.state !== "completed" && row.state !== "failed") throw this.sessions.notHere(row);
      return reply.type("application/json").send(status(row.id, row.state, row.chunk_size, row.num_parts, [], row.message));
    }
    const s = found.live;
    const { numParts, chunkSize } = s.parts.plan;
    const message = s.outcome.state === "failed" ? s.outcome.error.message : null;
    const answer = status(s.id, s.outcome.state, chunkSize, numParts, s.parts.receivedParts(), message);
    if (s.outcome.state === "failed" && storageFull(s.outcome.error)) {
      const full = new ServerError("StorageFull");
      Object.assign(answer, { message: full.message, error: full.kind, code: full.status });
    }
    return reply.type("application/json").send(answer);
  }

  /** DELETE: give the session up (a completed one cannot be). */
  async abort(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const found = await this.sessionOf(request);
    if ("live" in found) await this.sessions.abort(found.live);
    else {
      if (found.row.state === "completed") throw requestError("Upload session cannot be aborted");
      if (found.row.state !== "failed") {
        const err = this.sessions.notHere(found.row);
        if (err.status === 503) throw err;
      }
      await deleteUploadSession(this.app.deps.db, found.row.id);
    }
    return reply.code(200).send();
  }

  /** The caller's session, after the caller's push permission on its cache is checked again. */
  private async sessionOf(request: FastifyRequest) {
    const id = (request.params as { id?: unknown }).id;
    if (typeof id !== "string" || !SESSION_ID_RE.test(id)) throw noSuchUploadSession();
    const found = await this.sessions.find(id);
    if (!found) throw noSuchUploadSession();
    const { cacheName, createdBy } = "live" in found ? { cacheName: found.live.info.cache, createdBy: found.live.createdBy } : ownerOfRow(found.row);
    if ((request.attic.claims?.sub ?? null) !== createdBy) throw noSuchUploadSession();
    authorizeCache(request.attic.claims, cacheName, await getCacheByName(this.app.deps.db, cacheName), ["push"]);
    return found;
  }
}

/** The start body: the upload info (checked before permission, as upstream's extractor does) and the part size asked for. */
function readStartBody(body: Record<string, unknown>): { info: UploadInfo; wanted: number | null } {
  if (typeof body.nar_info !== "object" || body.nar_info === null || Array.isArray(body.nar_info)) throw shapeError("nar_info: invalid type, expected a map");
  const wanted = body.chunk_size;
  if (wanted !== undefined && wanted !== null && !(isInt(wanted) && wanted >= 0)) throw shapeError("chunk_size: invalid type, expected usize");
  return { info: parseUploadInfo(JSON.stringify(body.nar_info)), wanted: typeof wanted === "number" ? wanted : null };
}

/** A failed session, to a part: a full storage is answered as such (507, no retry helps); anything else 409, start again. */
function failedSession(error: Error): Error {
  return storageFull(error) ? error : uploadSessionFailed(error.message);
}

function notAccepting(): ServerError {
  return requestError("Upload session is not accepting parts");
}

function ownerOfRow(row: { upload_info: string; created_by: string | null }): { cacheName: string; createdBy: string | null } {
  return { cacheName: (JSON.parse(row.upload_info) as { cache: string }).cache, createdBy: row.created_by };
}

function finalizeAnswer(outcome: LiveSession["outcome"]): FinalizeUploadSessionResponse {
  switch (outcome.state) {
    case "completed":
      return { kind: "completed", result: outcome.result };
    case "failed":
      // the client's fault (the NAR does not match its hash, is not a NAR): its 4xx; a full
      // storage: its 507 (a new session would not help either)
      if ((outcome.error instanceof ServerError && outcome.error.status < 500) || storageFull(outcome.error)) throw outcome.error;
      return { kind: "failed", message: outcome.error.message };
    default:
      return { kind: "pending" };
  }
}

function status(id: string, state: UploadSessionStatus["state"], chunkSize: number, numParts: number, received: number[], message: string | null): UploadSessionStatus {
  return { session_id: id, state, chunk_size: chunkSize, num_parts: numParts, received_parts: received, ...(message !== null && { message }) };
}
