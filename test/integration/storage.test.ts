// One conformance suite for every storage driver, run against the local folder backend (temp dir)
// and the S3 backend (the S3-compatible server started by the test runner, behind a recording
// proxy), followed by the tests of what only one backend has.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import {
  createStorage,
  InvalidStorageKeyError,
  LocalStorage,
  newChunkKey,
  newChunkKeys,
  putAll,
  StorageNotFoundError,
  UnsupportedRemoteFileError,
  type RemoteFile,
  type StorageDriver,
} from "../../src/storage/index.ts";
import { S3Storage } from "../../src/storage/s3.ts";
import { newPackKey, PackWriter, type Placement } from "../../src/storage/packs.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/s3-fault-proxy.ts";

const MIB = 1024 * 1024;

/** A random body of `size` bytes streamed from a generator; its sha256 is known once consumed. */
function randomBody(size: number, options: { chunk?: number; failAt?: number; onProgress?: (sent: number) => void } = {}) {
  const hash = createHash("sha256");
  const chunk = options.chunk ?? MIB + 7; // odd size: chunks straddle part boundaries
  async function* generate(): AsyncGenerator<Buffer> {
    let sent = 0;
    while (sent < size) {
      if (options.failAt !== undefined && sent >= options.failAt) throw new Error("source failed midway");
      const buf = randomBytes(Math.min(chunk, size - sent));
      hash.update(buf);
      sent += buf.length;
      options.onProgress?.(sent);
      yield buf;
    }
  }
  return { stream: Readable.from(generate(), { objectMode: false }), sha256: () => hash.digest("hex") };
}

async function digestOf(stream: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest("hex"), size };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

const isAbortError = (err: unknown): boolean => (err as Error).name === "AbortError";

interface Backend {
  name: string;
  /** how many objects the bulk delete test writes (S3: over one DeleteObjects batch) */
  bulkCount: number;
  driver(): StorageDriver;
  /** What a failed or aborted put could have left behind (temp files, open multipart uploads). */
  leftovers(): Promise<string[]>;
}

