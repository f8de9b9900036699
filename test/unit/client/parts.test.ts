// The client's side of upload sessions with a scripted API: parts of the session's size, a failed
// part resumed from what the server says it has (skipped when it arrived, resent when not), a lost
// session started again as a retry of the path, and the part size chosen from the server's offer.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { FinalizeUploadSessionResponse, UploadPathNarInfo, UploadSessionStatus } from "../../../src/api/v1.ts";
import { ApiError, NetworkError, UserError } from "../../../src/client/errors.ts";
import { fixedParts, type PartsApi } from "../../../src/client/push/parts.ts";
import { partSizeFor } from "../../../src/client/push/setup.ts";
import { uploadWithRetry } from "../../../src/client/push/upload.ts";
import { FakeStore, fakePath } from "./fakes.ts";

const bar = { advance: () => undefined, restart: () => undefined, note: () => undefined };

/** A server in memory: `failures` lists (session, seq, whether the part arrived anyway) to fail once each. */
class ScriptedApi implements PartsApi {
  sessions = 0;
  sent: { session: number; seq: number; bytes: number }[] = [];
  received = new Map<number, Set<number>>();
  failures: { session: number; seq: number; arrived: boolean; error?: Error }[] = [];

  async uploadPath(): Promise<never> {
    throw new Error("a single PUT was not expected");
  }
  async startUploadSession(_info: UploadPathNarInfo, chunkSize: number) {
    this.sessions++;
    this.received.set(this.sessions, new Set());
    return { kind: "session" as const, session_id: `00000000-0000-4000-8000-00000000000${this.sessions}`, chunk_size: chunkSize };
  }
  async uploadPart(id: string, seq: number, part: Uint8Array) {
    const session = Number(id.at(-1));
    this.sent.push({ session, seq, bytes: part.length });
    const at = this.failures.findIndex((f) => f.session === session && f.seq === seq);
    if (at >= 0) {
      const [f] = this.failures.splice(at, 1);
      if (f!.arrived) this.received.get(session)!.add(seq);
      throw f!.error ?? new NetworkError("http://x", new Error("socket hang up"));
    }
    this.received.get(session)!.add(seq);
  }
  async uploadSessionStatus(id: string): Promise<UploadSessionStatus> {
    const received = [...this.received.get(Number(id.at(-1)))!].sort((a, b) => a - b);
    return { session_id: id, state: "uploading", chunk_size: 0, num_parts: 0, received_parts: received };
  }
  async finalizeUploadSession(): Promise<FinalizeUploadSessionResponse> {
    return { kind: "completed", result: { kind: "Uploaded", file_size: 1, frac_deduplicated: 0 } };
  }
  async deleteUploadSession(): Promise<void> {}
}

const info = fakePath("a", "parts", { narSize: 1000 });
const deps = (api: ScriptedApi) => ({
  store: new FakeStore([info]),
  api,
  cache: "c",
  forcePreamble: false,
  partSize: 300,
  retry: { attempts: 3, baseDelayMs: 1 },
  partsPolicy: { attempts: 4, baseDelayMs: 1, pollMs: 1 },
});

test("a NAR larger than a part goes in parts of the session's size", async () => {
  const api = new ScriptedApi();
  const outcome = await uploadWithRetry(info, deps(api), bar);
  assert.equal(outcome.deduplicated, false);
  assert.deepEqual(api.sent.map((s) => [s.seq, s.bytes]), [[0, 300], [1, 300], [2, 300], [3, 100]]);
});

test("a failed part: skipped when the server has it, resent when not; nothing else is sent again", async () => {
  const api = new ScriptedApi();
  api.failures = [{ session: 1, seq: 1, arrived: true }, { session: 1, seq: 2, arrived: false }];
  await uploadWithRetry(info, deps(api), bar);
  assert.equal(api.sessions, 1);
  assert.deepEqual(api.sent.map((s) => s.seq), [0, 1, 2, 2, 3]);
});

test("a session the server lost starts again in a new one; a refusal is final", async () => {
  const api = new ScriptedApi();
  api.failures = [{ session: 1, seq: 2, arrived: false, error: new ApiError(409, "UploadSessionFailed", "UploadSessionFailed: restarted") }];
  await uploadWithRetry(info, deps(api), bar);
  assert.equal(api.sessions, 2);
  assert.deepEqual(api.sent.filter((s) => s.session === 2).map((s) => s.seq), [0, 1, 2, 3]);

  const refused = new ScriptedApi();
  refused.failures = [{ session: 1, seq: 0, arrived: false, error: new ApiError(400, "RequestError", "RequestError: no") }];
  await assert.rejects(uploadWithRetry(info, deps(refused), bar), /RequestError: no/);
  assert.equal(refused.sessions, 1);
});

test("the part size: the server's offer, --chunk-size within it, 0 for single requests", () => {
  const offer = { upload_chunking: { max_chunk_size: 1000 } };
  assert.equal(partSizeFor(offer, undefined), 1000);
  assert.equal(partSizeFor(offer, 500), 500);
  assert.equal(partSizeFor(offer, 0), null);
  assert.equal(partSizeFor({}, undefined), null);
  assert.equal(partSizeFor({}, 0), null);
  assert.throws(() => partSizeFor(offer, 1001), (e) => e instanceof UserError && /exceeds server limit/.test(e.message));
  assert.throws(() => partSizeFor({}, 500), (e) => e instanceof UserError && /not enabled by server/.test(e.message));
});

test("fixedParts cuts a fragmented stream into whole parts", async () => {
  const pieces = (async function* () {
    yield Buffer.from("ab");
    yield Buffer.from("cdefg");
    yield Buffer.from("hij");
  })();
  const parts: string[] = [];
  for await (const p of fixedParts(pieces, 4)) parts.push(p.toString());
  assert.deepEqual(parts, ["abcd", "efgh", "ij"]);
});
