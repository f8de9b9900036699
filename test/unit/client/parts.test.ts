// The client's side of upload sessions with a scripted API: parts of the session's size, a failed
// part resumed from what the server says it has (skipped when it arrived, resent when not), a lost
// session started again as a retry of the path, the part size chosen from the server's offer and
// made smaller after a proxy's 413, and a session kept in the journal resumed by the next run.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { FinalizeUploadSessionResponse, UploadPathNarInfo, UploadSessionStatus } from "../../../src/api/v1.ts";
import { ApiError, NetworkError, UserError } from "../../../src/client/errors.ts";
import { fixedParts, type PartsApi } from "../../../src/client/push/parts.ts";
import { partSizeFor } from "../../../src/client/push/setup.ts";
import { uploadInfoOf, uploadWithRetry } from "../../../src/client/push/upload.ts";
import { BodyTooLarge, PartSizer } from "../../../src/client/push/part-size.ts";
import { SessionJournal } from "../../../src/client/push/session-journal.ts";
import { apiErrorFrom } from "../../../src/client/api.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeStore, fakePath } from "./fakes.ts";

const bar = { advance: () => undefined, restart: () => undefined, note: () => undefined };

/** A server in memory: `failures` lists (session, seq, whether the part arrived anyway) to fail once each. */
class ScriptedApi implements PartsApi {
  sessions = 0;
  sent: { session: number; seq: number; bytes: number }[] = [];
  received = new Map<number, Set<number>>();
  failures: { session: number; seq: number; arrived: boolean; error?: Error }[] = [];

  async uploadPath(_info: UploadPathNarInfo, _nar: AsyncIterable<Uint8Array>): Promise<never> {
    throw new Error("a single PUT was not expected");
  }
  plans = new Map<number, { chunkSize: number; numParts: number }>();