function conformance(backend: Backend): void {
  const fresh = (): { remoteFile: RemoteFile; key: string } => {
    const key = newChunkKey();
    return { key, remoteFile: backend.driver().remoteFileFor(key).remoteFile };
  };

  describe(`storage conformance: ${backend.name}`, () => {
    test("small put/get round trip, has", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      assert.equal(await d.has(remoteFile), false);
      const result = await d.put(remoteFile, Readable.from([Buffer.from("hello "), Buffer.from("world")]));
      assert.deepEqual(result, { size: 11 });
      assert.equal(await d.has(remoteFile), true);
      assert.equal((await readAll(await d.get(remoteFile))).toString(), "hello world");
    });

    test("get with a size hint returns the whole file whether the hint is exact, short or long", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      const data = randomBytes(300_000);
      await d.put(remoteFile, Readable.from([data]));
      for (const hint of [data.length, 1000, data.length * 4, 0]) {
        const stream = await d.get(remoteFile, undefined, hint);
        const pieces: Buffer[] = [];
        for await (const p of stream) pieces.push(p as Buffer);
        assert.ok(Buffer.concat(pieces).equals(data), `hint ${hint}`);
        if (backend.name === "local" && hint === data.length) assert.equal(pieces.length, 1, "read in one piece");
      }
    });

    test("read returns the whole file in one buffer; a wrong recorded size or a missing file rejects", async () => {
      const d = backend.driver();
      assert.ok(d.read, "both backends read small files whole");
      const { remoteFile } = fresh();
      const data = randomBytes(300_000);
      await d.put(remoteFile, Readable.from([data]));
      assert.ok((await d.read(remoteFile, data.length)).equals(data));
      await assert.rejects(d.read(remoteFile, data.length - 1), /larger than its recorded size/);
      await assert.rejects(d.read(remoteFile, data.length + 1), /recorded size/);
      const empty = fresh().remoteFile;
      await d.put(empty, Readable.from([]));
      assert.equal((await d.read(empty, 0)).length, 0);
      await assert.rejects(d.read(fresh().remoteFile, 10), StorageNotFoundError);
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(d.read(remoteFile, data.length, controller.signal), isAbortError);
    });

    test("getRange streams a byte range of a file; a missing file or one shorter than the range rejects before any byte", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      const data = randomBytes(3 * MIB + 17);
      await d.put(remoteFile, Readable.from([data]));
      for (const [offset, length] of [[0, data.length], [0, 2], [12_345, 2 * MIB], [data.length - 1, 1], [100, 0]] as const) {
        assert.ok((await readAll(await d.getRange(remoteFile, offset, length))).equals(data.subarray(offset, offset + length)), `${offset}+${length}`);
      }
      // (not [0, 1]: s3rver reads `bytes=0-0` as the whole object)
      await assert.rejects(d.getRange(remoteFile, data.length - 10, 11), StorageNotFoundError, "ends past the file");
      await assert.rejects(d.getRange(remoteFile, data.length + 5, 10), StorageNotFoundError, "starts past the file");
      await assert.rejects(d.getRange(fresh().remoteFile, 0, 10), StorageNotFoundError, "missing");
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(d.getRange(remoteFile, 0, 10, controller.signal), isAbortError);
    });

    test("readRange (where the backend has it) fills the caller's buffer with a byte range; a missing or short file rejects", async (t) => {
      const d = backend.driver();
      if (!d.readRange) return t.skip(`${backend.name} reads ranges as streams only`);
      const { remoteFile } = fresh();
      const data = randomBytes(3 * MIB + 17);
      await d.put(remoteFile, Readable.from([data]));
      for (const [offset, length] of [[0, data.length], [12_345, 2 * MIB], [data.length - 1, 1]] as const) {
        const into = Buffer.alloc(length);
        await d.readRange(remoteFile, offset, into);
        assert.ok(into.equals(data.subarray(offset, offset + length)), `${offset}+${length}`);
      }
      await assert.rejects(d.readRange(remoteFile, data.length - 10, Buffer.alloc(11)), StorageNotFoundError, "ends past the file");
      await assert.rejects(d.readRange(fresh().remoteFile, 0, Buffer.alloc(10)), StorageNotFoundError, "missing");
    });

    test("openWrite (where the backend has it): bytes pushed in pieces of any size round-trip; the caller's buffer may be reused at once; abort leaves nothing", async (t) => {
      const d = backend.driver();
      if (!d.openWrite) return t.skip(`${backend.name} writes objects from streams or appends`);
      for (const size of [0, 5_000, 8 * MIB, 21 * MIB + 12_345]) {
        const { remoteFile } = fresh();
        const data = randomBytes(size);
        const writer = d.openWrite(remoteFile);
        const scratch = Buffer.alloc(3 * MIB);
        for (let at = 0, step = 1; at < size; step = (step * 7) % (3 * MIB) || 1) {
          const n = Math.min(step, size - at);
          data.copy(scratch, 0, at, at + n);
          await writer.write(scratch.subarray(0, n));
          scratch.fill(0);
          at += n;
        }
        assert.deepEqual(await writer.finish(), { size });
        assert.ok((await readAll(await d.get(remoteFile))).equals(data), `${size} bytes`);
      }
      const { remoteFile } = fresh();
      const writer = d.openWrite(remoteFile);
      await writer.write(randomBytes(17 * MIB));
      await writer.abort();
      await assert.rejects(writer.write(Buffer.alloc(1)));
      assert.equal(await d.has(remoteFile), false);
      assert.deepEqual(await backend.leftovers(), []);
    });

    test("a pack writer on the driver no longer reads an append's frames once it resolves: their buffers may be freed at once (held, streamed or appended)", async () => {
      const d = backend.driver();
      const packs: RemoteFile[] = [];
      const hooks = { open: async (p: { remoteFile: RemoteFile }) => packs.push(p.remoteFile) - 1, sealed: async () => {}, discarded: async () => {} };
      const writer = new PackWriter(d, hooks, { packSize: 16 * MIB });
      // a big pack (on S3: held, then streamed past its first part) and a small one (one put)
      for (const [appends, size] of [[12, 400_000], [3, 1000]] as const) {
        const expected: Buffer[] = [];
        const placements: Placement[] = [];
        for (let i = 0; i < appends; i++) {
          const batch = new Uint8Array(2 * size);
          batch.set(randomBytes(batch.length));
          expected.push(Buffer.from(batch));
          placements.push(...(await writer.append([batch.subarray(0, size), batch.subarray(size)])));
          // what the upload path does with a batch's frames moved in from a worker
          batch.buffer.transfer(0);
        }
        await writer.durable(placements);
        const first = placements[0]!;
        assert.ok(placements.every((p) => p.packId === first.packId), "one pack");
        const stored = await readAll(await d.getRange(packs[first.packId]!, first.offset, appends * 2 * size));
        assert.ok(stored.equals(Buffer.concat(expected)), `${appends} appends of ${2 * size} bytes`);
      }
      await writer.close();
    });

    test("empty put/get round trip", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      assert.deepEqual(await d.put(remoteFile, Readable.from([])), { size: 0 });
      assert.equal(await d.has(remoteFile), true);
      assert.equal((await readAll(await d.get(remoteFile))).length, 0);
    });

    test("a 21 MiB body streamed from a generator round-trips (multipart on S3)", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      const size = 21 * MIB + 12_345;
      const body = randomBody(size);
      assert.deepEqual(await d.put(remoteFile, body.stream), { size });
      assert.deepEqual(await digestOf(await d.get(remoteFile)), { sha256: body.sha256(), size });
    });

    test("get of a missing key rejects with StorageNotFoundError; has is false", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      await assert.rejects(d.get(remoteFile), StorageNotFoundError);
      assert.equal(await d.has(remoteFile), false);
    });

    test("deleteMany deletes, and counts missing files as deleted", async () => {
      const d = backend.driver();
      const present = [fresh(), fresh(), fresh()];
      for (const { remoteFile } of present) await d.put(remoteFile, Readable.from([Buffer.from("x")]));
      const missing = [fresh(), fresh()];
      const { failed } = await d.deleteMany([...present, ...missing].map((f) => f.remoteFile));
      assert.deepEqual(failed, []);
      for (const { remoteFile } of present) assert.equal(await d.has(remoteFile), false);
      assert.deepEqual(await d.deleteMany([]), { failed: [] });
    });

    test(`deleteMany of ${backend.bulkCount} files`, async () => {
      const d = backend.driver();
      const files = Array.from({ length: backend.bulkCount }, fresh);
      const queue = [...files];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let f = queue.pop(); f; f = queue.pop()) await d.put(f.remoteFile, Readable.from([Buffer.from(f.key)]));
        }),
      );
      const { failed } = await d.deleteMany(files.map((f) => f.remoteFile));
      assert.deepEqual(failed, []);
      for (const f of [files[0], files[999], files.at(-1)]) assert.equal(await d.has(f!.remoteFile), false);
    });

    test("putAll writes a batch of buffered files that round-trip; an aborted one leaves nothing", async () => {
      const d = backend.driver();
      const files = newChunkKeys(16).map((key, i) => ({ remoteFile: d.remoteFileFor(key).remoteFile, data: randomBytes(1000 + i * 3001) }));
      const expected = files.map((f) => Buffer.from(f.data));
      await putAll(d, files);
      for (const [i, f] of files.entries()) assert.ok((await readAll(await d.get(f.remoteFile))).equals(expected[i]!));
      const controller = new AbortController();
      controller.abort();
      const more = newChunkKeys(4).map((key) => ({ remoteFile: d.remoteFileFor(key).remoteFile, data: randomBytes(5000) }));
      await assert.rejects(putAll(d, more, controller.signal), isAbortError);
      for (const f of more) assert.equal(await d.has(f.remoteFile), false);
      assert.deepEqual(await backend.leftovers(), []);
    });

    test("abort mid-put rejects with AbortError and leaves nothing visible", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      const controller = new AbortController();
      // 12 MiB in: past the first multipart part on S3
      const body = randomBody(1024 * MIB, { onProgress: (sent) => sent >= 12 * MIB && controller.abort() });
      await assert.rejects(d.put(remoteFile, body.stream, controller.signal), isAbortError);
      assert.equal(await d.has(remoteFile), false);
      assert.deepEqual(await backend.leftovers(), []);
    });

    test("abort interrupts a stalled source", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      const stalled = new Readable({ read() {} });
      stalled.push(randomBytes(64 * 1024));
      const put = d.put(remoteFile, stalled, AbortSignal.timeout(200));
      await assert.rejects(put, (err: Error) => err.name === "AbortError" || err.name === "TimeoutError");
      assert.equal(await d.has(remoteFile), false);
      assert.deepEqual(await backend.leftovers(), []);
    });

    test("an already aborted signal rejects before anything is written", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(d.put(remoteFile, Readable.from([Buffer.from("x")]), controller.signal), isAbortError);
      assert.equal(await d.has(remoteFile), false);
    });

    for (const failAt of [3 * MIB, 13 * MIB]) {
      test(`a source that errors after ${failAt / MIB} MiB rejects with its error and leaves nothing`, async () => {
        const d = backend.driver();
        const { remoteFile } = fresh();
        const body = randomBody(30 * MIB, { failAt });
        await assert.rejects(d.put(remoteFile, body.stream), /source failed midway/);
        assert.equal(await d.has(remoteFile), false);
        assert.deepEqual(await backend.leftovers(), []);
      });
    }

    test("abort during get ends the stream with an AbortError", async () => {
      const d = backend.driver();
      const { remoteFile } = fresh();
      await d.put(remoteFile, randomBody(4 * MIB).stream);
      const controller = new AbortController();
      const stream = await d.get(remoteFile, controller.signal);
      await assert.rejects(
        (async () => {
          for await (const _chunk of stream) controller.abort();
        })(),
        isAbortError,
      );
    });

    const hostileKeys = ["../x", "a/b", ".hidden", "", "x", "..", "/etc/passwd", "a\\b", "a\u0000b", "k".repeat(1000)];
    test("hostile keys are rejected before they touch a path", async () => {
      const d = backend.driver();
      const template = d.remoteFileFor(newChunkKey()).remoteFile;
      for (const key of hostileKeys) {
        assert.throws(() => d.remoteFileFor(key), InvalidStorageKeyError, JSON.stringify(key));
        const remoteFile: RemoteFile = "Local" in template ? { Local: { name: key } } : { S3: { ...(template as { S3: { region: string; bucket: string } }).S3, key } };
        await assert.rejects(d.put(remoteFile, Readable.from([Buffer.from("x")])), InvalidStorageKeyError);
        await assert.rejects(d.get(remoteFile), InvalidStorageKeyError);
        await assert.rejects(d.has(remoteFile), InvalidStorageKeyError);
        const { failed } = await d.deleteMany([remoteFile]);
        assert.equal(failed.length, 1);
        assert.ok(failed[0]?.error instanceof InvalidStorageKeyError);
      }
    });

    test("a RemoteFile of another kind is refused", async () => {
      const d = backend.driver();
      const http: RemoteFile = { Http: { url: "http://example.invalid/x.chunk" } };
      await assert.rejects(d.get(http), UnsupportedRemoteFileError);
      await assert.rejects(d.put(http, Readable.from([])), UnsupportedRemoteFileError);
      const { failed } = await d.deleteMany([http]);
      assert.ok(failed[0]?.error instanceof UnsupportedRemoteFileError);
    });
  });
}

