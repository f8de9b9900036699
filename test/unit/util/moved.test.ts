// Buffers moved in from a worker are freed once their frames are stored (util/moved.ts): only
// those adopted, once, and never a buffer someone else shares.
import assert from "node:assert/strict";
import { test } from "node:test";
import { adopt, release } from "../../../src/util/moved.ts";

test("release frees (detaches) adopted buffers under the views, once, and leaves any other buffer alone", () => {
  const moved = new Uint8Array(1024);
  adopt(moved.buffer);
  const frames = [moved.subarray(0, 100), moved.subarray(100)];
  const pooled = Buffer.from("a small Buffer from the shared pool");
  const own = new Uint8Array(64);
  release([...frames, pooled, own]);
  assert.equal(moved.buffer.byteLength, 0, "the adopted buffer is freed");
  assert.equal(frames[0]!.byteLength, 0, "its views are empty");
  assert.equal(pooled.toString(), "a small Buffer from the shared pool", "the pool's slab is untouched");
  assert.equal(own.byteLength, 64, "a buffer never adopted is untouched");
  // a second release of the same views is harmless
  release(frames);
});
