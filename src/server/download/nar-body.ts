// The body of a NAR download: its chunk files in order, read ahead and handed to the socket in
// large pieces. Small chunk files (all of a chunked NAR's) are read whole, many at once (a
// thread-pool read each on local storage, a GetObject each on S3), within a bound on chunks and
// bytes in flight; what has already arrived is sent as one buffer of up to WRITE_BATCH, so the
// socket sees few large writes instead of one small write per chunk. A large chunk file (a NAR
// stored unchunked) and chunks that must be decompressed on the way out are streamed. Pushing
// respects backpressure: a slow client stops the reading, and destroying the body (the client
// went away) aborts what is in flight.
import { Readable } from "node:stream";
import { chain } from "../streams.ts";
import type { ServedChunk } from "../../db/queries/objects.ts";
import { StorageNotFoundError, type RemoteFile, type StorageDriver } from "../../storage/types.ts";
import { chunksOf } from "../../storage/streams.ts";
import { createDecompressor, parseNarinfoCompression } from "../../compression/index.ts";

const MiB = 1024 * 1024;
/** chunk files being read ahead of the one being sent */
const READ_AHEAD_CHUNKS = 32;
/** bytes being read ahead (a file is started while fewer are in flight) */
const READ_AHEAD_BYTES = 4 * MiB;
/** a chunk file up to this size is read in one piece; a larger one is streamed */
const WHOLE_READ_MAX = 4 * MiB;
/** adjacent chunks of one pack are read with one ranged read of at most this many bytes (streamed: no memory cost) */
const RUN_MAX = 256 * MiB;
/**
 * bytes of chunks kept to serve their repeats later in the same NAR (a chunk deduplicated against
 * an earlier place of its own NAR) without a read of their own, which would also end the run
 */
export const REPEAT_MEMO_BYTES = 16 * MiB;
/** bytes handed to the socket at once (at most) */
const WRITE_BATCH = 1 * MiB;
const BUFFERED_MAX = 64 * 1024;

/** A chunk's file (or the pack holding it: then every chunk of that pack) was not found in storage while its NAR was being served. */
export class ChunkFileLostError extends Error {
  readonly chunkId: number;
  /** the pack found missing or short (docs/packs.md), null for a chunk stored as one object */
  readonly packId: number | null;
  constructor(chunk: Pick<ServedChunk, "id" | "remote_file_id" | "pack_id">, cause: unknown) {
    const packId = chunk.pack_id ?? null;
    super(`the ${packId === null ? "file" : `pack ${packId}`} of chunk ${chunk.id} (${chunk.remote_file_id}) is missing from storage`, { cause });
    this.name = "ChunkFileLostError";
    this.chunkId = chunk.id;
    this.packId = packId;
  }
}

/** A storage "not found" for this chunk's file, as the loss of that chunk (recorded by the route). */
function lostAs(chunk: Pick<ServedChunk, "id" | "remote_file_id" | "pack_id">): (err: unknown) => never {
  return (err) => {
    throw err instanceof StorageNotFoundError ? new ChunkFileLostError(chunk, err) : err;
  };
}

export function remoteFileOf(chunk: { remote_file: string }): RemoteFile {
  return JSON.parse(chunk.remote_file) as RemoteFile;
}

/** A chunk that occurs again later in the NAR: its bytes kept from its first occurrence, or null when the memo had no room (each repeat is then read on its own). */
interface Memo {
  bytes: Buffer | undefined;
  /** occurrences still to be sent */
  left: number;
}

/**
 * What happens at a byte position of a run's stream: a chunk starting there is kept (`capture`,
 * `length` bytes), or a repeated chunk is sent before the stream goes on (`insert`, from the
 * memo or read on its own).
 */
type RunEvent =
  | { at: number; kind: "capture"; length: number; memo: Memo }
  | { at: number; kind: "insert"; memo: Memo; bytes?: undefined }
  | { at: number; kind: "insert"; memo?: undefined; bytes: Promise<Buffer> };

type Item =
  | { kind: "whole"; size: number; bytes: Promise<Buffer>; value?: Buffer }
  | { kind: "stream"; size: number; source: Promise<Readable>; events?: RunEvent[]; /** the pack range read, for a run */ run?: { packId: number; end: number } };

/** Chunk id → occurrences, for the chunks that occur more than once in the NAR (findRepeatedChunks). */
export type RepeatedChunks = ReadonlyMap<number, number>;

/** A stream of exactly `size` bytes gathered into one buffer. */
async function collected(stream: Readable, size: number, signal: AbortSignal): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const piece of chunksOf(stream, signal)) {
    if (filled + piece.length > size) throw new Error(`a range of ${size} bytes gave more`);
    piece.copy(buffer, filled);
    filled += piece.length;
  }
  if (filled !== size) throw new Error(`a range of ${size} bytes gave ${filled}`);
  return buffer;
}

