// The shared ring of a chunked pass (src/workers/ring.ts): where the main thread puts pieces, that
// it never overwrites a byte before its batch is released, and that a pass cutting in the ring
// (the worker's NarPass, run here in one thread) gives the chunks of a pass over moved pieces,
// with every chunk's bytes intact until its batch is released, across many laps of a small ring.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { NarPass } from "../../../src/workers/nar-pass.ts";
import type { ChunkBatch, NarPassOptions } from "../../../src/workers/protocol.ts";
import { newRing, RingLayout, ringSize, type Ring } from "../../../src/workers/ring.ts";
import { fileNar, seededBytes } from "../../helpers/nar.ts";

test("pieces go back to back; a piece that does not fit starts a new lap after the gap", () => {
  const ring = new RingLayout(100, 10);
  assert.deepEqual(ring.place(40), { at: 0, wrapped: false });
  ring.commit(40);
  assert.deepEqual(ring.place(40), { at: 40, wrapped: false });
  ring.commit(30);
  // 70 + 40 > 100: a new lap, after the gap; but nothing is free yet
  assert.equal(ring.place(40), null);
  ring.reclaim(35);
  assert.equal(ring.place(40), null, "the gap and the piece need 50 bytes; 35 are free");
  ring.reclaim(60);
  assert.deepEqual(ring.place(40), { at: 10, wrapped: true });
  ring.commit(40);
  assert.equal(ring.used, 100 + 50 - 60);
});

test("the layout never hands out a byte that is not free, whatever the release order", () => {
  const size = 1000;
  const gap = 64;
  const ring = new RingLayout(size, gap);
  // owner of each physical byte: NAR offset still held, or -1
  const owner = new Int32Array(size).fill(-1);
  let nar = 0;
  let freeBefore = 0;
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
  const placed: { nar: number; at: number; length: number }[] = [];
  for (let step = 0; step < 5000; step++) {
    const room = 1 + rand(300);
    const p = ring.place(room);
    if (!p) {
      // free some: everything before a later NAR offset (batches release in any order; the ring frees up to the oldest held)
      freeBefore = Math.min(nar, freeBefore + 1 + rand(400));
      ring.reclaim(freeBefore);
      for (let i = 0; i < size; i++) if (owner[i]! >= 0 && owner[i]! < freeBefore) owner[i] = -1;
      continue;
    }
    const length = 1 + rand(room);
    for (let i = 0; i < length; i++) {
      assert.equal(owner[p.at + i], -1, `byte ${p.at + i} is still held by NAR offset ${owner[p.at + i]}`);
      owner[p.at + i] = nar + i;
    }
    if (p.wrapped) assert.ok(p.at >= gap, "a wrapped piece leaves the gap before it");
    ring.commit(length);
    placed.push({ nar, at: p.at, length });
    nar += length;
  }
  assert.ok(placed.length > 100);
});

test("a ring is the NAR's size when it fits, and room for batches, pieces and the gap otherwise", () => {
  assert.equal(ringSize(100_000, 256 * 1024, 16, 512 * 1024, 4), 100_000);
  assert.equal(ringSize(1 << 30, 256 * 1024, 16, 512 * 1024, 4), 16 * 1024 * 1024);
  // big chunks: more than the default, never less than a batch of them can hold
  assert.ok(ringSize(1 << 30, 8 << 20, 16, 512 * 1024, 4) >= 18 * (8 << 20));
});

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A pass fed moved pieces, the reference. */
function referenceBatches(nar: Buffer, options: NarPassOptions, piece: number): ChunkBatch[] {
  const pass = new NarPass(options);
  const out: ChunkBatch[] = [];
  for (let at = 0; at < nar.length; at += piece) out.push(...pass.update(Uint8Array.from(nar.subarray(at, at + piece))).batches);
  out.push(...pass.end().batches);
  return out;
}

test("a pass cutting in a small ring: the reference chunks, each intact until released, over many laps", () => {
  const chunking = { minSize: 1024, avgSize: 4096, maxSize: 16384 };
  const options: NarPassOptions = { chunking, codec: { type: "none", level: 0, raw: false }, batchSize: 4 };
  const nar = fileNar(seededBytes(3 << 20, 11));
  const piece = 8192;
  // a small ring: exactly the least ringSize() allows for these parameters (it laps many times)
  const small = (options.batchSize + 2) * chunking.maxSize + piece + chunking.maxSize;
  assert.ok(small < nar.length / 20);
  for (const [kind, ringBytes] of [["wasm", small], ["wasm", small + 12345], ["plain", small + 777]] as const) {
    // the ring the server makes (a WebAssembly memory, cut by the WebAssembly loop), or a plain shared buffer
    const ring: Ring = kind === "wasm" ? newRing(ringBytes) : { buffer: new SharedArrayBuffer(ringBytes), base: 0, size: ringBytes, memory: null };
    if (kind === "wasm") assert.ok(ring.memory, "Node 24 has shared WebAssembly memories");
    const sab = ring.buffer;
    const bytes = new Uint8Array(sab, ring.base, ringBytes);
    const layout = new RingLayout(ringBytes, chunking.maxSize);
    const pass = new NarPass(options, null, { shared: ring.memory ?? ring.buffer, base: ring.base });
    const got: ChunkBatch[] = [];
    const held = new Map<number, { start: number; hashes: string[] }>();
    let handedOut = 0;
    let seed = ringBytes;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    let wraps = 0;
    const take = (batches: ChunkBatch[]) => {
      for (const b of batches) {
        got.push(b);
        held.set(b.seq, { start: handedOut, hashes: b.hashes });
        for (const n of b.sizes) handedOut += n;
      }
    };
    const release = (seq: number) => {
      const h = held.get(seq)!;
      // the bytes the chunks view are the bytes that were cut
      const chunks = pass.chunks(seq, h.hashes.map((_, i) => i));
      assert.deepEqual(chunks.map(sha), h.hashes, `batch ${seq} changed before its release`);
      assert.ok(chunks.every((c) => c.buffer === sab), "chunks are views of the ring");
      pass.release(seq);
      held.delete(seq);
      let oldest = handedOut;
      for (const v of held.values()) oldest = Math.min(oldest, v.start);
      layout.reclaim(oldest);
    };
    let at = 0;
    while (at < nar.length) {
      const room = Math.min(piece, nar.length - at);
      const p = layout.place(room);
      if (!p) {
        assert.ok(held.size > 0, "a full ring always has a batch to release");
        // release in any order: a random held batch
        release([...held.keys()][rand(held.size)]!);
        continue;
      }
      if (p.wrapped) wraps++;
      const n = Math.min(room, 1 + rand(room) + (rand(2) ? room : 0));
      bytes.set(nar.subarray(at, at + n), p.at);
      layout.commit(n);
      take(pass.updateRing(p.at, n, p.wrapped).batches);
      at += n;
      // keep a few batches held, like the consumer does
      while (held.size > 3) release([...held.keys()][rand(held.size)]!);
    }
    take(pass.end().batches);
    for (const seq of [...held.keys()]) release(seq);
    assert.ok(wraps > 20, `${wraps} laps`);
    const ref = referenceBatches(nar, options, 65536);
    assert.deepEqual(
      got.map((b) => b.hashes),
      ref.map((b) => b.hashes),
      `${kind} ring of ${ringBytes} bytes`,
    );
  }
});
