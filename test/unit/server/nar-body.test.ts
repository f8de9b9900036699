// The NAR body's read-ahead against an in-memory storage driver: bytes in order, reads bounded
// while the consumer waits, a destroyed body aborts what is in flight and starts nothing more,
// a failed read fails the body, and a driver without `read` is served through `get`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setImmediate as tick } from "node:timers/promises";
import { NarBody } from "../../../src/server/download/nar-body.ts";
import type { ChunkRow } from "../../../src/db/schema.ts";
import type { RemoteFile, StorageDriver } from "../../../src/storage/types.ts";

function fakeStorage(files: Buffer[], opts: { withRead?: boolean; failAt?: number } = {}) {
  const started: number[] = [];
  const signals: AbortSignal[] = [];
  const indexOf = (rf: RemoteFile) => Number((rf as { Local: { name: string } }).Local.name);
  const driver: StorageDriver = {
    name: "fake",
    remoteFileFor: () => assert.fail("not used"),
    put: () => assert.fail("not used"),
    getRange: () => assert.fail("not used"),
    has: async () => true,
    deleteMany: async () => ({ failed: [] }),
    async get(rf, signal) {
      started.push(indexOf(rf));
      if (signal) signals.push(signal);
      return Readable.from([files[indexOf(rf)]!.subarray(0, 10), files[indexOf(rf)]!.subarray(10)]);
    },
  };
  if (opts.withRead !== false) {
    driver.read = async (rf, size, signal) => {
      const i = indexOf(rf);
      started.push(i);
      if (signal) signals.push(signal);
      await tick();
      if (i === opts.failAt) throw new Error(`chunk ${i} unreadable`);
      assert.equal(size, files[i]!.length);
      return files[i]!;
    };
  }
  return { driver, started, signals };
}

async function* rows(files: Buffer[]): AsyncGenerator<ChunkRow> {
  for (const [i, f] of files.entries()) {
    yield { id: i, file_size: f.length, remote_file: JSON.stringify({ Local: { name: String(i) } }) } as ChunkRow;
  }
}

const files = Array.from({ length: 200 }, (_, i) => randomBytes(20_000 + i));
const whole = Buffer.concat(files);

test("the chunks come out in order to a consumer that keeps up", async () => {
  const { driver } = fakeStorage(files);
  assert.ok((await readAll(new NarBody(driver, rows(files), null))).equals(whole));
});

async function readAll(stream: Readable): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const p of stream) pieces.push(p as Buffer);
  return Buffer.concat(pieces);
}

test("the chunks come out in order; to a consumer that lags, in few large pieces", async () => {
  const { driver } = fakeStorage(files);
  const pieces: Buffer[] = [];
  const slow = new Writable({
    highWaterMark: 1,
    write(piece: Buffer, _enc, done) {
      pieces.push(piece);
      void tick().then(tick).then(tick).then(() => done());
    },
  });
  await pipeline(new NarBody(driver, rows(files), null), slow);
  assert.ok(Buffer.concat(pieces).equals(whole));
  assert.ok(pieces.length < files.length / 4, `${pieces.length} pieces for ${files.length} chunks`);
});

test("a driver without read is served through get", async () => {
  const { driver } = fakeStorage(files, { withRead: false });
  assert.ok((await readAll(new NarBody(driver, rows(files), null))).equals(whole));
});

test("a consumer that stops reading stops the reads; destroying the body aborts and starts nothing more", async () => {
  // far more chunks than the read-ahead (32 chunks, plus the batch being written)
  const many = Array.from({ length: 1000 }, (_, i) => randomBytes(1_000 + i));
  const { driver, started, signals } = fakeStorage(many);
  const body = new NarBody(driver, rows(many), null);
  body.read(0); // start, then read nothing
  for (let i = 0; i < 20; i++) await tick();
  const whileWaiting = started.length;
  assert.ok(whileWaiting > 0 && whileWaiting < many.length / 4, `${whileWaiting} reads started while nobody read`);
  for (let i = 0; i < 20; i++) await tick();
  assert.equal(started.length, whileWaiting, "no more reads while nobody reads");
  body.destroy();
  for (let i = 0; i < 20; i++) await tick();
  assert.equal(started.length, whileWaiting, "no reads after destroy");
  assert.ok(signals.every((s) => s.aborted), "reads in flight were aborted");
});

test("a chunk that cannot be read fails the body", async () => {
  const { driver } = fakeStorage(files, { failAt: 150 });
  await assert.rejects(readAll(new NarBody(driver, rows(files), null)), /chunk 150 unreadable/);
});
