// Linking a NAR's chunks in batches. Most chunks are linked by the transaction that claims their
// batch (ChunkStore.storeBatch); those claimed one at a time (repeats, chunks another upload is
// writing) come back held by the upload (a hold keeps GC and failed uploads elsewhere away from
// it): their chunkref rows are written LINK_BATCH at a time, and the holds given up in the same
// transaction.
// One transaction per batch instead of two statements per chunk: the database work per chunk was
// the largest cost of an upload after compression.
import type { Db } from "../../db/connect.ts";
import { releaseChunks } from "../../db/queries/chunks.ts";
import { linkChunks, type ChunkLink } from "../../db/queries/nars.ts";

export const LINK_BATCH = 128;

export class ChunkLinks {
  private buffered: ChunkLink[] = [];
  /** links whose batch failed: still held, released by abandon() */
  private failed: ChunkLink[] = [];
  private tail: Promise<void> = Promise.resolve();

  private readonly db: Db;
  readonly narId: number;

  constructor(db: Db, narId: number) {
    this.db = db;
    this.narId = narId;
  }

  /** Record held chunks at their positions; resolves once a full batch they completed is written. */
  async add(links: readonly ChunkLink[]): Promise<void> {
    this.buffered.push(...links);
    if (this.buffered.length >= LINK_BATCH) await this.flush();
  }

  /** Write what is buffered; batches are written one after another, in the order flushed. */
  flush(): Promise<void> {
    const batch = this.buffered;
    this.buffered = [];
    const write = this.tail.then(() =>
      linkChunks(this.db, this.narId, batch).catch((err: unknown) => {
        this.failed.push(...batch);
        throw err;
      }),
    );
    this.tail = write.catch(() => {});
    return write;
  }

  /** After a failure: wait for batches in flight, then give up the holds of chunks never linked. */
  async abandon(): Promise<void> {
    await this.tail;
    const unlinked = [...this.failed, ...this.buffered];
    this.failed = [];
    this.buffered = [];
    await releaseChunks(this.db, unlinked.map((l) => l.chunkId));
  }
}
