// No byte of an upload is hashed on the server's main thread (issue 26: one pass per byte, off the
// event loop): an upload session's parts (fed, staged early, resent), a proof of possession for a
// NAR the server has, and a `nix copy` NAR file's FileHash. node:crypto's createHash is watched on
// this thread (the server runs in this process; its pool's workers load their own node:crypto),
// through the real exports every module of the server imports (syncBuiltinESMExports), and the
// SHA-256 bytes it sees during each upload are counted: a few hundred per request (a token's
// cache key) are fine, the NAR's bytes are not. And a worker dying while it hashes a part fails
// that session (no resend could be checked), nothing else.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadInfo, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { ALL } from "../helpers/tokens.ts";
import { NixHash } from "../../src/nix/hash.ts";
import { replaceWorkerPool, WorkerPool } from "../../src/workers/pool.ts";

const PART = 256 * 1024;
const realCreateHash = crypto.createHash;
/** What may be hashed here for `size` bytes of upload: well under a copy of them (tokens' cache keys, per request). */
const allowance = (size: number) => size / 64;

/** SHA-256 bytes hashed on this thread while `run` runs. */
async function hashedOnMainThread(run: () => Promise<void>): Promise<number> {
  let bytes = 0;
  crypto.createHash = ((algorithm: string, options?: crypto.HashOptions) => {
    const hash = realCreateHash(algorithm, options);
    if (algorithm.toLowerCase() !== "sha256") return hash;
    const update = hash.update.bind(hash) as (data: crypto.BinaryLike, encoding?: crypto.Encoding) => crypto.Hash;
    hash.update = ((data: crypto.BinaryLike, encoding?: crypto.Encoding) => {
      bytes += typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
      return update(data, encoding);
    }) as typeof hash.update;
    return hash;
  }) as typeof crypto.createHash;
  syncBuiltinESMExports();
  try {
    await run();
  } finally {
    crypto.createHash = realCreateHash;
    syncBuiltinESMExports();
  }
  return bytes;
}

async function ok(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
}

