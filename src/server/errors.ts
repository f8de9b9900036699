// The one error catalogue and the one error path: every error the server returns, with
// upstream's `error` name, HTTP status and message text (spec section 1.4), the plain-text
// rejections upstream's extractors answer before auth, and the handler that renders them all.
// Routes throw these; `errorHandler` renders `{"code","error","message"}` (or the plain text).
// Storage and DB layers never build HTTP errors. docs/errors.md lists both tables (checked by
// test/unit/server/errors-doc.test.ts and error-catalogue-doc.test.ts).
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { classifyDatabaseError } from "../db/engines/index.ts";
import { UploadRowsReaped } from "../db/queries/reaped.ts";
import { redact } from "../db/url.ts";
import { StorageFullError } from "../storage/types.ts";

export type ErrorKind =
  | "NotFound"
  | "Unauthorized"
  | "InternalServerError"
  | "NoSuchCache"
  | "CacheAlreadyExists"
  | "NoSuchObject"
  | "InvalidCompressionType"
  | "IncompleteNar"
  | "AccessError"
  | "RequestError"
  | "ServiceUnavailable"
  | "StorageFull"
  | "NoSuchUploadSession"
  | "UploadSessionFailed"
  | "NarTooLarge"
  | "StagingFull"
  | "RangeNotSatisfiable"
  | "TokenRevoked"
  | "InvalidIdToken"
  | "NoSuchPin";

export const ERROR_CATALOGUE: Readonly<Record<ErrorKind, { status: number; message: string }>> = {
  NotFound: { status: 404, message: "The URL you requested was not found." },
  Unauthorized: { status: 401, message: "Unauthorized." },
  InternalServerError: { status: 500, message: "The server encountered an internal error or misconfiguration." },
  NoSuchCache: { status: 404, message: "The requested cache does not exist." },
  CacheAlreadyExists: { status: 400, message: "The cache already exists." },
  NoSuchObject: { status: 404, message: "The requested object does not exist." },
  InvalidCompressionType: { status: 400, message: 'Invalid compression type "{name}".' },
  IncompleteNar: { status: 503, message: "The requested NAR has missing chunks and needs to be repaired." },
  AccessError: { status: 403, message: "Access error: User does not have permission to complete this action." },
  RequestError: { status: 400, message: "General request error: {detail}" },
  // Ours: the database or object store is unreachable; clients should retry.
  ServiceUnavailable: { status: 503, message: "The service is temporarily unavailable: {detail}" },
  // Ours (nix copy --to http://…): a NAR over nix-protocol.max-nar-size, and staging at its bound.
  NarTooLarge: { status: 413, message: "The NAR is larger than this server accepts ({detail})." },
  StagingFull: { status: 503, message: "The staging area for NARs pushed with Nix is full; try again later." },
  // Ours: a Range on a NAR download starting past its end.
  RangeNotSatisfiable: { status: 416, message: "The requested range is not satisfiable ({detail})." },
  // Ours: the disk, quota or bucket behind the storage or the database is full; retrying as such
  // cannot help, and nothing of the failed request was kept.
  StorageFull: { status: 507, message: "The server's storage is full, so nothing was stored. Try again once space has been freed on the server." },
  // Ours (upload sessions): unknown, deleted, reaped, or another user's session (never told apart).
  NoSuchUploadSession: { status: 404, message: "The upload session does not exist." },
  // Ours: the session can take nothing more (its server restarted, its NAR was refused, …);
  // the client starts a new session.
  UploadSessionFailed: { status: 409, message: "The upload session has failed: {detail}" },
  // Ours: the token was revoked by the server's administrator (atticadm revoke-token).
  TokenRevoked: { status: 401, message: "Unauthorized: the token has been revoked." },
  // Ours: the OIDC token exchange refused the CI job's ID token; the detail names the reason.
  InvalidIdToken: { status: 401, message: "The ID token was refused: {detail}" },
  // Ours: unpin of a pin name the cache does not have.
  NoSuchPin: { status: 404, message: "The requested pin does not exist." },
};

export class ServerError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  /** the original error, logged for 5xx, never shown to clients */
  override readonly cause: unknown;

  constructor(kind: ErrorKind, params: { detail?: string; name?: string; cause?: unknown } = {}) {
    const entry = ERROR_CATALOGUE[kind];
    // a client error is an answer, not a bug: no stack to capture (Nix asks for many narinfo that
    // are missing, and capturing one costs more than the lookup)
    const limit = Error.stackTraceLimit;
    if (entry.status < 500) Error.stackTraceLimit = 0;
    try {
      super(entry.message.replace("{detail}", params.detail ?? "").replace("{name}", params.name ?? ""));
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = "ServerError";
    this.kind = kind;
    this.status = entry.status;
    this.cause = params.cause;
  }

  toJSON(): { code: number; error: string; message: string } {
    return { code: this.status, error: this.kind, message: this.message };
  }
}

