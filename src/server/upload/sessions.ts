// Upload sessions (uploads in parts; the shape of upstream's open PR #342, differences in
// docs/decisions.md). A session is one run of the upload pipeline in this process, fed by its
// parts (parts.ts) as they come: nothing is stored twice and memory stays that of one upload.
// Its database row tells other requests, replicas and GC about it. The object becomes visible
// only once the client finalizes and the NAR's hash and size match.
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { UploadPathResult } from "../../api/v1.ts";
import type { Db } from "../../db/connect.ts";
import {
  deleteUploadSession,
  failOwnedUploadSessions,
  getUploadSession,
  insertUploadSession,
  markOwnerAlive,
  setUploadSessionState,
  touchUploadSession,
  type UploadSessionRow,
} from "../../db/queries/upload-sessions.ts";
import type { CacheRow } from "../../db/schema.ts";
import { requestError, serviceUnavailable, uploadSessionFailed, type ServerError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import { BodyReader } from "./body.ts";
import type { UploadInfo } from "./info.ts";
import { PartStream } from "./parts.ts";
import type { Uploader } from "./pipeline.ts";

/** More parts than this: the part size is too small for the NAR. */
export const MAX_PARTS = 100_000;
/**
 * How often the holder proves it is alive; a row not refreshed for 3 beats has lost its holder
 * (a client then starts a new session). Short, so that after a restart clients learn it soon.
 */
const HEARTBEAT_MS = 2_000;

export type Outcome = { state: "uploading" | "pending" } | { state: "completed"; result: UploadPathResult } | { state: "failed"; error: Error };

export interface LiveSession {
  id: string;
  info: UploadInfo;
  createdBy: string | null;
  parts: PartStream;
  outcome: Outcome;
  /** settles when the pipeline is done */
  done: Promise<void>;
}

export interface SessionsOptions {
  stagingPath: string;
  /** ms of client silence after which a session is given up */
  idleMs: number;
}

export class UploadSessions {
  /** this process, as the holder of its sessions */
  readonly owner = randomUUID();
  readonly #live = new Map<string, LiveSession>();
  readonly #db: Db;
  readonly #uploader: Uploader;
  readonly #metrics: Metrics;
  readonly #options: SessionsOptions;
  readonly #timer: NodeJS.Timeout;

  constructor(db: Db, uploader: Uploader, metrics: Metrics, options: SessionsOptions) {
    this.#db = db;
    this.#uploader = uploader;
    this.#metrics = metrics;
    this.#options = options;
    this.#timer = setInterval(() => void this.#tick(), Math.min(HEARTBEAT_MS, Math.max(250, options.idleMs / 4)));
    this.#timer.unref();
  }

  /** Start a session: its pipeline runs from now on, fed by the parts as they come. */
  async start(info: UploadInfo, cache: CacheRow, createdBy: string | null, chunkSize: number): Promise<LiveSession> {
    const numParts = Math.ceil(info.nar_size / chunkSize);
    if (numParts > MAX_PARTS) throw requestError(`Chunk size is too small: the NAR would take more than ${MAX_PARTS} parts`);
    const id = randomUUID();
    const parts = new PartStream(
      { numParts, chunkSize, narSize: info.nar_size, stagingDir: join(this.#options.stagingPath, id) },
      (n) => this.#metrics.inc("attic_upload_session_part_bytes_total", n),
    );
    const { narHash: _omit, ...wire } = info;
    await insertUploadSession(this.#db, { id, cache_id: cache.id, created_by: createdBy, upload_info: JSON.stringify(wire), chunk_size: chunkSize, num_parts: numParts, owner: this.owner });
    const session: LiveSession = { id, info, createdBy, parts, outcome: { state: "uploading" }, done: Promise.resolve() };
    session.done = this.#uploader.upload(info, cache, new BodyReader(parts.nar()), createdBy).then(
      async (result) => {
        session.outcome = { state: "completed", result };
        await rmStaging(parts);
        await setUploadSessionState(this.#db, id, "completed", { result: JSON.stringify(result) }).catch(() => {});
      },
      async (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        session.outcome = { state: "failed", error };
        await parts.fail(error);
        await setUploadSessionState(this.#db, id, "failed", { message: error.message }).catch(() => {});
      },
    );
    this.#live.set(id, session);
    return session;
  }

  /** The session held here, or what its row says; null when there is none. */
  async find(id: string): Promise<{ live: LiveSession } | { row: UploadSessionRow } | null> {
    const live = this.#live.get(id);
    if (live) return { live };
    const row = await getUploadSession(this.#db, id);
    return row ? { row } : null;
  }

  /** A session held by another process: retry elsewhere while its holder lives, else it is lost. */
  notHere(row: UploadSessionRow): ServerError {
    if (row.state === "failed") return uploadSessionFailed(row.message ?? "unknown reason");
    if (row.owner !== this.owner && row.alive_at.getTime() > Date.now() - 3 * HEARTBEAT_MS) {
      return serviceUnavailable("the upload session is held by another atticd replica; retry");
    }
    return uploadSessionFailed("the server holding it stopped; start a new session");
  }

  /** The client is still there. */
  async touch(session: LiveSession): Promise<void> {
    session.parts.lastActivity = Date.now();
    await touchUploadSession(this.#db, session.id);
  }

  /** All parts are in: let the NAR end. Wait up to `waitMs` for the outcome. */
  async finalize(session: LiveSession, waitMs: number): Promise<Outcome> {
    if (session.outcome.state === "uploading") {
      const missing = session.parts.firstMissing();
      if (missing !== null) throw requestError(`Upload session is missing parts, the first is part ${missing}`);
      session.outcome = { state: "pending" };
      session.parts.finalize();
      await setUploadSessionState(this.#db, session.id, "pending");
    }
    if (session.outcome.state === "pending") {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([session.done, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
    }
    return session.outcome;
  }

  /** DELETE: stop the pipeline (it removes what it stored) and forget the session. */
  async abort(session: LiveSession): Promise<void> {
    if (session.outcome.state === "completed" || session.outcome.state === "pending") throw requestError("Upload session cannot be aborted");
    await session.parts.fail(new Error("the upload session was deleted"));
    await settled(session.done);
    this.#live.delete(session.id);
    await deleteUploadSession(this.#db, session.id);
  }

  /** Shutdown: every session held here fails (its pipeline cleans up), its row says so. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const stopping = new Error("the server shut down during the upload; start a new session");
    await Promise.all([...this.#live.values()].map(async (s) => {
      await s.parts.fail(stopping);
      await settled(s.done);
    }));
    await failOwnedUploadSessions(this.#db, this.owner, stopping.message).catch(() => {});
    this.#live.clear();
  }

  async #tick(): Promise<void> {
    const idleBefore = Date.now() - this.#options.idleMs;
    for (const s of this.#live.values()) {
      if (s.parts.lastActivity >= idleBefore) continue;
      this.#live.delete(s.id);
      if (s.outcome.state === "uploading") {
        await s.parts.fail(new Error("the upload session was abandoned"));
        await settled(s.done);
        await deleteUploadSession(this.#db, s.id).catch(() => {});
      }
    }
    if (this.#live.size > 0) await markOwnerAlive(this.#db, this.owner).catch(() => {});
  }
}

/**
 * The pipeline's end, or 5 s: a pipeline waiting behind another upload of the same NAR only
 * notices its failed input when it starts reading, and then cleans up by itself.
 */
async function settled(done: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
  clearTimeout(timer);
}

async function rmStaging(parts: PartStream): Promise<void> {
  await rm(parts.plan.stagingDir, { recursive: true, force: true });
}
