import assert from "node:assert/strict";
import { test } from "node:test";
import { assertValidKey, isValidKey, MAX_KEY_LENGTH, newChunkKey, newChunkKeys } from "../../../src/storage/keys.ts";
import { remoteFileId } from "../../../src/storage/remote-file.ts";
import { InvalidStorageKeyError } from "../../../src/storage/types.ts";

test("new chunk keys look like upstream's and are valid", () => {
  const key = newChunkKey();
  assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.chunk$/);
  assert.ok(isValidKey(key));
  assert.notEqual(newChunkKey(), key);
});

test("a batch of new keys shares one shard directory (first two characters) and stays upstream-shaped", () => {
  const keys = newChunkKeys(16);
  assert.equal(new Set(keys).size, 16);
  for (const key of keys) {
    assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.chunk$/);
    assert.equal(key.slice(0, 2), keys[0]!.slice(0, 2));
  }
  // the shared prefix is drawn per batch, so batches spread over the shards
  const prefixes = new Set(Array.from({ length: 64 }, () => newChunkKeys(2)[0]!.slice(0, 2)));
  assert.ok(prefixes.size > 16);
  assert.deepEqual(newChunkKeys(0), []);
});

const hostile = [
  "",
  "x",
  "../x",
  "..",
  ".",
  "a/b",
  "/etc/passwd",
  "a\\b",
  ".hidden",
  ".tmp-123",
  "a\u0000b",
  "a b",
  "é.chunk",
  "a\nb",
  "k".repeat(MAX_KEY_LENGTH + 1),
];
for (const key of hostile) {
  test(`hostile key ${JSON.stringify(key.slice(0, 20))} is rejected`, () => {
    assert.equal(isValidKey(key), false);
    assert.throws(() => assertValidKey(key), InvalidStorageKeyError);
  });
}

for (const key of ["ab", "A-b_c.d", "0f.chunk", "k".repeat(MAX_KEY_LENGTH), "a..b"]) {
  test(`plain key ${JSON.stringify(key.slice(0, 20))} is accepted`, () => {
    assert.equal(assertValidKey(key), key);
  });
}

test("remote_file_id matches upstream's forms", () => {
  assert.equal(remoteFileId({ Local: { name: "k.chunk" } }), "local:k.chunk");
  assert.equal(remoteFileId({ S3: { region: "r", bucket: "b", key: "k.chunk" } }), "s3:r/b/k.chunk");
  assert.equal(remoteFileId({ Http: { url: "http://x/y" } }), "http:http://x/y");
});