for (const backend of backendsFromEnv([{ db: "sqlite", storage: "local" }, { db: "postgres", storage: "s3" }])) {
  describe(`the main thread hashes no upload bytes (${backendName(backend)})`, () => {
    let s: TestServer;
    let token: string;
    let staging: string;
    before(async () => {
      staging = mkdtempSync(join(tmpdir(), "attic-staging-"));
      s = await startServer({
        backend,
        chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 },
        top: `require-proof-of-possession = true\n[upload]\nmax-chunk-size = ${PART}\nstaging-path = ${JSON.stringify(staging)}`,
      });
      token = s.token({ a: ALL, b: ALL });
      await createCacheViaApi(s, "a");
      await createCacheViaApi(s, "b");
    });
    after(async () => {
      await s.stop();
      rmSync(staging, { recursive: true, force: true });
    });

    test("an upload session's parts, fed, staged early and resent", async () => {
      const fx: NarFixture = narFixture(seededBytes(6 * PART + 999, 26), "parts");
      const part = (seq: number) => fx.nar.subarray(seq * PART, (seq + 1) * PART);
      const n = Math.ceil(fx.narSize / PART);
      const put = (id: string, seq: number, body: Buffer) => s.fetch(`/_api/v1/upload-path/sessions/${id}/parts/${seq}`, { method: "PUT", token, body });
      const inSession = await hashedOnMainThread(async () => {
        const started = await ok(
          await s.fetch("/_api/v1/upload-path/sessions", { method: "POST", token, headers: { "content-type": "application/json" }, body: JSON.stringify({ nar_info: uploadInfo(fx, "a") }) }),
        );
        const id = started.session_id as string;
        // part 2 waits on disk until its turn; part 0 is sent twice (the second time compared)
        await ok(await put(id, 2, part(2)));
        for (let seq = 0; seq < n; seq++) if (seq !== 2) await ok(await put(id, seq, part(seq)));
        await ok(await put(id, 0, part(0)));
        const wrong = await put(id, 1, Buffer.alloc(PART, 7));
        assert.equal(wrong.status, 400, "a resend with other bytes is refused");
        assert.match(await wrong.text(), /Part 1 was already received with different bytes/);
        const done = await ok(await s.fetch(`/_api/v1/upload-path/sessions/${id}/finalize`, { method: "POST", token }));
        assert.equal((done.result as { kind: string } | undefined)?.kind, "Uploaded", JSON.stringify(done));
      });
      assert.ok(inSession < allowance(fx.narSize), `${inSession} bytes of a ${fx.narSize}-byte NAR's parts hashed on the main thread`);
    });

    test("a proof of possession of a NAR the server has", async () => {
      const fx = narFixture(seededBytes(4 * PART + 3, 28), "proof");
      assert.equal((await ok(await uploadNar(s, fx, { cache: "a", token, mode: "header" }))).kind, "Uploaded");
      const proof = await hashedOnMainThread(async () => {
        const res = await uploadNar(s, fx, { cache: "b", token, mode: "header" });
        const body = await ok(res);
        assert.equal(body.kind, "Deduplicated");
        const bad = await uploadNar(s, fx, { cache: "b", token, mode: "header", body: Buffer.alloc(fx.narSize, 1) });
        assert.equal(bad.status, 400, "a proof with other bytes is refused");
        assert.match(await bad.text(), /Bad NAR Hash or Size/);
      });
      assert.ok(proof < allowance(fx.narSize), `${proof} bytes of a proof of possession hashed on the main thread`);
    });

    test("a NAR file pushed by `nix copy`: its FileHash checked off the main thread", async () => {
      const fx = narFixture(seededBytes(3 * PART + 5, 27), "nixcopy");
      const file = fx.nar;
      const fileHash = NixHash.fromDigest("sha256", realCreateHash("sha256").update(file).digest());
      const name = `${fileHash.toNix32()}.nar`;
      const narinfo = (hash: NixHash) =>
        [`StorePath: ${fx.storePath}`, `URL: nar/${name}`, "Compression: none", `FileHash: ${hash.toTypedNix32()}`, `FileSize: ${file.length}`, `NarHash: ${NixHash.parse(fx.narHash).toTypedNix32()}`, `NarSize: ${fx.narSize}`, "References: ", ""].join("\n");
      const hashed = await hashedOnMainThread(async () => {
        await ok(await s.fetch(`/a/nar/${name}`, { method: "PUT", token, body: file }));
        const other = NixHash.fromDigest("sha256", Buffer.alloc(32, 9));
        const bad = await s.fetch(`/a/${fx.storePathHash}.narinfo`, { method: "PUT", token, body: narinfo(other) });
        assert.equal(bad.status, 400);
        assert.match(await bad.text(), /FileHash does not match the NAR file pushed/);
        await ok(await s.fetch(`/a/nar/${name}`, { method: "PUT", token, body: file }));
        await ok(await s.fetch(`/a/${fx.storePathHash}.narinfo`, { method: "PUT", token, body: narinfo(fileHash) }));
      });
      assert.ok(hashed < allowance(file.length), `${hashed} bytes of a ${file.length}-byte NAR file hashed on the main thread`);
      const served = await s.fetch(`/a/${fx.storePathHash}.narinfo`, { token });
      assert.equal(served.status, 200);
    });

    test("a worker dying while it hashes a session's part: that session fails, nothing visible; the next one completes", async () => {
      const fx = narFixture(seededBytes(2 * PART + 17, 29), "crash");
      const start = async () =>
        (await ok(await s.fetch("/_api/v1/upload-path/sessions", { method: "POST", token, headers: { "content-type": "application/json" }, body: JSON.stringify({ nar_info: uploadInfo(fx, "a") }) })))
          .session_id as string;
      const put = (id: string, seq: number) => s.fetch(`/_api/v1/upload-path/sessions/${id}/parts/${seq}`, { method: "PUT", token, body: fx.nar.subarray(seq * PART, (seq + 1) * PART) });
      const crashing = new WorkerPool({ size: 2, url: new URL("../helpers/hash-crashing-worker.ts", import.meta.url) });
      const shared = replaceWorkerPool(crashing);
      try {
        const id = await start();
        // the part is answered as any part of a failed session: 409, start again
        const res = await put(id, 0);
        const text = await res.text();
        assert.equal(res.status, 409, text);
        assert.equal((JSON.parse(text) as { error: string }).error, "UploadSessionFailed");
        assert.match(text, /attic-worker-\d+ crashed: scripted crash/);
        const status = (await ok(await s.fetch(`/_api/v1/upload-path/sessions/${id}`, { token }))) as { state: string };
        assert.equal(status.state, "failed");
        assert.equal((await s.fetch(`/a/${fx.storePathHash}.narinfo`, { token })).status, 404);
      } finally {
        replaceWorkerPool(shared);
        await crashing.close();
      }
      const id = await start();
      for (let seq = 0; seq < 3; seq++) await ok(await put(id, seq));
      const done = await ok(await s.fetch(`/_api/v1/upload-path/sessions/${id}/finalize`, { method: "POST", token }));
      assert.equal((done.result as { kind: string } | undefined)?.kind, "Uploaded", JSON.stringify(done));
      assert.equal((await s.fetch(`/a/${fx.storePathHash}.narinfo`, { token })).status, 200);
    });
  });
}
