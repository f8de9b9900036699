// Cuts a stream of Buffers into parts of exactly `partSize` bytes (the last one shorter) and
// knows which part is the last, by reading one chunk ahead.
export class PartCutter {
  private readonly source: AsyncIterator<Buffer>;
  private readonly partSize: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>, partSize: number) {
    this.source = source[Symbol.asyncIterator]();
    this.partSize = partSize;
  }

  async next(): Promise<{ data: Buffer; last: boolean }> {
    while (!this.ended && this.pendingBytes <= this.partSize) {
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
