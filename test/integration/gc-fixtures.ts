// State for the garbage-collector tests, built directly in the database and the storage: orphan
// chunk rows in bulk (with or without their files), and storage drivers that fail or block.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { Db } from "../../src/db/connect.ts";
import type { RemoteFile, StorageDriver } from "../../src/storage/types.ts";

/**
 * `n` valid chunks no chunkref points at, of 10 bytes each on disk. With `localRoot`, their files
 * are written in the upstream layout. Rows go in 3,000 at a time: under SQLite's 32,766 and
 * PostgreSQL's 65,535 bind parameters (10 per row).
 */
export async function insertOrphanChunks(db: Db, storage: StorageDriver, n: number, opts: { localRoot?: string; from?: number } = {}): Promise<void> {
  const from = opts.from ?? 0;
  const now = new Date();
  let rows = [];
  for (let i = from; i < from + n; i++) {
    const key = `${i.toString(16).padStart(8, "0")}-0000-4000-8000-000000000000.chunk`;
    const { remoteFile, remoteFileId } = storage.remoteFileFor(key);
    if (opts.localRoot) {
      const path = join(opts.localRoot, key[0]!, key.slice(0, 2), key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, "0123456789");
    }
    rows.push({
      state: "V",
      chunk_hash: `sha256:${i.toString(16).padStart(64, "0")}`,
      chunk_size: 10,
      file_hash: null,
      file_size: 10,
      compression: "zstd",
      remote_file: JSON.stringify(remoteFile),
      remote_file_id: remoteFileId,
      holders_count: 0,
      created_at: now,
    });
    if (rows.length === 3000) {
      await db.kysely.insertInto("chunk").values(rows as never).execute();
      rows = [];
    }
  }
  if (rows.length > 0) await db.kysely.insertInto("chunk").values(rows as never).execute();
}

/** The same driver with another deleteMany (the prototype chain keeps every other method). */
export function withDeleteMany(storage: StorageDriver, deleteMany: StorageDriver["deleteMany"]): StorageDriver {
  return Object.assign(Object.create(storage) as StorageDriver, { deleteMany });
}

/** A driver whose deletions of the given files fail (as a permission error would). */
export function failingFor(storage: StorageDriver, fails: (remoteFile: RemoteFile) => boolean): StorageDriver {
  return withDeleteMany(storage, async (remoteFiles) => {
    const { failed } = await storage.deleteMany(remoteFiles.filter((f) => !fails(f)));
    const refused = remoteFiles.filter(fails).map((remoteFile) => ({ remoteFile, error: new Error("EACCES (test)") }));
    // reported as copies: the collector must match failures by content
    return { failed: [...failed, ...refused.map((r) => ({ ...r, remoteFile: structuredClone(r.remoteFile) }))] };
  });
}

/** A driver whose deleteMany waits for `gate` (and says when it got there). */
export function blockedAt(storage: StorageDriver): { storage: StorageDriver; reached: Promise<void>; open(): void } {
  let open!: () => void;
  let reach!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const reached = new Promise<void>((r) => (reach = r));
  return {
    storage: withDeleteMany(storage, async (remoteFiles) => {
      reach();
      await gate;
      return storage.deleteMany(remoteFiles);
    }),
    reached,
    open,
  };
}

export async function chunkStates(db: Db): Promise<Record<string, number>> {
  const rows = await db.kysely.selectFrom("chunk").select("state").execute();
  const out: Record<string, number> = {};
  for (const { state } of rows) out[state.trim()] = (out[state.trim()] ?? 0) + 1;
  return out;
}

/** Keys in the test S3 server's bucket. */
export async function bucketKeys(bucket: string): Promise<string[]> {
  const client = new S3Client({
    endpoint: process.env.ATTIC_TEST_S3_ENDPOINT,
    region: process.env.ATTIC_TEST_S3_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.ATTIC_TEST_S3_ACCESS_KEY_ID ?? "S3RVER",
      secretAccessKey: process.env.ATTIC_TEST_S3_SECRET_ACCESS_KEY ?? "S3RVER",
    },
  });
  const keys: string[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ""));
      token = page.NextContinuationToken;
    } while (token);
  } finally {
    client.destroy();
  }
  return keys;
}
