import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { NarSerializeError, narChunks, narSerialize } from "../../../src/nix/nar/serialize.ts";
import { NarValidator } from "../../../src/nix/nar/parse.ts";
import { dir, entryTokens, file, narBytes, narStr, regularTokens, symlink, writeTree } from "../../helpers/nar-tree.ts";

async function serialize(path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of narChunks(path)) parts.push(p);
  return Buffer.concat(parts);
}

function withTemp(f: (base: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const base = mkdtempSync(join(tmpdir(), "nar-ser-"));
    try {
      await f(base);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  };
}

test("serializes a small tree to the expected tokens, entries sorted bytewise", withTemp(async (base) => {
  writeTree(join(base, "t"), dir({ b: file("B"), a: symlink("b"), Z: dir({}), x: file("#!", true) }));
  const expected = narBytes(
    "nix-archive-1", "(", "type", "directory",
    ...entryTokens("Z", ["(", "type", "directory", ")"]),
    ...entryTokens("a", ["(", "type", "symlink", "target", "b", ")"]),
    ...entryTokens("b", regularTokens("B")),
    ...entryTokens("x", regularTokens("#!", true)),
    ")",
  );
  assert.deepEqual(await serialize(join(base, "t")), expected);
}));

test("large files (several pieces, odd size) are framed and padded correctly", withTemp(async (base) => {
  const size = 3 * 1024 * 1024 + 5;
  const contents = Buffer.alloc(size);
  for (let i = 0; i < size; i++) contents[i] = (i * 31) & 0xff;
  writeTree(join(base, "f"), file(contents, true));
  const nar = await serialize(join(base, "f"));
  const expected = narBytes("nix-archive-1", "(", "type", "regular", "executable", "", "contents", narStr(contents), ")");
  assert.equal(nar.length, expected.length);
  assert.ok(nar.equals(expected));
}));

test("narSerialize is a byte stream that pipes through the validator", withTemp(async (base) => {
  writeTree(join(base, "t"), dir({ a: file(Buffer.alloc(100_000, 1)), b: dir({ c: file("") }) }));
  const v = new NarValidator();
  let size = 0;
  await pipeline(narSerialize(join(base, "t")), v, new Writable({ write: (c: Buffer, _e, cb) => { size += c.length; cb(); } }));
  assert.equal(v.result().narSize, size);
}));

test("unsupported file types (a FIFO) are an error, as in Nix", withTemp(async (base) => {
  writeTree(join(base, "t"), dir({}));
  execFileSync("mkfifo", [join(base, "t", "pipe")]);
  await assert.rejects(serialize(join(base, "t")), (e: unknown) => e instanceof NarSerializeError && /unsupported type/.test(e.message));
}));

test("a missing path is an error", withTemp(async (base) => {
  await assert.rejects(serialize(join(base, "nope")), /ENOENT/);
}));
