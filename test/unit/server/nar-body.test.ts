// The NAR body's read-ahead against an in-memory storage driver: bytes in order, reads bounded
// while the consumer waits, a destroyed body aborts what is in flight and starts nothing more,
// a failed read fails the body, and a driver without `read` is served through `get`; packed
// chunks are read as runs, and a chunk the NAR repeats keeps its run going (docs/packs.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setImmediate as tick } from "node:timers/promises";
import { ChunkFileLostError, NarBody, REPEAT_MEMO_BYTES } from "../../../src/server/download/nar-body.ts";
import type { ServedChunk } from "../../../src/db/queries/objects.ts";
import type { ChunkRow } from "../../../src/db/schema.ts";
import { StorageNotFoundError, type RemoteFile, type StorageDriver } from "../../../src/storage/types.ts";

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

/** Packs held in memory, served by ranges in 64 KiB pieces; every range asked for is recorded. */
function packStorage(packs: Buffer[]) {
  const ranges: { pack: number; offset: number; length: number }[] = [];
  const driver: StorageDriver = {
    name: "packs",
    remoteFileFor: () => assert.fail("not used"),
    put: () => assert.fail("not used"),
    get: () => assert.fail("packed chunks are read by ranges"),
    has: async () => true,
    deleteMany: async () => ({ failed: [] }),
    async getRange(rf, offset, length) {
      const pack = Number((rf as { Local: { name: string } }).Local.name);
      ranges.push({ pack, offset, length });
      const bytes = packs[pack]!.subarray(offset, offset + length);
      const pieces = [];
      for (let at = 0; at < bytes.length; at += 65536) pieces.push(bytes.subarray(at, at + 65536));
      return Readable.from(pieces);
    },
  };
  return { driver, ranges };
}

/** Chunks laid out in packs in the order given (each chunk once), and the rows of a NAR made of `sequence` (chunk indexes, repeats allowed). */
function packedNar(sizes: number[][], sequence: number[]) {
  const chunks: ServedChunk[] = [];
  const bytes: Buffer[] = [];
  const packs = sizes.map((inPack, pack) => {
    let offset = 0;
    const parts = inPack.map((size) => {
      const b = randomBytes(size);
      chunks.push({ id: chunks.length, remote_file: "{}", remote_file_id: `c${chunks.length}`, file_size: size, chunk_size: size, pack_id: pack, pack_offset: offset, pack_remote_file: JSON.stringify({ Local: { name: String(pack) } }) });
      bytes.push(b);
      offset += size;
      return b;
    });
    return Buffer.concat(parts);
  });
  const repeats = new Map<number, number>();
  for (const i of sequence) repeats.set(i, (repeats.get(i) ?? 0) + 1);
  for (const [i, n] of repeats) if (n < 2) repeats.delete(i);
  async function* rowsOf(): AsyncGenerator<ServedChunk> {
    for (const i of sequence) yield chunks[i]!;
  }
  return { packs, rows: rowsOf, repeats, expected: Buffer.concat(sequence.map((i) => bytes[i]!)) };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

test("packed chunks: one range per pack, a chunk the NAR repeats sent from memory without ending the run", async () => {
  const sizes = [Array.from({ length: 50 }, (_, i) => 20_000 + i), Array.from({ length: 50 }, (_, i) => 30_000 + i)];
  // repeats in the middle of a run, at a pack's end, across packs, twice, and as the last chunk
  const sequence = [...range(0, 11), 3, ...range(11, 50), 7, ...range(50, 61), 5, 55, 3, ...range(61, 100), 99];
  const nar = packedNar(sizes, sequence);
  const { driver, ranges } = packStorage(nar.packs);
  const body = new NarBody(driver, nar.rows(), null, Promise.resolve(nar.repeats));
  assert.ok((await readAll(body)).equals(nar.expected));
  assert.deepEqual(ranges, [
    { pack: 0, offset: 0, length: nar.packs[0]!.length },
    { pack: 1, offset: 0, length: nar.packs[1]!.length },
  ]);
  assert.equal(body.memoBytesHeld, 0, "every kept chunk is given up after its last occurrence");
});

test("packed chunks: a repeat the memory bound has no room for is read on its own, the run still goes on", async () => {
  const big = REPEAT_MEMO_BYTES + 1;
  const nar = packedNar([[1000, big, 2000, 3000]], [0, 1, 2, 1, 3, 0]);
  const { driver, ranges } = packStorage(nar.packs);
  const body = new NarBody(driver, nar.rows(), null, Promise.resolve(nar.repeats));
  let peak = 0;
  body.on("data", () => (peak = Math.max(peak, body.memoBytesHeld)));
  assert.ok((await readAll(body)).equals(nar.expected));
  assert.ok(peak <= REPEAT_MEMO_BYTES, `${peak} bytes kept for repeats`);
  // the repeat's own read starts as the run is planned, before the run's read
  assert.deepEqual(ranges.sort((a, b) => a.offset - b.offset), [
    { pack: 0, offset: 0, length: nar.packs[0]!.length },
    { pack: 0, offset: 1000, length: big },
  ]);
});

test("packed chunks: repeats read on their own are started within the read-ahead bound, not all at once", async () => {
  const MiB = 1024 * 1024;
  // the first chunk fills the memo (it repeats at the end), so each 1 MiB chunk's repeat is read on its own
  const sizes = [REPEAT_MEMO_BYTES, ...Array.from({ length: 20 }, () => MiB)];
  const nar = packedNar([sizes], [0, ...range(1, 21), ...range(1, 21), 0]);
  const { driver, ranges } = packStorage(nar.packs);
  const body = new NarBody(driver, nar.rows(), null, Promise.resolve(nar.repeats));
  body.read(0); // start, then read nothing
  for (let i = 0; i < 50; i++) await tick();
  const own = ranges.filter((r) => r.length === MiB);
  assert.ok(own.length <= 5, `${own.length} repeats read on their own at once, while nobody read (bound: 4 MiB)`);
  body.destroy();
  const all = new NarBody(driver, nar.rows(), null, Promise.resolve(nar.repeats));
  assert.ok((await readAll(all)).equals(nar.expected));
});

test("ready(): the first range is opened before any byte, a lost pack rejects there, and the body reuses that range", async () => {
  const nar = packedNar([[1000, 2000, 3000]], [0, 1, 2]);
  const { driver, ranges } = packStorage(nar.packs);
  const body = new NarBody(driver, nar.rows(), null, Promise.resolve(nar.repeats));
  assert.deepEqual(await body.ready(), { packId: 0, end: 6000 });
  assert.equal(ranges.length, 1, "the range was opened by ready()");
  assert.ok((await readAll(body)).equals(nar.expected));
  assert.equal(ranges.length, 1, "and not opened again to send it");

  const lost: StorageDriver = { ...driver, getRange: async () => Promise.reject(new StorageNotFoundError("pack 0 (short)")) };
  const broken = new NarBody(lost, nar.rows(), null, Promise.resolve(nar.repeats));
  await assert.rejects(broken.ready(), (err: Error) => err instanceof ChunkFileLostError && err.packId === 0);
  broken.destroy();
});