  async startUploadSession(info: UploadPathNarInfo, chunkSize: number) {
    this.sessions++;
    this.received.set(this.sessions, new Set());
    this.plans.set(this.sessions, { chunkSize, numParts: Math.ceil(info.nar_size / chunkSize) });
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
    const plan = this.plans.get(Number(id.at(-1)))!;
    return { session_id: id, state: "uploading", chunk_size: plan.chunkSize, num_parts: plan.numParts, received_parts: received };
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

/** A proxy in front of ScriptedApi that refuses bodies over `limit` with its HTML 413 page. */
class ProxiedApi extends ScriptedApi {
  whole: number[] = [];
  readonly limit: number;
  constructor(limit: number) {
    super();
    this.limit = limit;
  }
  override async uploadPath(_info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>): Promise<never> {
    let n = 0;
    for await (const piece of nar) n += piece.length;
    this.whole.push(n);
    if (n > this.limit) throw apiErrorFrom(413, "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body><center><h1>413 Request Entity Too Large</h1></center><hr><center>nginx</center></body></html>");
    throw new Error("a single PUT under the limit was not expected");
  }
  override async uploadPart(id: string, seq: number, part: Uint8Array) {
    if (part.length > this.limit) throw apiErrorFrom(413, "<html><head><title>413 Request Entity Too Large</title></head></html>");
    return super.uploadPart(id, seq, part);
  }
}

test("a proxy's 413: the NAR goes again in parts half as large, down to 1 MiB, and that size is kept for the run", async () => {
  const MiB = 2 ** 20;
  const big = fakePath("b", "big", { narSize: 5 * MiB });
  const api = new ProxiedApi(MiB);
  const sizer = new PartSizer(8 * MiB);
  const notes: string[] = [];
  const noting = { ...bar, note: (t: string) => void notes.push(t) };
  const d = { ...deps(api), store: new FakeStore([big, info]), partSize: 8 * MiB, sizer };
  await uploadWithRetry(big, d, noting);
  assert.deepEqual(api.whole, [5 * MiB], "one whole try");
  assert.equal(sizer.size, MiB);
  // parts of 4 MiB (refused), 2 MiB (refused), then 1 MiB
  assert.deepEqual(notes.filter((n) => n.includes("413")).map((n) => /parts of (\S+ \S+)/.exec(n)?.[1]), ["4.00 MiB", "2.00 MiB", "1.00 MiB"]);
  assert.equal(api.sent.filter((s) => s.bytes === MiB).length, 5);
  // the next path of the run starts at 1 MiB: no refusal
  const next = fakePath("c", "next", { narSize: 3 * MiB });
  const before = notes.length;
  await uploadWithRetry(next, { ...d, store: new FakeStore([next]) }, noting);
  assert.equal(notes.filter((n, i) => i >= before && n.includes("413")).length, 0);
});

test("a proxy's 413 below 1 MiB, or without sessions: one line naming the limit, no HTML", async () => {
  const MiB = 2 ** 20;
  const big = fakePath("b", "big", { narSize: 3 * MiB });
  const tiny = new ProxiedApi(MiB / 2);
  await assert.rejects(
    uploadWithRetry(big, { ...deps(tiny), store: new FakeStore([big]), partSize: 8 * MiB }, bar),
    (e: unknown) => e instanceof BodyTooLarge && /HTTP 413, even in parts of 1\.00 MiB\): raise its request body limit \(nginx: client_max_body_size\)/.test(e.message) && !e.message.includes("<"),
  );
  const noSessions = new ProxiedApi(MiB);
  await assert.rejects(
    uploadWithRetry(big, { ...deps(noSessions), store: new FakeStore([big]), partSize: null }, bar),
    (e: unknown) => e instanceof BodyTooLarge && /refused a request body of 3\.00 MiB \(HTTP 413\).*client_max_body_size/.test(e.message),
  );
  // atticd's own 413 (JSON, with a kind) is not a proxy's: no smaller parts
  assert.equal(apiErrorFrom(413, JSON.stringify({ code: 413, error: "NarTooLarge", message: "big" })).kind, "NarTooLarge");
  assert.match(apiErrorFrom(413, "<html><head><title>413 Request Entity Too Large</title></head><body>…</body></html>").message, /^HTTP 413 Payload Too Large: an HTML page titled "413 Request Entity Too Large"/);
});

test("a session kept in the journal is resumed by the next run: only the parts the server lacks are sent", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attic-journal-"));
  try {
    const api = new ScriptedApi();
    // the first run dies after part 1 (the process is killed: nothing cleans up)
    api.failures = [{ session: 1, seq: 2, arrived: false, error: new UserError("killed") }];
    const journal = new SessionJournal(dir, "http://server/");
    await assert.rejects(uploadWithRetry(info, { ...deps(api), journal, retry: { attempts: 1, baseDelayMs: 1 } }, bar));
    // a failure that is not an interruption gives the session up; an interruption keeps it
    assert.equal(await journal.load(uploadInfoOf(info, "c")), null);
    const ctl = new AbortController();
    const killed = new ScriptedApi();
    killed.uploadPart = async function (id: string, seq: number, part: Uint8Array) {
      if (seq === 2) {
        ctl.abort(new Error("interrupted"));
        throw new Error("interrupted");
      }
      return ScriptedApi.prototype.uploadPart.call(this, id, seq, part);
    };
    await assert.rejects(uploadWithRetry(info, { ...deps(killed), journal, signal: ctl.signal }, bar));
    assert.ok(await journal.load(uploadInfoOf(info, "c")), "kept for the next run");
    // the next run: same server state, a new process
    const resumed = Object.assign(new ScriptedApi(), { sessions: killed.sessions, received: killed.received, plans: killed.plans });
    const notes: string[] = [];
    await uploadWithRetry(info, { ...deps(resumed), journal }, { ...bar, note: (t: string) => void notes.push(t) });
    assert.equal(resumed.sessions, 1, "no new session");
    assert.deepEqual(resumed.sent.map((s) => s.seq), [2, 3]);
    assert.ok(notes.some((n) => /resuming the upload session of an earlier push: 2 of 4 parts/.test(n)), notes.join("\n"));
    assert.equal(await journal.load(uploadInfoOf(info, "c")), null, "forgotten once finalized");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
