// Cuts a stream of Buffers into parts of exactly `partSize` bytes (the last one shorter) and
// knows which part is the last, by reading one chunk ahead (only when asked: the first part, which
// decides between one PutObject and a multipart upload; past it, a part fed by a PartFeed is a
// whole part buffer, and reading it ahead would hold one more part's bytes). Parts are assembled in buffers from a
// PartBuffers pool when one is given (reused part after part: an upload of any size allocates no
// part buffer once the pool holds enough), else in fresh ones.
export class PartCutter {
  private readonly source: AsyncIterator<Buffer>;
  private readonly partSize: number;
  private readonly buffers: PartBuffers | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>, partSize: number, buffers?: PartBuffers) {
    this.source = source[Symbol.asyncIterator]();
    this.partSize = partSize;
    this.buffers = buffers;
  }

  /**
   * The next part. With `lookahead` (the default) `last` is exact; without it a part may come back
   * with `last` false and the next call return an empty last part (the source ended on a part
   * boundary).
   */
  async next(lookahead = true): Promise<{ data: Buffer; last: boolean }> {
    while (!this.ended && (lookahead ? this.pendingBytes <= this.partSize : this.pendingBytes < this.partSize)) {
      const r = await this.source.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        this.pending.push(r.value);
        this.pendingBytes += r.value.length;
      }
    }
    const data = this.take(Math.min(this.partSize, this.pendingBytes));
    return { data, last: this.ended && this.pendingBytes === 0 };
  }

  /** Stop reading the source early (destroys it). */
  async close(): Promise<void> {
    this.pending = [];
    await this.source.return?.().catch(() => {});
  }

  private take(n: number): Buffer {
    // a part that is exactly the next piece (a whole chunk file) goes as it is, without a copy
    if (this.pending[0]?.length === n) {
      this.pendingBytes -= n;
      return this.pending.shift()!;
    }
    if (this.buffers && n > 0) {
      const part = this.buffers.take().subarray(0, n);
      let at = 0;
      while (at < n) {
        const head = this.pending[0] as Buffer;
        const used = Math.min(head.length, n - at);
        head.copy(part, at, 0, used);
        at += used;
        if (used === head.length) this.pending.shift();
        else this.pending[0] = head.subarray(used);
      }
      this.pendingBytes -= n;
      return part;
    }
    const pieces: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = this.pending[0] as Buffer;
      if (head.length <= need) {
        pieces.push(head);
        this.pending.shift();
        need -= head.length;
      } else {
        pieces.push(head.subarray(0, need));
        this.pending[0] = head.subarray(need);
        need = 0;
      }
    }
    this.pendingBytes -= n;
    return Buffer.concat(pieces, n);
  }
}

/**
 * Part buffers of one S3 driver, reused from part to part and upload to upload: a part's buffer
 * comes back once its upload has settled, and at most `keep` idle buffers are kept (released after
 * IDLE_MS without use), so the bytes an upload holds are bounded by its parts in flight and the
 * process does not churn through a part-sized buffer per part (freed only by a full GC, which
 * let the compactor's RSS grow well past its bytes in flight).
 */
export class PartBuffers {
  readonly partSize: number;
  private readonly keep: number;
  private readonly free: Buffer[] = [];
  private readonly mine = new WeakSet<ArrayBufferLike>();
  private timer: NodeJS.Timeout | null = null;

  constructor(partSize: number, keep: number) {
    this.partSize = partSize;
    this.keep = keep;
  }

  take(): Buffer {
    const reused = this.free.pop();
    if (reused) return reused;
    const buffer = Buffer.allocUnsafeSlow(this.partSize);
    this.mine.add(buffer.buffer);
    return buffer;
  }

  /** `part` (a buffer of ours, or a view of one) is no longer read by anyone. */
  give(part: Buffer): void {
    if (!this.mine.has(part.buffer) || this.free.length >= this.keep) return;
    this.free.push(Buffer.from(part.buffer, 0, this.partSize));
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.free.length = 0;
    }, IDLE_MS);
    this.timer.unref();
    this.timer.refresh();
  }
}

const IDLE_MS = 10_000;

/**
 * Bytes pushed by a writer (S3 `openWrite`), handed to the part cutter as full part buffers from
 * the pool (which it passes on without a copy) and then the last, shorter one. A write waits while
 * a full part has not been taken yet: the writer holds at most the part it fills and one ready.
 */
export class PartFeed implements AsyncIterable<Buffer> {
  private readonly buffers: PartBuffers;
  private current: Buffer | null = null;
  private filled = 0;
  private readonly ready: Buffer[] = [];
  private ended = false;
  private failure: Error | null = null;
  private wakeReader: (() => void) | null = null;
  private wakeWriter: (() => void) | null = null;

  constructor(buffers: PartBuffers) {
    this.buffers = buffers;
  }

  async write(bytes: Uint8Array): Promise<void> {
    const size = this.buffers.partSize;
    let at = 0;
    while (at < bytes.byteLength) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new Error("write after the end");
      this.current ??= this.buffers.take();
      const n = Math.min(bytes.byteLength - at, size - this.filled);
      this.current.set(bytes.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === size) {
        this.ready.push(this.current);
        this.current = null;
        this.filled = 0;
        this.wake();
        while (this.ready.length > 0 && !this.failure) await new Promise<void>((resolve) => (this.wakeWriter = resolve));
      }
    }
    if (this.failure) throw this.failure;
  }

  /** No more bytes: what is filled is the last part. */
  end(): void {
    if (this.current && this.filled > 0) this.ready.push(this.current.subarray(0, this.filled));
    this.current = null;
    this.ended = true;
    this.wake();
  }

  /** The upload failed or was given up: writes reject from now on. */
  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const reader = this.wakeReader;
    const writer = this.wakeWriter;
    this.wakeReader = this.wakeWriter = null;
    reader?.();
    writer?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.failure) throw this.failure;
      const part = this.ready.shift();
      if (part) {
        this.wake();
        yield part;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }
}