export class NarBody extends Readable {
  private readonly storage: StorageDriver;
  private readonly chunks: AsyncIterator<ServedChunk>;
  private readonly decompressFrom: string | null;
  private readonly controller = new AbortController();
  private readonly queue: Item[] = [];
  private queuedBytes = 0;
  private exhausted = false;
  private started = false;
  /** set while the pump waits for the consumer to ask for more */
  private wakeUp: (() => void) | undefined;
  private current: Readable | undefined;
  /** a chunk read from the iterator that did not continue the run before it */
  private peeked: ServedChunk | undefined;
  private readonly repeatsSource: Promise<RepeatedChunks> | undefined;
  private repeats: RepeatedChunks = new Map();
  /** the repeated chunks met so far (a second meeting is a repeat), with their memo */
  private readonly met = new Map<number, Memo>();
  /** bytes reserved for memos */
  private memoBytes = 0;
  private initialized: Promise<void> | undefined;
  /** ready() is starting the first reads (the pump waits for it) */
  private priming = false;
  private readWanted = false;

  /**
   * `repeats`: the chunks occurring more than once in the NAR; with it, a run of a pack goes on
   * across a repeat (sent from memory, or read on its own) instead of ending there.
   */
  constructor(storage: StorageDriver, chunks: AsyncIterator<ServedChunk>, decompressFrom: string | null, repeats?: Promise<RepeatedChunks>) {
    // a small buffer here: while the socket is busy the reads pile up in the queue and go out as
    // one batch, instead of as many small buffers queued in this stream
    super({ highWaterMark: BUFFERED_MAX });
    this.storage = storage;
    this.chunks = chunks;
    this.decompressFrom = decompressFrom;
    this.repeatsSource = repeats;
    repeats?.catch(() => {}); // surfaced when awaited in pump
  }

  /** Bytes held for repeats now (at most REPEAT_MEMO_BYTES): for tests. */
  get memoBytesHeld(): number {
    return this.memoBytes;
  }

  override _read(): void {
    if (this.wakeUp) {
      const wake = this.wakeUp;
      this.wakeUp = undefined;
      wake();
    } else if (!this.started) {
      // asked for while ready() primes the first reads: the pump starts when it is done
      if (this.priming) this.readWanted = true;
      else this.start();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.controller.abort();
    this.current?.destroy();
    for (const item of this.queue.splice(0)) {
      if (item.kind === "stream") item.source.then((s) => s.destroy(), () => {});
    }
    this.wakeUp?.();
    this.chunks.return?.(undefined).then(
      () => callback(err),
      () => callback(err),
    );
  }

  /**
   * Push, and when the consumer has enough, wait until it asks for more. A batch goes as one
   * buffer: piped into a socket, separate pieces would each wait for a drain and cost a write
   * of their own (measured: one write per chunk), where the copy costs one memcpy per MiB.
   */
  private async send(piece: Buffer): Promise<void> {
    if (this.push(piece) || this.destroyed) return;
    await new Promise<void>((resolve) => (this.wakeUp = resolve));
  }

  /** Loads what reading needs first (the repeated chunks), once. */
  private init(): Promise<void> {
    this.initialized ??= (async () => {
      if (this.repeatsSource && this.decompressFrom === null) this.repeats = await this.repeatsSource;
    })();
    return this.initialized;
  }

  /**
   * Before the body is read: starts the first reads and waits until the first one has answered
   * (an S3 ranged GET its headers), so that a pack found missing or short there rejects here,
   * before any byte is sent, with ChunkFileLostError. Resolves with the pack range that first
   * read proved present (null when the first item is not a run of a pack): the preflight need
   * not check it again (download/preflight.ts). Call it once, before reading.
   */
  async ready(): Promise<{ packId: number; end: number } | null> {
    if (this.started || this.priming) return null;
    this.priming = true;
    try {
      await this.init();
      await this.fill();
      const head = this.queue[0];
      if (!head || head.kind !== "stream" || !head.run) return null;
      await head.source;
      return head.run;
    } finally {
      this.priming = false;
      if (this.readWanted && !this.started && !this.destroyed) this.start();
    }
  }

  private start(): void {
    this.started = true;
    this.pump().catch((err: unknown) => this.destroy(err as Error));
  }

  private async pump(): Promise<void> {
    await this.init();
    for (;;) {
      await this.fill();
      const head = this.queue.shift();
      if (this.destroyed) return;
      if (!head) {
        this.push(null);
        return;
      }
      if (head.kind === "stream") {
        this.queuedBytes -= Math.min(head.size, WRITE_BATCH);
        if (head.events) await this.sendRun(await head.source, head.events);
        else await this.sendStream(await head.source);
        continue;
      }
      const batch = [await head.bytes];
      let bytes = head.size;
      this.queuedBytes -= head.size;
      // take along what has already arrived
      for (let next = this.queue[0]; next?.kind === "whole" && next.value && bytes + next.size <= WRITE_BATCH; next = this.queue[0]) {
        batch.push(next.value);
        bytes += next.size;
        this.queuedBytes -= next.size;
        this.queue.shift();
      }
      await this.fill(); // start the next reads before this batch is written
      if (this.destroyed) return;
      await this.send(batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes));
    }
  }