// ---------------------------------------------------------------- local

async function tempFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((p) => p.split("/").at(-1)?.startsWith(".tmp-"));
}

const local = { dir: "", driver: undefined as LocalStorage | undefined };
before(async () => {
  local.dir = await mkdtemp(join(tmpdir(), "attic-storage-"));
  local.driver = await LocalStorage.open(join(local.dir, "store"));
});
after(async () => {
  if (local.dir) await rm(local.dir, { recursive: true, force: true });
});

conformance({
  name: "local",
  bulkCount: 1100,
  driver: () => local.driver!,
  leftovers: () => tempFilesUnder(local.driver!.root),
});

describe("local layout", () => {
  test("files live at {path}/k/k0/key, VERSION holds 1, ids are local:<key>", async () => {
    const d = local.driver!;
    const key = newChunkKey();
    const { remoteFile, remoteFileId } = d.remoteFileFor(key);
    assert.deepEqual(remoteFile, { Local: { name: key } });
    assert.equal(remoteFileId, `local:${key}`);
    await d.put(remoteFile, Readable.from([Buffer.from("layout")]));
    assert.equal(await readFile(join(d.root, key[0]!, key.slice(0, 2), key), "utf8"), "layout");
    assert.equal(await readFile(join(d.root, "VERSION"), "utf8"), "1");
    assert.equal(d.name, `local:${d.root}`);
  });

  test("a shard directory removed behind the driver's back is made again on the next put", async () => {
    const d = local.driver!;
    const key = newChunkKey();
    await d.put(d.remoteFileFor(key).remoteFile, Readable.from([Buffer.from("first")]));
    await rm(join(d.root, key[0]!), { recursive: true });
    const again = `${key.slice(0, 2)}${newChunkKey().slice(2)}`;
    await d.put(d.remoteFileFor(again).remoteFile, Readable.from([Buffer.from("second")]));
    assert.equal(await readFile(join(d.root, again[0]!, again.slice(0, 2), again), "utf8"), "second");
  });

  test("a folder without VERSION is migrated from the flat layout", async () => {
    const root = join(local.dir, "flat");
    await mkdir(root);
    const keys = [newChunkKey(), newChunkKey(), "ab"];
    for (const key of keys) await writeFile(join(root, key), `data ${key}`);
    await writeFile(join(root, ".DS_Store"), "not ours");
    await mkdir(join(root, "somedir"));
    const d = await LocalStorage.open(root);
    assert.equal(await readFile(join(root, "VERSION"), "utf8"), "1");
    for (const key of keys) {
      assert.equal(await readFile(join(root, key[0]!, key.slice(0, 2), key), "utf8"), `data ${key}`);
      assert.equal((await readAll(await d.get({ Local: { name: key } }))).toString(), `data ${key}`);
      await assert.rejects(stat(join(root, key)), { code: "ENOENT" });
    }
    assert.equal(await readFile(join(root, ".DS_Store"), "utf8"), "not ours");
    // opening again is a no-op
    await LocalStorage.open(root);
    assert.equal(await readFile(join(root, keys[0]![0]!, keys[0]!.slice(0, 2), keys[0]!), "utf8"), `data ${keys[0]}`);
  });

  test("a new folder gets VERSION 1; an unknown VERSION is refused", async () => {
    const root = join(local.dir, "new", "nested");
    await createStorage({ type: "local", path: root });
    assert.equal(await readFile(join(root, "VERSION"), "utf8"), "1");
    await writeFile(join(root, "VERSION"), "2\n");
    await assert.rejects(LocalStorage.open(root), /unsupported local storage VERSION 2/);
  });

  test("sweepTempFiles removes only old temp files", async () => {
    const d = local.driver!;
    const shard = join(d.root, "z", "zz");
    await mkdir(shard, { recursive: true });
    await writeFile(join(shard, ".tmp-old"), "x");
    await writeFile(join(shard, ".tmp-new"), "x");
    await writeFile(join(shard, "zz-keep.chunk"), "x");
    const past = new Date(Date.now() - 3_600_000);
    await utimes(join(shard, ".tmp-old"), past, past);
    assert.equal(await d.sweepTempFiles(60_000), 1);
    assert.deepEqual((await readdir(shard)).sort(), [".tmp-new", "zz-keep.chunk"]);
    await rm(shard, { recursive: true });
  });
});

