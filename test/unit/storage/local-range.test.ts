// A byte range of a local file read ahead (storage/local-range.ts): the bytes of the range and
// nothing else, at most piece × ahead bytes in flight however long the range and however slow
// the consumer, and an error (not a short stream) when the file ends before the range does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setImmediate as tick } from "node:timers/promises";
import { FileRangeStream } from "../../../src/storage/local-range.ts";

const dir = mkdtempSync(join(tmpdir(), "attic-range-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const bytes = randomBytes(3 * 1024 * 1024 + 12345);
const path = join(dir, "pack");
writeFileSync(path, bytes);

test("the range's bytes, in order, with at most piece × ahead bytes in flight to a slow consumer", async () => {
  const piece = 64 * 1024;
  const ahead = 3;
  const stream = new FileRangeStream(await open(path, "r"), 1000, bytes.length - 2000, { piece, ahead });
  const got: Buffer[] = [];
  let peak = 0;
  const slow = new Writable({
    highWaterMark: 1,
    write(b: Buffer, _enc, done) {
      got.push(b);
      peak = Math.max(peak, stream.inFlight);
      // the reads ahead get every chance to run while this piece is "being written"
      void tick().then(tick).then(tick).then(tick).then(() => done());
    },
  });
  const watch = setInterval(() => (peak = Math.max(peak, stream.inFlight)), 1);
  try {
    await pipeline(stream, slow);
  } finally {
    clearInterval(watch);
  }
  assert.ok(Buffer.concat(got).equals(bytes.subarray(1000, bytes.length - 1000)));
  assert.ok(peak > piece, `reads went ahead (${peak} bytes in flight at most)`);
  assert.ok(peak <= piece * ahead, `${peak} bytes in flight, bound ${piece * ahead}`);
  assert.ok(got.every((b) => b.length <= piece));
});

test("a file that ends before the range fails the stream", async () => {
  const stream = new FileRangeStream(await open(path, "r"), bytes.length - 100, 200, { piece: 64, ahead: 2 });
  await assert.rejects(pipeline(stream, new Writable({ write: (_b, _e, done) => done() })), /ended at/);
});

test("destroying the stream mid-range stops the reads and closes the file", async () => {
  const file = await open(path, "r");
  const stream = new FileRangeStream(file, 0, bytes.length, { piece: 4096, ahead: 2 });
  await new Promise<void>((resolve) => stream.once("data", () => resolve()));
  stream.destroy();
  await new Promise<void>((resolve) => stream.once("close", () => resolve()));
  await assert.rejects(file.stat(), /closed|EBADF/);
});
