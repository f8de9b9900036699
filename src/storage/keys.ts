// Storage keys are opaque file names (`<uuid>.chunk`). They come back from the database, so they
// are validated before they reach a filesystem path or an object key: a hostile or corrupt row
// must never escape the storage root.
import { randomUUID } from "node:crypto";
import { InvalidStorageKeyError } from "./types.ts";

/** At least two characters (the local layout shards on `key[0..2]`), no leading dot, no separators. */
const KEY_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]+$/;
/** Well under the common 255-byte file name limit. */
export const MAX_KEY_LENGTH = 200;

export function isValidKey(key: string): boolean {
  return key.length <= MAX_KEY_LENGTH && KEY_PATTERN.test(key);
}

export function assertValidKey(key: string): string {
  if (!isValidKey(key)) throw new InvalidStorageKeyError(key);
  return key;
}

/** A fresh key as upstream names chunks: a random UUID v4 with a `.chunk` suffix. */
export function newChunkKey(): string {
  return `${randomUUID()}.chunk`;
}

/**
 * `count` fresh keys that share their first two characters, so that the local backend puts them
 * in one shard directory and one directory sync makes all their renames durable. Still UUID v4s
 * (the fixed version digit is further on); the shared prefix is drawn at random per call, so the
 * shards fill evenly.
 */
export function newChunkKeys(count: number): string[] {
  const keys = Array.from({ length: count }, () => newChunkKey());
  const prefix = keys[0]?.slice(0, 2) ?? "";
  return keys.map((k) => prefix + k.slice(2));
}
