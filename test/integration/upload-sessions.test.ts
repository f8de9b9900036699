// Upload sessions against a real server: parts out of order, in parallel and resent, a part
// cut off mid-body, every kind of bad input (a 4xx JSON error, nothing visible, nothing left
// behind once GC ran), another user's session, and abandoned sessions reaped with their
// staged parts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadInfo, type NarFixture } from "../helpers/nar.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { ALL } from "../helpers/tokens.ts";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";
import { getUploadSession } from "../../src/db/queries/upload-sessions.ts";
import { waitFor } from "../helpers/wait.ts";

const PART = 65536;

interface Ctx {
  s: TestServer;
  token: string;
  staging: string;
}

async function json(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  return text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
}

async function startSession(c: Ctx, fx: NarFixture, extra: Record<string, unknown> = {}, token = c.token): Promise<Response> {
  return c.s.fetch("/_api/v1/upload-path/sessions", {
    method: "POST",
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ nar_info: uploadInfo(fx, "up"), ...extra }),
  });
}

async function sessionId(c: Ctx, fx: NarFixture, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await startSession(c, fx, extra);
  const body = await json(res);
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.kind, "session");
  return body.session_id as string;
}

const part = (fx: NarFixture, seq: number) => fx.nar.subarray(seq * PART, (seq + 1) * PART);
const partsOf = (fx: NarFixture) => Math.ceil(fx.narSize / PART);

function putPart(c: Ctx, id: string, seq: number, body: Buffer, token = c.token): Promise<Response> {
  return c.s.fetch(`/_api/v1/upload-path/sessions/${id}/parts/${seq}`, { method: "PUT", token, body });
}

function call(c: Ctx, id: string, method: string, suffix = "", token = c.token): Promise<Response> {
  return c.s.fetch(`/_api/v1/upload-path/sessions/${id}${suffix}`, { method, token });
}

async function expectError(res: Response, status: number, kind: string, message?: RegExp): Promise<void> {
  const body = await json(res);
  assert.equal(res.status, status, JSON.stringify(body));
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(body.error, kind);
  assert.equal(body.code, status);
  if (message) assert.match(body.message as string, message);
}

/** Bytes of part bodies the server has taken up so far (its /metrics counter). */
async function partBytes(c: Ctx): Promise<number> {
  const text = await (await c.s.fetch("/metrics")).text();
  return Number(/^attic_upload_session_part_bytes_total (\d+)/m.exec(text)?.[1] ?? 0);
}

async function visible(c: Ctx, fx: NarFixture): Promise<boolean> {
  const res = await c.s.fetch(`/up/${fx.storePathHash}.narinfo`, { token: c.token });
  await res.arrayBuffer();
  return res.status === 200;
}

/** After a GC run: no pending or held rows, no chunk, no staged file. */
async function assertNothingLeft(c: Ctx): Promise<void> {
  await runGarbageCollectionOnce({ db: c.s.db, storage: c.s.storage, config: { ...c.s.config.garbageCollection, uploadStagingPath: c.staging } });
  const count = async (q: string) => Number((await sql.raw<{ n: number }>(q).execute(c.s.db.kysely)).rows[0]!.n);
  assert.equal(await count(`SELECT count(*) AS n FROM nar WHERE state = 'P' OR holders_count > 0`), 0, "pending or held NARs");
  assert.equal(await count(`SELECT count(*) AS n FROM chunk WHERE state <> 'V' OR holders_count > 0`), 0, "pending or held chunks");
  assert.equal(await count(`SELECT count(*) AS n FROM chunk c WHERE NOT EXISTS (SELECT 1 FROM chunkref r WHERE r.chunk_id = c.id)`), 0, "chunks nobody uses");
  assert.deepEqual(readdirSync(c.staging), [], "staged parts");
}