  /** Start reads until the read-ahead bounds are reached or every chunk is under way. */
  private async fill(): Promise<void> {
    while ((this.peeked || !this.exhausted) && this.queue.length < READ_AHEAD_CHUNKS && this.queuedBytes < READ_AHEAD_BYTES && !this.destroyed) {
      let chunk = this.peeked;
      this.peeked = undefined;
      if (!chunk) {
        const next = await this.chunks.next();
        if (next.done) {
          this.exhausted = true;
          return;
        }
        chunk = next.value;
      }
      const size = chunk.file_size;
      const signal = this.controller.signal;
      if (chunk.pack_remote_file && size !== null) {
        if (this.isRepeat(chunk)) {
          // a repeat where no run is under way: an empty run that only sends it
          this.queue.push({ kind: "stream", size: 0, source: Promise.resolve(Readable.from([])), events: [this.repeatEvent(chunk, 0, signal)] });
          continue;
        }
        await this.queueRun(chunk, size, signal);
        continue;
      }
      const remoteFile = remoteFileOf(chunk);
      if (size !== null && size <= WHOLE_READ_MAX && this.decompressFrom === null) {
        const bytes = (this.storage.read ? this.storage.read(remoteFile, size, signal) : this.collect(remoteFile, size)).catch(lostAs(chunk));
        const item: Item = { kind: "whole", size, bytes };
        bytes.then((b) => (item.value = b), () => {}); // a failure is surfaced when awaited in pump
        this.queue.push(item);
        this.queuedBytes += size;
      } else {
        const source = this.storage.get(remoteFile, signal, size ?? undefined).catch(lostAs(chunk));
        source.catch(() => {}); // surfaced when awaited in pump
        this.queue.push({ kind: "stream", size: size ?? WRITE_BATCH, source });
        this.queuedBytes += Math.min(size ?? WRITE_BATCH, WRITE_BATCH);
      }
    }
  }

  /**
   * A packed chunk and the chunks after it that continue it in the same pack (adjacent ranges),
   * up to RUN_MAX bytes, as one ranged read streamed to the socket (docs/packs.md). A chunk that
   * repeats one met before in this NAR does not end the run: it is sent from the memo, or read
   * on its own, between the run's bytes. Chunks that must be decompressed on the way out are
   * read one range each.
   */
  private async queueRun(first: ServedChunk, size: number, signal: AbortSignal): Promise<void> {
    const start = first.pack_offset ?? 0;
    let end = start + size;
    const events: RunEvent[] = [];
    this.meet(first, 0, events);
    while (this.decompressFrom === null && end - start < RUN_MAX) {
      const next = await this.chunks.next();
      if (next.done) {
        this.exhausted = true;
        break;
      }
      const c = next.value;
      if (c.pack_id === first.pack_id && c.pack_offset === end && c.file_size !== null && end - start + c.file_size <= RUN_MAX) {
        this.meet(c, end - start, events);
        end += c.file_size;
        continue;
      }
      // a repeat goes into the run if it is kept, or if its own read may start within the
      // read-ahead bound, as in fill() (else it starts the next item, read when the bound allows)
      if (this.isRepeat(c) && (this.met.get(c.id)!.left > 0 || this.queuedBytes < READ_AHEAD_BYTES)) {
        events.push(this.repeatEvent(c, end - start, signal));
        continue;
      }
      this.peeked = c;
      break;
    }
    const pack = JSON.parse(first.pack_remote_file!) as RemoteFile;
    const source = this.storage.getRange(pack, start, end - start, signal).catch(lostAs(first));
    source.catch(() => {}); // surfaced when awaited in pump
    // chunks decompressed on the way out are one per run, never with events
    this.queue.push({ kind: "stream", size: end - start, source, run: { packId: first.pack_id!, end }, ...(this.decompressFrom === null ? { events } : {}) });
    this.queuedBytes += Math.min(end - start, WRITE_BATCH);
  }

  /** Whether the chunk is a packed one met before in this NAR (its bytes are on their way, or kept). */
  private isRepeat(chunk: ServedChunk): boolean {
    return chunk.file_size !== null && chunk.pack_remote_file != null && this.met.has(chunk.id);
  }

