// Range headers on NAR downloads (src/server/download/range.ts): what is honoured, ignored or unsatisfiable.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { parseRange, RangeSlice } from "../../../src/server/download/range.ts";

test("parseRange: single byte ranges, suffixes, open ends; the rest is ignored or unsatisfiable", () => {
  const cases: [string | undefined, ReturnType<typeof parseRange>][] = [
    [undefined, null],
    ["bytes=0-99", { start: 0, end: 99 }],
    ["bytes=10-", { start: 10, end: 999 }],
    ["bytes=-100", { start: 900, end: 999 }],
    ["bytes=-5000", { start: 0, end: 999 }],
    ["bytes=500-5000", { start: 500, end: 999 }],
    ["bytes=999-999", { start: 999, end: 999 }],
    ["bytes=1000-", "unsatisfiable"],
    ["bytes=1000-2000", "unsatisfiable"],
    ["bytes=-0", "unsatisfiable"],
    ["bytes=5-4", null],
    ["bytes=0-1,5-6", null],
    ["items=0-1", null],
    ["bytes=-", null],
    ["bytes=a-b", null],
    ["bytes=99999999999999999999-", null],
  ];
  for (const [header, expected] of cases) assert.deepEqual(parseRange(header, 1000), expected, String(header));
});

test("RangeSlice cuts the first and last pieces whatever their sizes", async () => {
  const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  for (const pieceSize of [1, 7, 64, 256]) {
    const pieces = [];
    for (let i = 0; i < data.length; i += pieceSize) pieces.push(data.subarray(i, i + pieceSize));
    const out: Buffer[] = [];
    for await (const p of Readable.from(pieces).pipe(new RangeSlice({ skip: 13 }, 100))) out.push(p as Buffer);
    assert.ok(Buffer.concat(out).equals(data.subarray(13, 113)), `pieces of ${pieceSize}`);
  }
});
