// A byte range of a local file as a stream with reads ahead: a run of a pack (docs/packs.md) is
// read in pieces of up to `piece` bytes, `ahead` pieces in flight at once (positioned reads on
// the libuv thread pool, so a cold page cache overlaps the disk with the socket), and handed on
// as they complete, in order. Bytes in flight per stream are bounded by piece × ahead, whatever
// the range's length; the consumer's backpressure stops the reading.
import { Readable } from "node:stream";
import type { FileHandle } from "node:fs/promises";

export interface RangeReadOptions {
  /** bytes per read */
  piece: number;
  /** reads in flight at most */
  ahead: number;
  signal?: AbortSignal;
}

export class FileRangeStream extends Readable {
  private readonly file: FileHandle;
  private readonly end: number;
  private readonly piece: number;
  private readonly ahead: number;
  /** where the next read starts */
  private next: number;
  private readonly reads: Promise<Buffer>[] = [];
  private waiting = false;
  /** bytes being read or read and not yet handed on (at most piece × ahead): for tests */
  inFlight = 0;

  constructor(file: FileHandle, offset: number, length: number, opts: RangeReadOptions) {
    // the stream's own buffer holds one piece: the read-ahead lives in `reads`
    super({ highWaterMark: opts.piece, ...(opts.signal ? { signal: opts.signal } : {}) });
    this.file = file;
    this.next = offset;
    this.end = offset + length;
    this.piece = opts.piece;
    this.ahead = opts.ahead;
  }

  private startReads(): void {
    while (this.reads.length < this.ahead && this.next < this.end && !this.destroyed) {
      const length = Math.min(this.piece, this.end - this.next);
      const read = this.readAt(this.next, length);
      read.catch(() => {}); // surfaced when awaited in _read
      this.reads.push(read);
      this.next += length;
      this.inFlight += length;
    }
  }

  private async readAt(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.file.read(buffer, filled, length - filled, position + filled);
      if (bytesRead === 0) throw new Error(`the file ended at ${position + filled}, before the range did (${this.end})`);
      filled += bytesRead;
    }
    return buffer;
  }

  override _read(): void {
    if (this.waiting) return;
    this.startReads();
    const head = this.reads.shift();
    if (!head) {
      this.push(null);
      return;
    }
    this.waiting = true;
    head.then(
      (buffer) => {
        this.waiting = false;
        this.inFlight -= buffer.length;
        if (this.destroyed) return;
        this.startReads();
        if (this.push(buffer)) this._read();
      },
      (err: unknown) => {
        this.waiting = false;
        this.destroy(err as Error);
      },
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // reads in flight finish on the thread pool before the file is closed
    const reads = this.reads.splice(0);
    void Promise.allSettled(reads)
      .then(() => this.file.close())
      .then(
        () => callback(err),
        () => callback(err),
      );
  }
}
