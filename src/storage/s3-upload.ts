// Streaming upload of one object of unknown size: a body that ends within the first part goes up
// with one PutObject; anything larger becomes a multipart upload with fixed-size parts (equal
// sizes, as R2 requires) and a bounded number of parts in flight, so memory stays near
// (maxPartsInFlight + 1) × partSize whatever the client's speed. Any failure or abort aborts the
// multipart upload so no object appears.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import { TaskSet } from "../util/concurrency.ts";
import { PartCutter, PartFeed, type PartBuffers } from "./s3-parts.ts";
import { chunksOf } from "./streams.ts";

export interface UploadLimits {
  partSize: number;
  maxPartsInFlight: number;
}

/** Counters for operators and tests. */
export interface UploadStats {
  multipartStarted: number;
  multipartCompleted: number;
  multipartAborted: number;
  /** AbortMultipartUpload itself failed: parts may linger until a bucket lifecycle rule clears them. */
  multipartAbortFailed: number;
  /** The most parts ever in flight at once (bounded by `maxPartsInFlight`). */
  maxPartsInFlight: number;
}

export interface UploadContext {
  client: S3Client;
  /** the driver's part buffers, reused (s3-parts.ts) */
  buffers?: PartBuffers;
  target: { Bucket: string; Key: string };
  limits: UploadLimits;
  stats: UploadStats;
  warn: (error: unknown, message: string) => void;
}

/** Upload `body` (a stream, or part buffers pushed by a writer: PartFeed) to `ctx.target`; resolves with the number of bytes stored. */
export async function uploadStream(ctx: UploadContext, body: Readable | PartFeed, signal?: AbortSignal): Promise<number> {
  const cutter = new PartCutter(body instanceof PartFeed ? body : chunksOf(body, signal), ctx.limits.partSize, ctx.buffers);
  let first;
  try {
    first = await cutter.next();
  } catch (err) {
    await cutter.close();
    throw err;
  }
  if (!first.last) return uploadMultipart(ctx, cutter, first.data, signal);
  try {
    await ctx.client.send(new PutObjectCommand({ ...ctx.target, Body: first.data, ContentLength: first.data.length }), { abortSignal: signal });
    ctx.buffers?.give(first.data);
  } catch (err) {
    // An abort after the body was fully sent may still have stored the object: remove it, the
    // key is fresh so nothing else can live there.
    if (signal?.aborted) await ctx.client.send(new DeleteObjectCommand(ctx.target)).catch(() => {});
    throw err;
  }
  return first.data.length;
}

async function uploadMultipart(ctx: UploadContext, cutter: PartCutter, firstPart: Buffer, signal?: AbortSignal): Promise<number> {
  const { client, target, limits, stats } = ctx;
  const { UploadId } = await client.send(new CreateMultipartUploadCommand(target), { abortSignal: signal });
  if (!UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
  stats.multipartStarted++;

  // Stops the other parts as soon as one fails for good (after the SDK's retries).
  const stop = new AbortController();
  const partSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const completed: CompletedPart[] = [];
  const inFlight = new TaskSet(limits.maxPartsInFlight);
  let failure: { error: unknown } | undefined;
  let size = 0;

  const launch = (partNumber: number, data: Buffer): void => {
    const upload: Promise<void> = client
      .send(new UploadPartCommand({ ...target, UploadId, PartNumber: partNumber, Body: data, ContentLength: data.length }), { abortSignal: partSignal })
      .then(
        (out) => {
          completed.push({ PartNumber: partNumber, ETag: out.ETag });
          // sent and answered: the SDK no longer reads it (a failed part's buffer is simply dropped)
          ctx.buffers?.give(data);
        },
        (error: unknown) => {
          failure ??= { error };
          stop.abort();
        },
      );
    inFlight.add(upload);
    stats.maxPartsInFlight = Math.max(stats.maxPartsInFlight, inFlight.size);
  };

  try {
    let part = { data: firstPart, last: false };
    for (let partNumber = 1; ; partNumber++) {
      launch(partNumber, part.data);
      size += part.data.length;
      if (part.last) break;
      await inFlight.room(() => failure !== undefined);
      if (failure) break;
      // no read-ahead: a multipart upload may end on a full part (an empty last part is not sent)
      part = await cutter.next(false);
      if (part.last && part.data.length === 0) break;
    }
    await inFlight.settled();
    if (failure) throw failure.error;
    signal?.throwIfAborted();
    completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    // No abort signal from here: cancelling a completion the server may already have applied
    // would leave an object we reported as not written.
    await client.send(new CompleteMultipartUploadCommand({ ...target, UploadId, MultipartUpload: { Parts: completed } }));
    stats.multipartCompleted++;
    return size;
  } catch (err) {
    stop.abort();
    await inFlight.settled();
    await cutter.close();
    await abortUpload(ctx, UploadId);
    throw err;
  }
}

async function abortUpload(ctx: UploadContext, UploadId: string): Promise<void> {
  try {
    await ctx.client.send(new AbortMultipartUploadCommand({ ...ctx.target, UploadId }), { abortSignal: AbortSignal.timeout(30_000) });
    ctx.stats.multipartAborted++;
  } catch (err) {
    ctx.stats.multipartAbortFailed++;
    ctx.warn(err, `AbortMultipartUpload failed for s3://${ctx.target.Bucket}/${ctx.target.Key} (upload ${UploadId}); its parts stay until a lifecycle rule removes them`);
  }
}