// ---------------------------------------------------------------- S3

function s3Env(): { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string } {
  const endpoint = process.env.ATTIC_TEST_S3_ENDPOINT;
  const region = process.env.ATTIC_TEST_S3_REGION;
  const accessKeyId = process.env.ATTIC_TEST_S3_ACCESS_KEY_ID;
  const secretAccessKey = process.env.ATTIC_TEST_S3_SECRET_ACCESS_KEY;
  if (!endpoint || !region || !accessKeyId || !secretAccessKey) {
    throw new Error("ATTIC_TEST_S3_* is not set: run the storage tests through `npm test` (it starts the S3 server)");
  }
  return { endpoint, region, accessKeyId, secretAccessKey };
}

async function createBucket(endpoint: string, bucket: string): Promise<void> {
  const res = await fetch(`${endpoint}/${bucket}`, { method: "PUT" });
  if (!res.ok) throw new Error(`create bucket ${bucket}: ${res.status} ${await res.text()}`);
}

const s3 = {
  proxy: undefined as FaultProxy | undefined,
  driver: undefined as S3Storage | undefined,
  bucket: `attic-storage-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`,
  config: undefined as ConstructorParameters<typeof S3Storage>[0] | undefined,
  warnings: [] as string[],
};
before(async () => {
  const env = s3Env();
  await createBucket(env.endpoint, s3.bucket);
  s3.proxy = await startFaultProxy(env.endpoint);
  s3.config = {
    region: env.region,
    bucket: s3.bucket,
    endpoint: s3.proxy.endpoint,
    credentials: { access_key_id: env.accessKeyId, secret_access_key: env.secretAccessKey },
  };
  s3.driver = new S3Storage(s3.config, { logger: { warn: (_obj, msg) => s3.warnings.push(msg) } });
});
after(async () => {
  await s3.driver?.close();
  await s3.proxy?.close();
});

