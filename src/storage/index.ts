// Entry point of the storage room: pick a backend from config. The S3 backend (and with it the
// AWS SDK) is loaded only when configured.
import { LocalStorage } from "./local.ts";
import type { StorageDriver } from "./types.ts";

/** Where new chunks go (docs/packs.md); unset: packs of 64 MiB. */
export interface PackingConfig {
  /** append new chunks to packs (default true); false: one object per chunk, upstream's layout */
  packs?: boolean;
  /** bytes at which a pack is sealed (default 64 MiB) */
  packSize?: number;
}

/** The storage section of the server config (credentials keep upstream's snake_case names). */
export type StorageConfig =
  | ({ type: "local"; path: string } & PackingConfig)
  | ({
      type: "s3";
      region: string;
      bucket: string;
      /** a custom endpoint (MinIO, R2, …); path-style addressing is forced when set */
      endpoint?: string;
      /** ours (upstream PR #356): the endpoint put in presigned URLs; unset: `endpoint` */
      publicEndpoint?: string;
      /** unset: the AWS default credential chain (env, profile, instance role) */
      credentials?: { access_key_id: string; secret_access_key: string };
    } & PackingConfig);

export interface StorageOptions {
  /** where non-fatal problems go (a pino-style logger fits) */
  logger?: { warn(obj: object, msg: string): void };
}

export async function createStorage(config: StorageConfig, options: StorageOptions = {}): Promise<StorageDriver> {
  switch (config.type) {
    case "local":
      return LocalStorage.open(config.path);
    case "s3": {
      const { S3Storage } = await import("./s3.ts");
      const { type: _type, packs: _packs, packSize: _packSize, ...s3 } = config;
      return new S3Storage(s3, options);
    }
  }
}

export { newChunkKey, newChunkKeys, isValidKey } from "./keys.ts";
export { putAll } from "./streams.ts";
export { s3Counts } from "./s3-counts.ts";
export { remoteFileId } from "./remote-file.ts";
export { LocalStorage } from "./local.ts";
export { InvalidStorageKeyError, StorageFullError, StorageNotFoundError, UnsupportedRemoteFileError } from "./types.ts";
export type { BufferedFile, PutResult, RemoteFile, StorageDriver } from "./types.ts";
export type { S3Storage, S3StorageOptions } from "./s3.ts";