export const notFound = () => new ServerError("NotFound");
export const unauthorized = () => new ServerError("Unauthorized");
export const noSuchCache = () => new ServerError("NoSuchCache");
export const noSuchObject = () => new ServerError("NoSuchObject");
export const cacheAlreadyExists = () => new ServerError("CacheAlreadyExists");
export const accessError = () => new ServerError("AccessError");
export const incompleteNar = () => new ServerError("IncompleteNar");
export const tokenRevoked = () => new ServerError("TokenRevoked");
export const invalidIdToken = (detail: string) => new ServerError("InvalidIdToken", { detail });
export const noSuchPin = () => new ServerError("NoSuchPin");
export const requestError = (detail: string, cause?: unknown) => new ServerError("RequestError", { detail, cause });
export const narTooLarge = (detail: string) => new ServerError("NarTooLarge", { detail });
export const stagingFull = () => new ServerError("StagingFull");
export const rangeNotSatisfiable = (detail: string) => new ServerError("RangeNotSatisfiable", { detail });
export const internalError = (cause: unknown) => new ServerError("InternalServerError", { cause });
export const noSuchUploadSession = () => new ServerError("NoSuchUploadSession");
export const uploadSessionFailed = (detail: string) => new ServerError("UploadSessionFailed", { detail });
export const serviceUnavailable = (detail: string, cause?: unknown) =>
  new ServerError("ServiceUnavailable", { detail, cause });

/**
 * Plain-text rejections that happen before auth (upstream's axum extractors answer these in
 * text, not JSON): invalid path segments, wrong content type, malformed or mis-shaped JSON.
 */
export class PlainRejection extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "PlainRejection";
    this.status = status;
  }
}

/** Every plain-text rejection, with upstream's message (docs/errors.md, "Plain-text answers"). */
export const rejections = {
  invalidUrl: (detail: string) => new PlainRejection(400, `Invalid URL: ${detail}`),
  notJson: () => new PlainRejection(415, "Expected request with `Content-Type: application/json`"),
  malformedJson: (detail: string) => new PlainRejection(400, `Failed to parse the request body as JSON: ${detail}`),
  wrongShape: (detail: string) => new PlainRejection(422, `Failed to deserialize the JSON body into the target type: ${detail}`),
  bodyTooLarge: () => new PlainRejection(413, "Failed to buffer the request body: length limit exceeded"),
};

/** fastify's own rejections of a request body as the plain text upstream answers, else null. */
function frameworkRejection(error: FastifyError): PlainRejection | null {
  if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") return rejections.bodyTooLarge();
  if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return rejections.notJson();
  // fastify 5 reports malformed JSON as FST_ERR_CTP_INVALID_JSON_BODY (older ones as a SyntaxError)
  if (error.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || (error.statusCode === 400 && error instanceof SyntaxError)) {
    return rejections.malformedJson(error.message);
  }
  if (typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) return new PlainRejection(error.statusCode, error.message);
  return null;
}

function sendJson(reply: FastifyReply, error: ServerError): FastifyReply {
  return reply.code(error.status).type("application/json").send(error.toJSON());
}

/** The body of a narinfo miss, rendered once: Nix asks for many paths a cache does not have. */
const NO_SUCH_OBJECT_BODY = JSON.stringify(noSuchObject().toJSON());

/**
 * The 404 NoSuchObject of a narinfo miss, answered by the route instead of thrown through
 * fastify's error path (the same status, type, body and log line as the handler below).
 */
export function replyNoSuchObject(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  request.log.debug(`NoSuchObject: ${ERROR_CATALOGUE.NoSuchObject.message}`);
  return reply.code(404).type("application/json").send(NO_SUCH_OBJECT_BODY);
}

function sendPlain(reply: FastifyReply, error: PlainRejection): FastifyReply {
  return reply.code(error.status).type("text/plain; charset=utf-8").send(error.message);
}

/**
 * The one error handler: catalogue errors as JSON, rejections as plain text, a full disk as 507,
 * an unreachable backend as 503, anything else as a 500 logged with its cause. 4xx are logged
 * at info (a missing path, Nix's everyday question, at debug), 5xx at error.
 */