/** Multipart uploads that got parts but were neither completed nor aborted (per the proxy's log). */
async function openMultipartUploads(): Promise<string[]> {
  const state = new Map<string, string>();
  for (const { method, url } of s3.proxy!.seen) {
    const id = new URL(url, "http://x").searchParams.get("uploadId");
    if (!id) continue;
    if (method === "PUT" && !state.has(id)) state.set(id, "open");
    if (method === "POST" || method === "DELETE") state.set(id, method === "POST" ? "completed" : "aborted");
  }
  return [...state].filter(([, s]) => s === "open").map(([id]) => `multipart upload ${id} left open`);
}

conformance({
  name: "s3",
  bulkCount: 1100,
  driver: () => s3.driver!,
  leftovers: async () => {
    const { multipartStarted, multipartCompleted, multipartAborted, multipartAbortFailed } = s3.driver!.stats;
    const unfinished = multipartStarted - multipartCompleted - multipartAborted - multipartAbortFailed;
    return [...(await openMultipartUploads()), ...(unfinished ? [`${unfinished} multipart uploads neither completed nor aborted`] : [])];
  },
});

describe("s3 specifics", () => {
  const seenSince = (mark: number) => s3.proxy!.seen.slice(mark);

  test("remote files are {S3:{region,bucket,key}} at the bucket root, ids s3:<region>/<bucket>/<key>", async () => {
    const d = s3.driver!;
    const key = newChunkKey();
    const { remoteFile, remoteFileId } = d.remoteFileFor(key);
    assert.deepEqual(remoteFile, { S3: { region: s3.config!.region, bucket: s3.bucket, key } });
    assert.equal(remoteFileId, `s3:${s3.config!.region}/${s3.bucket}/${key}`);
    const mark = s3.proxy!.seen.length;
    await d.put(remoteFile, Readable.from([Buffer.from("root")]));
    assert.deepEqual(seenSince(mark).map((r) => `${r.method} ${r.url.split("?")[0]}`), [`PUT /${s3.bucket}/${key}`]);
    assert.equal(d.name, `s3:${s3.config!.region}/${s3.bucket}`);
  });

  test("a presigned URL is fetchable with plain fetch", async () => {
    const d = s3.driver!;
    const { remoteFile } = d.remoteFileFor(newChunkKey());
    const bytes = randomBytes(100_000);
    await d.put(remoteFile, Readable.from([bytes]));
    const url = await d.presignedUrl(remoteFile, 600);
    assert.match(url, /X-Amz-Expires=600/);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
  });

  test("bodies under 8 MiB use one PutObject, larger ones a multipart upload with 8 MiB parts", async () => {
    const d = s3.driver!;
    let mark = s3.proxy!.seen.length;
    const small = d.remoteFileFor(newChunkKey()).remoteFile;
    await d.put(small, randomBody(8 * MIB - 1).stream);
    assert.deepEqual(seenSince(mark).map((r) => r.method), ["PUT"]);
    mark = s3.proxy!.seen.length;
    const large = d.remoteFileFor(newChunkKey()).remoteFile;
    const body = randomBody(17 * MIB);
    await d.put(large, body.stream);
    const parts = seenSince(mark).filter((r) => r.method === "PUT" && r.url.includes("partNumber="));
    assert.equal(parts.length, 3);
    assert.deepEqual(await digestOf(await d.get(large)), { sha256: body.sha256(), size: 17 * MIB });
  });

  test("openWrite of exactly two parts: two UploadPart requests, no empty third, and the object round-trips", async () => {
    const d = s3.driver!;
    const mark = s3.proxy!.seen.length;
    const { remoteFile } = d.remoteFileFor(newPackKey());
    // openWrite's parts are 5 MiB (streamPartSize)
    const data = randomBytes(10 * MIB);
    const writer = d.openWrite(remoteFile);
    for (let at = 0; at < data.length; at += MIB) await writer.write(data.subarray(at, at + MIB));
    assert.deepEqual(await writer.finish(), { size: 10 * MIB });
    const parts = seenSince(mark).filter((r) => r.method === "PUT" && r.url.includes("partNumber="));
    assert.equal(parts.length, 2);
    assert.ok((await readAll(await d.get(remoteFile))).equals(data));
  });

  test("putMany stores a buffered file (a sealed pack) with one PutObject whatever its size; a ranged GET reads part of it", async () => {
    const d = s3.driver!;
    const mark = s3.proxy!.seen.length;
    const pack = d.remoteFileFor(newPackKey()).remoteFile;
    const data = randomBytes(20 * MIB);
    await d.putMany([{ remoteFile: pack, data }]);
    assert.deepEqual(seenSince(mark).map((r) => r.method), ["PUT"]);
    const since = s3.proxy!.seen.length;
    assert.ok((await readAll(await d.getRange(pack, 9 * MIB, 3 * MIB))).equals(data.subarray(9 * MIB, 12 * MIB)));
    assert.deepEqual(seenSince(since).map((r) => `${r.method} ${r.range}`), [`GET bytes=${9 * MIB}-${12 * MIB - 1}`]);
  });

  test("multipart keeps at most 2 parts in flight against a slow server (the default), and memory bounded", async (t) => {
    const d = new S3Storage(s3.config!);
    try {
      s3.proxy!.rule = (r) => (r.method === "PUT" && r.url.includes("partNumber=") ? { delayMs: 150 } : undefined);
      const { remoteFile } = d.remoteFileFor(newChunkKey());
      const size = 64 * MIB;
      globalThis.gc?.();
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
      const body = randomBody(size);
      try {
        assert.deepEqual(await d.put(remoteFile, body.stream), { size });
      } finally {
        clearInterval(sampler);
        s3.proxy!.rule = undefined;
      }
      assert.equal(d.stats.maxPartsInFlight, 2);
      assert.equal(d.stats.multipartCompleted, 1);
      const growthMiB = (peak - baseline) / MIB;
      t.diagnostic(`64 MiB multipart put: rss grew by ${growthMiB.toFixed(1)} MiB`);
      assert.ok(growthMiB < 100, `rss grew by ${growthMiB.toFixed(0)} MiB`);
      assert.deepEqual(await digestOf(await d.get(remoteFile)), { sha256: body.sha256(), size });
    } finally {
      await d.close();
    }
  });

  test("5xx and throttling answers are retried", async () => {
    const d = s3.driver!;
    const { remoteFile, key } = (() => {
      const k = newChunkKey();
      return { key: k, remoteFile: d.remoteFileFor(k).remoteFile };
    })();
    let failures = 0;
    s3.proxy!.rule = (r) => (r.method === "PUT" && r.url.includes(key) && failures++ < 2 ? { status: 503, code: "SlowDown" } : undefined);
    try {
      await d.put(remoteFile, Readable.from([Buffer.from("retried")]));
    } finally {
      s3.proxy!.rule = undefined;
    }
    assert.equal(failures, 3);
    assert.equal((await readAll(await d.get(remoteFile))).toString(), "retried");
  });

  test("a part that keeps failing aborts the multipart upload; nothing is visible", async () => {
    const d = new S3Storage(s3.config!);
    try {
      const { remoteFile } = d.remoteFileFor(newChunkKey());
      s3.proxy!.rule = (r) => (r.method === "PUT" && r.url.includes("partNumber=2") ? { status: 500, code: "InternalError" } : undefined);
      try {
        await assert.rejects(d.put(remoteFile, randomBody(20 * MIB).stream), (err: Error) => err.name === "InternalError");
      } finally {
        s3.proxy!.rule = undefined;
      }
      assert.equal(d.stats.multipartStarted, 1);
      assert.equal(d.stats.multipartAborted + d.stats.multipartAbortFailed, 1);
      assert.equal(await d.has(remoteFile), false);
      assert.deepEqual(await openMultipartUploads(), []);
    } finally {
      await d.close();
    }
  });

  test("deleteMany sends batches of at most 1000 keys", async () => {
    const d = s3.driver!;
    const files = Array.from({ length: 1001 }, () => d.remoteFileFor(newChunkKey()).remoteFile);
    await d.put(files[1000]!, Readable.from([Buffer.from("last")]));
    const mark = s3.proxy!.seen.length;
    assert.deepEqual(await d.deleteMany(files), { failed: [] });
    const batches = seenSince(mark).filter((r) => r.method === "POST" && r.url.includes("delete"));
    assert.equal(batches.length, 2);
    assert.equal(await d.has(files[1000]!), false);
  });

  test("without DeleteObjects on the server, deletes fall back to one by one", async () => {
    const d = new S3Storage(s3.config!, { logger: { warn: (_o, msg) => s3.warnings.push(msg) } });
    try {
      const files = Array.from({ length: 5 }, () => d.remoteFileFor(newChunkKey()).remoteFile);
      for (const f of files.slice(0, 3)) await d.put(f, Readable.from([Buffer.from("x")]));
      s3.proxy!.rule = (r) => (r.method === "POST" && r.url.includes("delete") ? { status: 501, code: "NotImplemented" } : undefined);
      const mark = s3.proxy!.seen.length;
      try {
        assert.deepEqual(await d.deleteMany(files), { failed: [] });
      } finally {
        s3.proxy!.rule = undefined;
      }
      for (const f of files) assert.equal(await d.has(f), false);
      assert.equal(seenSince(mark).filter((r) => r.method === "DELETE").length, 5);
      assert.ok(s3.warnings.some((w) => w.includes("no DeleteObjects")));
    } finally {
      await d.close();
    }
  });

  test("a failing batch delete reports each file as failed", async () => {
    const d = s3.driver!;
    const files = Array.from({ length: 3 }, () => d.remoteFileFor(newChunkKey()).remoteFile);
    s3.proxy!.rule = (r) => (r.method === "POST" && r.url.includes("delete") ? { status: 403, code: "AccessDenied" } : undefined);
    try {
      const { failed } = await d.deleteMany(files);
      assert.deepEqual(failed.map((f) => f.remoteFile), files);
      assert.ok(failed.every((f) => f.error.name === "AccessDenied"));
    } finally {
      s3.proxy!.rule = undefined;
    }
  });

  test("a RemoteFile recorded with another region and bucket is honoured", async () => {
    const otherBucket = `${s3.bucket}-other`;
    await createBucket(s3Env().endpoint, otherBucket);
    const other = new S3Storage({ ...s3.config!, region: "eu-west-1", bucket: otherBucket });
    try {
      const { remoteFile } = other.remoteFileFor(newChunkKey());
      assert.equal((remoteFile as { S3: { region: string } }).S3.region, "eu-west-1");
      await other.put(remoteFile, Readable.from([Buffer.from("migrated")]));
      const d = s3.driver!;
      assert.equal(await d.has(remoteFile), true);
      assert.equal((await readAll(await d.get(remoteFile))).toString(), "migrated");
      assert.deepEqual(await d.deleteMany([remoteFile]), { failed: [] });
      assert.equal(await other.has(remoteFile), false);
    } finally {
      await other.close();
    }
  });

  test("createStorage builds an S3 driver from config", async () => {
    const d = await createStorage({ type: "s3", ...s3.config! });
    try {
      assert.ok(d instanceof S3Storage);
      const { remoteFile } = d.remoteFileFor(newChunkKey());
      await d.put(remoteFile, Readable.from([Buffer.from("via config")]));
      assert.equal((await readAll(await d.get(remoteFile))).toString(), "via config");
    } finally {
      await d.close?.();
    }
  });
});
