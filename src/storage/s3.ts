// S3 backend (AWS or any S3-compatible server). Objects live at the bucket root under their key,
// as upstream (`<uuid>.chunk`). A `RemoteFile` recorded with another region or bucket is still
// honoured, with one client per region, so a migrated deployment keeps serving old files.
// This module is imported only when S3 storage is configured: it pulls in the AWS SDK.
import { DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { Readable } from "node:stream";
import { assertValidKey } from "./keys.ts";
import { remoteFileId } from "./remote-file.ts";
import { resumingBody } from "./s3-resume.ts";
import { makeS3Client, type S3StorageConfig } from "./s3-client.ts";
import { s3FullReason } from "./s3-full.ts";
import { uploadStream, type UploadLimits, type UploadStats } from "./s3-upload.ts";
import { PartBuffers, PartFeed } from "./s3-parts.ts";
import { forEachLimit } from "../util/concurrency.ts";
import { chunksOf, settleAll } from "./streams.ts";
import { StorageFullError, StorageNotFoundError, UnsupportedRemoteFileError } from "./types.ts";
import type { BufferedFile, ObjectWriter, PutResult, RemoteFile, StorageDriver } from "./types.ts";

export type { S3StorageConfig } from "./s3-client.ts";

export interface S3StorageOptions {
  /** bytes per multipart part of a stream put, and the PutObject threshold (default 8 MiB, as upstream) */
  partSize?: number;
  /**
   * bytes per multipart part of an object pushed by a writer (`openWrite`: a pack streamed while
   * uploads append to it). Default 5 MiB, S3's smallest part: a streamed pack holds its parts in
   * flight and the one being filled, 3 × 5 MiB instead of 3 × 8 (the 2 GiB push's peak on
   * PostgreSQL + S3 was some 9 MiB lower, at the same push rate).
   */
  streamPartSize?: number;
  /**
   * multipart parts uploading at once (default 2: a streamed pack holds 3 parts; with 4 (of 8 MiB),
   * the 2 GiB push's peak was 292 MiB against 269 with 2, at the same throughput into the test S3
   * server, and one S3 connection takes some 50-100 MB/s)
   */
  maxPartsInFlight?: number;
  /** where non-fatal problems go (a pino-style logger fits) */
  logger?: { warn(obj: object, msg: string): void };
}

const MIB = 1024 * 1024;
/** S3's limit for one DeleteObjects request. */
const DELETE_BATCH = 1000;
const SINGLE_DELETE_CONCURRENCY = 20;

type S3Location = { region: string; bucket: string; key: string };

function errorName(err: unknown): string | undefined {
  return (err as { name?: string } | null)?.name;
}
function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function streamOf(body: unknown, bucket: string, key: string): Readable {
  if (!(body instanceof Readable)) throw new Error(`GetObject s3://${bucket}/${key} returned no stream`);
  return body;
}

export class S3Storage implements StorageDriver {
  readonly name: string;
  readonly stats: UploadStats = { multipartStarted: 0, multipartCompleted: 0, multipartAborted: 0, multipartAbortFailed: 0, maxPartsInFlight: 0 };
  private readonly config: S3StorageConfig;
  private readonly limits: UploadLimits;
  private readonly partBuffers: PartBuffers;
  /** openWrite's parts: their own size (streamPartSize) and buffers */
  private readonly streamLimits: UploadLimits;
  private readonly streamBuffers: PartBuffers;
  private readonly logger: S3StorageOptions["logger"];
  private readonly clients = new Map<string, S3Client>();
  /** Clients on `publicEndpoint`, which only sign URLs (presigning sends no request). */
  private readonly presignClients = new Map<string, S3Client>();
  /** Set once a server answered that it has no DeleteObjects; deletes then go one by one. */
  private batchDeleteUnsupported = false;

  constructor(config: S3StorageConfig, options: S3StorageOptions = {}) {
    this.config = config;
    this.name = `s3:${config.region}/${config.bucket}`;
    this.limits = { partSize: options.partSize ?? 8 * MIB, maxPartsInFlight: options.maxPartsInFlight ?? 2 };
    // an upload holds its parts in flight and the one being filled: that many are kept for reuse
    this.partBuffers = new PartBuffers(this.limits.partSize, this.limits.maxPartsInFlight + 1);
    this.streamLimits = { partSize: options.streamPartSize ?? 5 * MIB, maxPartsInFlight: this.limits.maxPartsInFlight };
    this.streamBuffers = new PartBuffers(this.streamLimits.partSize, this.streamLimits.maxPartsInFlight + 1);
    this.logger = options.logger;
  }

  remoteFileFor(key: string): { remoteFile: RemoteFile; remoteFileId: string } {
    const remoteFile: RemoteFile = { S3: { region: this.config.region, bucket: this.config.bucket, key: assertValidKey(key) } };
    return { remoteFile, remoteFileId: remoteFileId(remoteFile) };
  }

  private locate(remoteFile: RemoteFile): S3Location {
    if (!("S3" in remoteFile)) throw new UnsupportedRemoteFileError("s3", remoteFile);
    const { region, bucket, key } = remoteFile.S3;
    return { region, bucket, key: assertValidKey(key) };
  }

  private clientFor(region: string): S3Client {
    let client = this.clients.get(region);
    if (!client) {
      client = makeS3Client(this.config, region);
      this.clients.set(region, client);
    }
    return client;
  }

  private presignClientFor(region: string): S3Client {
    const { publicEndpoint, ...config } = this.config;
    if (publicEndpoint === undefined) return this.clientFor(region);
    let client = this.presignClients.get(region);
    if (!client) {
      client = makeS3Client({ ...config, endpoint: publicEndpoint }, region);
      this.presignClients.set(region, client);
    }
    return client;
  }

  private warn = (error: unknown, message: string): void => {
    this.logger?.warn({ err: error }, message);
  };

  /** A new object from bytes pushed by the caller, copied into the reused part buffers (PartFeed). */
  openWrite(remoteFile: RemoteFile, signal?: AbortSignal): ObjectWriter {
    const feed = new PartFeed(this.streamBuffers);
    const stop = new AbortController();
    const stored = this.upload(remoteFile, feed, signal ? AbortSignal.any([signal, stop.signal]) : stop.signal, this.streamLimits, this.streamBuffers);
    stored.catch((err: unknown) => feed.fail(err instanceof Error ? err : new Error(String(err))));
    return {
      write: (bytes) => feed.write(bytes),
      finish: async () => {
        feed.end();
        return stored;
      },
      abort: async () => {
        feed.fail(new Error("upload given up"));
        stop.abort(new Error("upload given up"));
        await stored.catch(() => {});
      },
    };
  }

  async put(remoteFile: RemoteFile, body: Readable, signal?: AbortSignal): Promise<PutResult> {
    return this.upload(remoteFile, body, signal);
  }

  private async upload(remoteFile: RemoteFile, body: Readable | PartFeed, signal?: AbortSignal, limits = this.limits, buffers = this.partBuffers): Promise<PutResult> {
    const { region, bucket, key } = this.locate(remoteFile);
    try {
      const size = await uploadStream(
        { client: this.clientFor(region), buffers, target: { Bucket: bucket, Key: key }, limits, stats: this.stats, warn: this.warn },
        body,
        signal,
      );
      return { size };
    } catch (err) {
      const full = s3FullReason(err);
      if (full !== null) throw new StorageFullError(`s3:${region}/${bucket}`, full, err);
      throw err;
    }
  }

  /**
   * Files held in memory (a sealed pack: docs/packs.md), each with one PutObject whatever its size
   * (S3 takes up to 5 GiB in one): a 64 MiB pack is one request instead of eight parts. On failure
   * none is left behind.
   */
  async putMany(files: readonly BufferedFile[], signal?: AbortSignal): Promise<void> {
    const stored: RemoteFile[] = [];
    try {
      await settleAll(
        files.map(async ({ remoteFile, data }) => {
          const { region, bucket, key } = this.locate(remoteFile);
          const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
          try {
            await this.clientFor(region).send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }), { abortSignal: signal });
          } catch (err) {
            const full = s3FullReason(err);
            if (full !== null) throw new StorageFullError(`s3:${region}/${bucket}`, full, err);
            throw err;
          }
          stored.push(remoteFile);
        }),
      );
    } catch (err) {
      // an abort after a body was sent may still have stored it: the keys are fresh, remove them all
      await this.deleteMany(signal?.aborted ? files.map((f) => f.remoteFile) : stored).catch(() => {});
      throw err;
    }
  }

  async get(remoteFile: RemoteFile, signal?: AbortSignal): Promise<Readable> {
    const { region, bucket, key } = this.locate(remoteFile);
    const client = this.clientFor(region);
    let first;
    try {
      first = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      if (errorName(err) === "NoSuchKey") throw new StorageNotFoundError(remoteFileId(remoteFile));
      throw err;
    }
    const body = streamOf(first.Body, bucket, key);
    // a body that breaks off is fetched on from the byte reached (s3-resume.ts)
    const reopen = async (offset: number, etag: string, resumeSignal: AbortSignal): Promise<Readable> => {
      const part = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${offset}-`, IfMatch: etag }), {
        abortSignal: resumeSignal,
      });
      return streamOf(part.Body, bucket, key);
    };
    return resumingBody({ body, length: first.ContentLength, etag: first.ETag }, reopen, {
      ...(signal ? { signal } : {}),
      onResume: (offset, error) => this.warn(error, `s3://${bucket}/${key}: the response broke off after ${offset} bytes; resuming with a ranged GET`),
    });
  }

  /** One ranged GetObject; a missing object, or one that ends before the range does, is not found. */
  async getRange(remoteFile: RemoteFile, offset: number, length: number, signal?: AbortSignal): Promise<Readable> {
    const { region, bucket, key } = this.locate(remoteFile);
    if (length === 0) {
      if (!(await this.has(remoteFile))) throw new StorageNotFoundError(remoteFileId(remoteFile));
      return Readable.from([]);
    }
    const client = this.clientFor(region);
    const end = offset + length - 1;
    let first;
    try {
      first = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${offset}-${end}` }), { abortSignal: signal });
    } catch (err) {
      if (errorName(err) === "NoSuchKey" || errorName(err) === "InvalidRange" || httpStatus(err) === 416) {
        throw new StorageNotFoundError(`${remoteFileId(remoteFile)} (range ${offset}-${end})`);
      }
      throw err;
    }
    const body = streamOf(first.Body, bucket, key);
    if (first.ContentLength !== length) {
      body.destroy();
      throw new StorageNotFoundError(`${remoteFileId(remoteFile)} (short: ${first.ContentLength ?? "?"} bytes of range ${offset}-${end})`);
    }
    // a body that breaks off is fetched on from the byte reached, within the same range
    const reopen = async (reached: number, etag: string, resumeSignal: AbortSignal): Promise<Readable> => {
      const part = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${offset + reached}-${end}`, IfMatch: etag }), {
        abortSignal: resumeSignal,
      });
      return streamOf(part.Body, bucket, key);
    };
    return resumingBody({ body, length, etag: first.ETag }, reopen, {
      ...(signal ? { signal } : {}),
      onResume: (reached, error) => this.warn(error, `s3://${bucket}/${key}: a ranged response broke off after ${reached} bytes; resuming`),
    });
  }

  /** One GetObject collected into a buffer of the recorded size (several run at once while a NAR streams). */
  async read(remoteFile: RemoteFile, size: number, signal?: AbortSignal): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(size);
    let filled = 0;
    for await (const piece of chunksOf(await this.get(remoteFile, signal), signal)) {
      if (filled + piece.length > size) throw new Error(`s3 ${remoteFileId(remoteFile)}: larger than its recorded size ${size}`);
      piece.copy(buffer, filled);
      filled += piece.length;
    }
    if (filled !== size) throw new Error(`s3 ${remoteFileId(remoteFile)}: ${filled} bytes, recorded size ${size}`);
    return buffer;
  }

  async has(remoteFile: RemoteFile): Promise<boolean> {
    const { region, bucket, key } = this.locate(remoteFile);
    try {
      await this.clientFor(region).send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (err) {
      // HEAD responses have no body, so a missing key shows only as a bare 404.
      if (errorName(err) === "NotFound" || errorName(err) === "NoSuchKey") return false;
      throw err;
    }
  }

  async deleteMany(remoteFiles: RemoteFile[]): Promise<{ failed: { remoteFile: RemoteFile; error: Error }[] }> {
    const failed: { remoteFile: RemoteFile; error: Error }[] = [];
    const groups = new Map<string, { region: string; bucket: string; files: { remoteFile: RemoteFile; key: string }[] }>();
    for (const remoteFile of remoteFiles) {
      let location: S3Location;
      try {
        location = this.locate(remoteFile);
      } catch (err) {
        failed.push({ remoteFile, error: err as Error });
        continue;
      }
      const id = `${location.region}\u0000${location.bucket}`;
      let group = groups.get(id);
      if (!group) groups.set(id, (group = { region: location.region, bucket: location.bucket, files: [] }));
      group.files.push({ remoteFile, key: location.key });
    }
    for (const { region, bucket, files } of groups.values()) {
      for (let i = 0; i < files.length; i += DELETE_BATCH) {
        failed.push(...(await this.deleteBatch(this.clientFor(region), bucket, files.slice(i, i + DELETE_BATCH))));
      }
    }
    return { failed };
  }

  private async deleteBatch(client: S3Client, bucket: string, files: { remoteFile: RemoteFile; key: string }[]): Promise<{ remoteFile: RemoteFile; error: Error }[]> {
    if (this.batchDeleteUnsupported) return this.deleteOneByOne(client, bucket, files);
    let errors;
    try {
      ({ Errors: errors } = await client.send(
        new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: files.map((f) => ({ Key: f.key })), Quiet: true } }),
      ));
    } catch (err) {
      const status = httpStatus(err);
      if (errorName(err) === "NotImplemented" || status === 501 || status === 405) {
        this.batchDeleteUnsupported = true;
        this.warn(err, `s3:${bucket}: the server has no DeleteObjects; deleting objects one by one`);
        return this.deleteOneByOne(client, bucket, files);
      }
      return files.map(({ remoteFile }) => ({ remoteFile, error: err as Error }));
    }
    const byKey = new Map(files.map((f) => [f.key, f.remoteFile]));
    const failed: { remoteFile: RemoteFile; error: Error }[] = [];
    for (const e of errors ?? []) {
      const remoteFile = e.Key === undefined ? undefined : byKey.get(e.Key);
      if (!remoteFile || e.Code === "NoSuchKey") continue;
      failed.push({ remoteFile, error: new Error(`DeleteObjects s3://${bucket}/${e.Key}: ${e.Code ?? "error"} ${e.Message ?? ""}`.trim()) });
    }
    return failed;
  }

  private async deleteOneByOne(client: S3Client, bucket: string, files: { remoteFile: RemoteFile; key: string }[]): Promise<{ remoteFile: RemoteFile; error: Error }[]> {
    const failed: { remoteFile: RemoteFile; error: Error }[] = [];
    await forEachLimit(files, SINGLE_DELETE_CONCURRENCY, async ({ remoteFile, key }) => {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } catch (err) {
        if (errorName(err) !== "NoSuchKey") failed.push({ remoteFile, error: err as Error });
      }
    });
    return failed;
  }

  async presignedUrl(remoteFile: RemoteFile, expiresInSeconds: number): Promise<string> {
    const { region, bucket, key } = this.locate(remoteFile);
    return getSignedUrl(this.presignClientFor(region), new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: expiresInSeconds });
  }

  async close(): Promise<void> {
    for (const client of [...this.clients.values(), ...this.presignClients.values()]) client.destroy();
    this.clients.clear();
    this.presignClients.clear();
  }
}
