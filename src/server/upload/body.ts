// Reading the upload body: the optional JSON preamble (exactly N bytes), then the NAR limited to
// the claimed size (extra bytes are ignored, as upstream's take(nar_size)).

/** Pulls bytes from an async iterable of buffers, allowing an exact-length read first. */
export class BodyReader {
  private readonly it: AsyncIterator<Buffer>;
  private leftover: Buffer | null = null;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    const inner = source[Symbol.asyncIterator]();
    this.it = {
      next: async () => {
        const r = await inner.next();
        if (r.done) return r;
        const v = r.value;
        return { done: false, value: typeof v === "string" ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(v) };
      },
      return: async () => (inner.return ? ((await inner.return()) as IteratorResult<Buffer>) : { done: true, value: undefined }),
    };
  }

  /** Exactly `n` bytes, or null when the body ends first. */
  async readExact(n: number): Promise<Buffer | null> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const piece = await this.nextPiece();
      if (!piece) return null;
      const need = n - have;
      if (piece.length > need) {
        parts.push(piece.subarray(0, need));
        this.leftover = piece.subarray(need);
        have = n;
      } else {
        parts.push(piece);
        have += piece.length;
      }
    }
    return Buffer.concat(parts, n);
  }

  /** The rest of the body, at most `limit` bytes. */
  async *take(limit: number): AsyncGenerator<Buffer> {
    let remaining = limit;
    while (remaining > 0) {
      const piece = await this.nextPiece();
      if (!piece) return;
      if (piece.length > remaining) {
        yield piece.subarray(0, remaining);
        this.leftover = piece.subarray(remaining);
        return;
      }
      remaining -= piece.length;
      yield piece;
    }
  }

  private async nextPiece(): Promise<Buffer | null> {
    if (this.leftover) {
      const l = this.leftover;
      this.leftover = null;
      return l;
    }
    const r = await this.it.next();
    return r.done ? null : r.value;
  }
}