export function errorHandler(databaseUrl: string) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (error instanceof ServerError) {
      if (error.status >= 500) request.log.error({ err: error.cause ?? error }, error.message);
      else if (error.kind === "NoSuchObject") request.log.debug(`${error.kind}: ${error.message}`);
      else request.log.info(`${error.kind}: ${error.message}`);
      return sendJson(reply, error);
    }
    if (error instanceof PlainRejection) return sendPlain(reply, error);
    const rejection = frameworkRejection(error);
    if (rejection) return sendPlain(reply, rejection);
    // before the 5xx test below: a 507 from the object store is not a passing outage
    const full = storageFull(error);
    if (full) {
      // one line, without the cause's stack: the where and why is all there is to say
      const where = full.storage ?? `the database ${redact(databaseUrl)}`;
      request.log.error({ storage: where, reason: full.reason }, `storage full: ${where} has no room left (${full.reason}); the request was refused with 507`);
      return sendJson(reply, new ServerError("StorageFull", { cause: error }));
    }
    // an upload GC cut off: the client starts it again
    if (error instanceof UploadRowsReaped) {
      request.log.warn(error.message);
      return sendJson(reply, new ServerError("ServiceUnavailable", { detail: error.message }));
    }
    const unavailable = unavailableReason(error);
    if (unavailable) {
      request.log.warn({ err: error }, "backend unavailable");
      return sendJson(reply, new ServerError("ServiceUnavailable", { detail: unavailable }));
    }
    request.log.error({ err: error }, storageRefusalHint(error) ?? "internal error");
    return sendJson(reply, new ServerError("InternalServerError", { cause: error }));
  };
}

/** No route for the method and path: a JSON 404 `NotFound` (upstream: an empty 405 for a wrong method). */
export function notFoundHandler(_request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendJson(reply, notFound());
}

/**
 * A path fastify cannot decode (`%zz`, invalid UTF-8) or whose segment is over maxParamLength:
 * upstream's Path extractor rejects such URLs in plain text.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  void sendPlain(reply, rejections.invalidUrl(error.message));
}

// Errors that mean a backend is unreachable for now, not that the request is wrong: what the
// database's engine classes as unavailable (`db/`: a lost connection, a server shutting down),
// refused or reset sockets, S3 5xx/throttling. They become 503 ServiceUnavailable so clients retry.
const UNAVAILABLE_SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]);

/** The error and the errors it wraps (`cause`), at most five deep. */
function* causeChain(error: unknown): Generator<unknown> {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) yield e;
}

export function unavailableReason(error: unknown): string | null {
  for (const e of causeChain(error)) {
    if (classifyDatabaseError(e)?.kind === "unavailable") return "a backend is unreachable";
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE_SOCKET_CODES.has(code)) return "a backend is unreachable";
    // the object store answered 5xx (after the S3 client's own retries) or throttled us
    const httpStatus = (e as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
    if (typeof httpStatus === "number" && (httpStatus >= 500 || httpStatus === 429)) return "the object store is unavailable";
  }
  return null;
}

/** Where space ran out and what said so (for the log). */
export interface FullStorage {
  /** the storage's name (`local:/path`, `s3:region/bucket`), or null when it is the database */
  storage: string | null;
  /** ENOSPC, EDQUOT, an S3 error code, HTTP 507, or the database engine's reason */
  reason: string;
}

/** The full storage or database behind `error`, or null if `error` is not about space. */
export function storageFull(error: unknown): FullStorage | null {
  for (const e of causeChain(error)) {
    if (e instanceof StorageFullError) return { storage: e.storage, reason: e.reason };
    const db = classifyDatabaseError(e);
    if (db?.kind === "full") return { storage: null, reason: db.reason };
  }
  return null;
}

// The object store refusing us for good: bad credentials, no such bucket, wrong region. Retrying
// will not help and the client cannot fix it, so the answer stays a 500, but the operator gets a
// log line that says what to check instead of a bare SDK error.
const REFUSAL_CODES = new Set(["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "PermanentRedirect", "AuthorizationHeaderMalformed", "InvalidToken", "ExpiredToken"]);

export function storageRefusalHint(error: unknown): string | null {
  for (const e of causeChain(error)) {
    const meta = (e as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
    if (!meta) continue;
    const name = (e as { name?: unknown }).name;
    const code = typeof name === "string" && REFUSAL_CODES.has(name) ? name : null;
    if (code === null && meta.httpStatusCode !== 403) continue;
    const what = code ?? `HTTP ${String(meta.httpStatusCode)}`;
    if (code === "NoSuchBucket") return `the object store has no such bucket (${what}): check storage.bucket and storage.endpoint`;
    if (code === "PermanentRedirect" || code === "AuthorizationHeaderMalformed") {
      return `the object store wants another region or endpoint (${what}): check storage.region and storage.endpoint`;
    }
    return `the object store refused the server's credentials (${what}): check [storage.credentials] (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket's permissions`;
  }
  return null;
}
