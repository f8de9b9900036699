// The last step of a run: chunks marked D lose their storage files, in pages deleted with the
// driver's bounded concurrency, then their rows. Files first, rows after: a D row whose file could
// not be deleted (or whose remote_file cannot be read) stays, and the next run tries it again.
import type { Db } from "../db/connect.ts";
import { deleteChunkRows, selectDeletedChunks } from "../db/queries/gc.ts";
import type { ChunkRow } from "../db/schema.ts";
import type { RemoteFile, StorageDriver } from "../storage/types.ts";

/** Rows per page: bounds the memory of a run whatever the number of dead chunks. */
const PAGE = 1000;

export interface ChunkFilesResult {
  chunks: number;
  bytesFreed: number;
  failures: number;
}

function parseRemoteFile(chunk: ChunkRow): RemoteFile | null {
  try {
    const value: unknown = JSON.parse(chunk.remote_file);
    return typeof value === "object" && value !== null ? (value as RemoteFile) : null;
  } catch {
    return null;
  }
}

export async function deleteChunkFiles(db: Db, storage: StorageDriver, signal: AbortSignal): Promise<ChunkFilesResult> {
  const result: ChunkFilesResult = { chunks: 0, bytesFreed: 0, failures: 0 };
  let afterId = 0;
  for (;;) {
    signal.throwIfAborted();
    const page = await selectDeletedChunks(db, PAGE, afterId);
    if (page.length === 0) break;
    afterId = page[page.length - 1]!.id;

    // matched back by content, not identity: a driver may report failures with copies
    const byFile = new Map<string, ChunkRow[]>();
    const files: RemoteFile[] = [];
    for (const chunk of page) {
      const remoteFile = parseRemoteFile(chunk);
      if (!remoteFile) {
        result.failures++;
        continue;
      }
      const key = JSON.stringify(remoteFile);
      const rows = byFile.get(key);
      if (rows) rows.push(chunk);
      else {
        byFile.set(key, [chunk]);
        files.push(remoteFile);
      }
    }
    const { failed } = await storage.deleteMany(files);
    for (const { remoteFile } of failed) {
      const key = JSON.stringify(remoteFile);
      result.failures += byFile.get(key)?.length ?? 0;
      byFile.delete(key);
    }
    const done = [...byFile.values()].flat();
    result.chunks += await deleteChunkRows(db, done.map((c) => c.id));
    result.bytesFreed += done.reduce((sum, c) => sum + (c.file_size ?? 0), 0);
    if (page.length < PAGE) break;
  }
  return result;
}
