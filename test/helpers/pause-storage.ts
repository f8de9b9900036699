// Loaded with `node --import` into an atticd child (NODE_OPTIONS) to stop it at a chosen moment of a
// compaction, so a test can SIGKILL it exactly there: the storage classes' prototypes are wrapped
// (the child's createStorage builds instances of these very classes). ATTIC_TEST_PAUSE_AT:
//   writing  - a new pack's bytes are being written (the put never completes)
//   durable  - a new pack is stored, before the transaction that moves the rows
//   deleting - retired packs are about to be deleted (the rows have moved)
// When it gets there (after letting ATTIC_TEST_PAUSE_SKIP such moments pass, default 0) it writes
// its pid to ATTIC_TEST_PAUSE_MARKER and waits forever.
import { writeFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { LocalStorage } from "../../src/storage/local.ts";
import { S3Storage } from "../../src/storage/s3.ts";
import type { AppendFile, ObjectWriter, PutResult, RemoteFile } from "../../src/storage/types.ts";

const at = process.env.ATTIC_TEST_PAUSE_AT;
const marker = process.env.ATTIC_TEST_PAUSE_MARKER;
const isPack = (f: RemoteFile) => JSON.stringify(f).includes(".pack");
let skip = Number(process.env.ATTIC_TEST_PAUSE_SKIP ?? 0);
const stopHere = (moment: string, matches: boolean): boolean => matches && at === moment && skip-- <= 0;
const hang = (): Promise<never> => {
  if (marker) writeFileSync(marker, String(process.pid));
  return new Promise<never>(() => {});
};

for (const cls of [LocalStorage, S3Storage] as const) {
  const proto = cls.prototype as unknown as {
    put(remoteFile: RemoteFile, body: Readable, signal?: AbortSignal): Promise<PutResult>;
    deleteMany(files: RemoteFile[]): Promise<{ failed: { remoteFile: RemoteFile; error: Error }[] }>;
  };
  const put = proto.put;
  proto.put = async function (this: unknown, remoteFile, body, signal) {
    if (stopHere("writing", isPack(remoteFile))) {
      // take some bytes, then stop: the pack is half written when the process dies
      for await (const _ of body) break;
      return hang();
    }
    const result = await put.call(this, remoteFile, body, signal);
    if (stopHere("durable", isPack(remoteFile))) return hang();
    return result;
  };
  // the compactor writes a pack by appends (local) or pushed bytes (S3): the same moments there
  const appendable = proto as unknown as { openAppend?: (remoteFile: RemoteFile) => Promise<AppendFile> };
  const openAppend = appendable.openAppend;
  if (openAppend) {
    appendable.openAppend = async function (this: unknown, remoteFile) {
      const file = await openAppend.call(this, remoteFile);
      if (!isPack(remoteFile)) return file;
      return {
        ...file,
        append: async (pieces) => {
          await file.append(pieces);
          if (stopHere("writing", true)) return hang();
        },
        sync: async () => {
          await file.sync();
          if (stopHere("durable", true)) return hang();
        },
      };
    };
  }
  const writable = proto as unknown as { openWrite?: (remoteFile: RemoteFile, signal?: AbortSignal) => ObjectWriter };
  const openWrite = writable.openWrite;
  if (openWrite) {
    writable.openWrite = function (this: unknown, remoteFile, signal) {
      const writer = openWrite.call(this, remoteFile, signal);
      if (!isPack(remoteFile)) return writer;
      return {
        ...writer,
        write: async (bytes) => {
          await writer.write(bytes);
          if (stopHere("writing", true)) return hang();
        },
        finish: async () => {
          const result = await writer.finish();
          if (stopHere("durable", true)) return hang();
          return result;
        },
      };
    };
  }
  const deleteMany = proto.deleteMany;
  proto.deleteMany = async function (this: unknown, files) {
    if (stopHere("deleting", files.some(isPack))) return hang();
    return deleteMany.call(this, files);
  };
}