  /** A packed chunk read at `at` in a run: the first meeting of a repeated chunk keeps its bytes if the memo has room. */
  private meet(chunk: ServedChunk, at: number, events: RunEvent[]): void {
    const occurrences = this.repeats.get(chunk.id);
    if (occurrences === undefined || occurrences < 2 || chunk.file_size === null || this.met.has(chunk.id)) return;
    const memo: Memo = { bytes: undefined, left: occurrences - 1 };
    this.met.set(chunk.id, memo);
    if (this.memoBytes + chunk.file_size > REPEAT_MEMO_BYTES) {
      memo.left = 0; // no room: each repeat is read on its own
      return;
    }
    this.memoBytes += chunk.file_size;
    events.push({ at, kind: "capture", length: chunk.file_size, memo });
  }

  /** A repeat sent at `at` of a run: from the memo, or read on its own (the memo had no room). */
  private repeatEvent(chunk: ServedChunk, at: number, signal: AbortSignal): RunEvent {
    const memo = this.met.get(chunk.id)!;
    if (memo.left > 0) return { at, kind: "insert", memo };
    const pack = JSON.parse(chunk.pack_remote_file!) as RemoteFile;
    const size = chunk.file_size!;
    const bytes = this.storage
      .getRange(pack, chunk.pack_offset ?? 0, size, signal)
      .then((stream) => collected(stream, size, signal))
      .catch(lostAs(chunk));
    bytes.catch(() => {}); // surfaced when awaited in sendRun
    this.queuedBytes += size;
    return { at, kind: "insert", bytes };
  }

  /** Bytes of a repeat to send; a memo is given up after its last occurrence. */
  private async repeatBytes(event: Extract<RunEvent, { kind: "insert" }>): Promise<Buffer> {
    if (!event.memo) {
      const bytes = await event.bytes;
      this.queuedBytes -= bytes.length;
      return bytes;
    }
    const { memo } = event;
    const bytes = memo.bytes;
    if (!bytes) throw new Error("a repeated chunk was to be sent before its first occurrence was read");
    if (--memo.left === 0) {
      memo.bytes = undefined;
      this.memoBytes -= bytes.length;
    }
    return bytes;
  }

  /**
   * A run's stream to the socket, in the pieces it arrives in (slices, no copies), with its
   * events: repeats sent between its bytes, and the first occurrences of repeated chunks copied
   * into their memo on the way.
   */
  private async sendRun(source: Readable, events: RunEvent[]): Promise<void> {
    let pos = 0;
    let next = 0;
    let capture: { memo: Memo; buffer: Buffer; from: number } | undefined;
    const eventsHere = async (): Promise<void> => {
      for (let e = events[next]; e && e.at === pos; e = events[++next]) {
        if (e.kind === "capture") capture = { memo: e.memo, buffer: Buffer.allocUnsafe(e.length), from: pos };
        else await this.send(await this.repeatBytes(e));
      }
    };
    this.current = source;
    try {
      for await (const piece of source as AsyncIterable<Buffer>) {
        for (let off = 0; off < piece.length; ) {
          await eventsHere();
          if (this.destroyed) return;
          const take = Math.min(piece.length - off, (events[next]?.at ?? Infinity) - pos);
          const slice = take === piece.length ? piece : piece.subarray(off, off + take);
          if (capture) {
            const into = pos - capture.from;
            const n = Math.min(take, capture.buffer.length - into);
            slice.copy(capture.buffer, into, 0, n);
            if (into + n === capture.buffer.length) {
              capture.memo.bytes = capture.buffer;
              capture = undefined;
            }
          }
          await this.send(slice);
          off += take;
          pos += take;
        }
      }
      await eventsHere(); // repeats after the run's last byte
    } finally {
      this.current = undefined;
    }
  }

  /** A backend without `read`: its stream gathered into one buffer. */
  private async collect(remoteFile: RemoteFile, size: number): Promise<Buffer> {
    const pieces: Buffer[] = [];
    let total = 0;
    for await (const piece of chunksOf(await this.storage.get(remoteFile, this.controller.signal, size), this.controller.signal)) {
      pieces.push(piece);
      total += piece.length;
    }
    if (total !== size) throw new Error(`chunk file ${JSON.stringify(remoteFile)}: ${total} bytes, recorded size ${size}`);
    return Buffer.concat(pieces, total);
  }

  private async sendStream(source: Readable): Promise<void> {
    const body = this.decompressFrom ? chain(source, createDecompressor(parseNarinfoCompression(this.decompressFrom))) : source;
    this.current = body;
    try {
      for await (const piece of body as AsyncIterable<Buffer>) {
        if (this.destroyed) return;
        await this.send(piece);
      }
    } finally {
      this.current = undefined;
    }
  }
}