for (const backend of backendsFromEnv([{ db: "sqlite", storage: "local" }, { db: "postgres", storage: "s3" }])) {
  describe(`upload sessions (${backendName(backend)})`, () => {
    const c = {} as Ctx;
    before(async () => {
      c.staging = mkdtempSync(join(tmpdir(), "attic-staging-"));
      c.s = await startServer({
        backend,
        top: `[upload]\nmax-chunk-size = ${PART}\nstaging-path = ${JSON.stringify(c.staging)}`,
        gc: `interval = "0"\nstale-grace-period = "2s"`,
      });
      c.token = c.s.token({ up: ALL });
      await createCacheViaApi(c.s, "up");
    });
    after(async () => {
      await c.s.stop();
      rmSync(c.staging, { recursive: true, force: true });
    });

    test("the cache config advertises the part size", async () => {
      const body = await json(await c.s.fetch("/_api/v1/cache-config/up", { token: c.token }));
      assert.deepEqual(body.upload_chunking, { max_chunk_size: PART });
    });

    test("parts out of order, in parallel and resent: one NAR, visible only after finalize", async () => {
      const fx = narFixture(seededBytes(10 * PART + 1234, 11), "parts");
      const id = await sessionId(c, fx);
      const n = partsOf(fx);
      // early parts first (they wait on disk), then the rest in parallel
      for (const seq of [2, 1]) assert.equal((await putPart(c, id, seq, part(fx, seq))).status, 200);
      const rest = Array.from({ length: n }, (_, i) => i).filter((i) => i !== 1 && i !== 2);
      const answers = await Promise.all(rest.map((seq) => putPart(c, id, seq, part(fx, seq))));
      for (const r of answers) assert.equal(r.status, 200, await r.text());
      assert.equal((await putPart(c, id, 0, part(fx, 0))).status, 200, "a resend with the same bytes is fine");
      const status = await json(await call(c, id, "GET"));
      assert.deepEqual(status.received_parts, Array.from({ length: n }, (_, i) => i));
      assert.equal(await visible(c, fx), false, "nothing visible before finalize");
      const done = await json(await call(c, id, "POST", "/finalize"));
      assert.equal(done.kind, "completed", JSON.stringify(done));
      assert.equal((done.result as { kind: string }).kind, "Uploaded");
      assert.equal(await visible(c, fx), true);
      const info = parseNarInfo(await (await c.s.fetch(`/up/${fx.storePathHash}.narinfo`, { token: c.token })).text());
      const raw = Buffer.from(await (await c.s.fetch(`/up/${info.url}`, { token: c.token })).arrayBuffer());
      assert.ok((await decompressWithCli(info.compression ?? "none", raw)).equals(fx.nar), "the NAR round-trips");
      assert.deepEqual(await json(await call(c, id, "POST", "/finalize")), done, "finalize again: the same answer");
      assert.deepEqual(readdirSync(c.staging), []);
    });

    test("a part cut off mid-body: the resend is checked against what arrived and completes it", async () => {
      const fx = narFixture(seededBytes(3 * PART, 12), "cut");
      const id = await sessionId(c, fx);
      const before = await partBytes(c);
      const req = request(`${c.s.url}/_api/v1/upload-path/sessions/${id}/parts/0`, { method: "PUT", headers: { authorization: `Bearer ${c.token}`, "content-length": String(PART) } });
      const cut = new Promise<void>((resolve) => req.on("error", () => resolve()).on("close", () => resolve()));
      req.write(part(fx, 0).subarray(0, PART / 2));
      // cut off once the server has taken up the half it was sent (what the resend is checked against)
      await waitFor(async () => (await partBytes(c)) - before >= PART / 2, { what: "the server to take up the first half of part 0" });
      req.destroy();
      await cut;
      const bad = Buffer.from(part(fx, 0));
      bad[10] = bad[10]! ^ 1;
      await expectError(await putPart(c, id, 0, bad), 400, "RequestError", /resent with different bytes/);
      for (let seq = 0; seq < partsOf(fx); seq++) assert.equal((await putPart(c, id, seq, part(fx, seq))).status, 200);
      const done = await json(await call(c, id, "POST", "/finalize"));
      assert.equal(done.kind, "completed", JSON.stringify(done));
      assert.equal(await visible(c, fx), true);
    });

    test("bad input: a 4xx JSON error each, nothing visible, nothing left behind", async () => {
      const fx = narFixture(seededBytes(4 * PART + 100, 13), "bad");
      const n = partsOf(fx);
      await expectError(await startSession(c, fx, { chunk_size: PART + 1 }), 400, "RequestError", /exceeds server limit/);
      await expectError(await startSession(c, fx, { chunk_size: 0 }), 400, "RequestError", /cannot be 0/);

      let id = await sessionId(c, fx);
      await expectError(await putPart(c, id, n, part(fx, 0)), 400, "RequestError", /out of range/);
      await expectError(await putPart(c, id, 1, Buffer.concat([part(fx, 1), Buffer.alloc(1)])), 400, "RequestError", /larger than its size/);
      await expectError(await putPart(c, id, 2, part(fx, 2).subarray(1)), 400, "RequestError", /shorter than its size/);
      assert.equal((await putPart(c, id, 3, part(fx, 3))).status, 200);
      await expectError(await putPart(c, id, 3, part(fx, 2)), 400, "RequestError", /already received with different bytes/);
      await expectError(await call(c, id, "POST", "/finalize"), 400, "RequestError", /missing parts, the first is part 0/);
      assert.equal((await call(c, id, "DELETE")).status, 200);
      await expectError(await call(c, id, "GET"), 404, "NoSuchUploadSession");
      assert.equal(await visible(c, fx), false);

      // a hash that does not match the bytes: refused at finalize
      const other = narFixture(seededBytes(4 * PART + 100, 14), "bad");
      id = await sessionId(c, { ...fx, narHash: other.narHash });
      for (let seq = 0; seq < n; seq++) assert.equal((await putPart(c, id, seq, part(fx, seq))).status, 200);
      await expectError(await call(c, id, "POST", "/finalize"), 400, "RequestError", /Bad NAR Hash or Size/);
      await expectError(await call(c, id, "POST", "/finalize"), 400, "RequestError", /Bad NAR Hash or Size/);
      assert.equal(((await json(await call(c, id, "GET"))) as { state: string }).state, "failed");
      assert.equal(await visible(c, fx), false);
      assert.equal((await call(c, id, "DELETE")).status, 200);

      // another user's session does not exist for them, whatever they may do on the cache
      id = await sessionId(c, fx);
      const mallory = c.s.token({ up: ALL }, { sub: "mallory" });
      await expectError(await putPart(c, id, 0, part(fx, 0), mallory), 404, "NoSuchUploadSession");
      await expectError(await call(c, id, "POST", "/finalize", mallory), 404, "NoSuchUploadSession");
      await expectError(await call(c, id, "DELETE", "", mallory), 404, "NoSuchUploadSession");
      await expectError(await call(c, "00000000-0000-4000-8000-000000000000", "GET"), 404, "NoSuchUploadSession");
      await expectError(await call(c, "../../etc", "GET"), 404, "NotFound");
      assert.equal((await call(c, id, "DELETE")).status, 200);
      await assertNothingLeft(c);
    });

    test("abandoned sessions are dropped with their staged parts after the grace period", async () => {
      const fx = narFixture(seededBytes(5 * PART, 15), "idle");
      const id = await sessionId(c, fx);
      assert.equal((await putPart(c, id, 0, part(fx, 0))).status, 200);
      assert.equal((await putPart(c, id, 3, part(fx, 3))).status, 200);
      assert.deepEqual(readdirSync(join(c.staging, id)), ["3.part"]);
      // dropped once idle for the grace period (2 s here): wait for the row and the staged part to go
      await waitFor(async () => readdirSync(c.staging).length === 0 && (await getUploadSession(c.s.db, id)) === null, { what: "the abandoned session to be dropped" });
      assert.deepEqual(readdirSync(c.staging), [], "the staged part is gone");
      await expectError(await putPart(c, id, 1, part(fx, 1)), 404, "NoSuchUploadSession");
      assert.equal(await visible(c, fx), false);
      await assertNothingLeft(c);
    });
  });
}
