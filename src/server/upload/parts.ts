// The parts of one upload session, turned back into one NAR stream for the upload pipeline. The
// part whose turn it is goes straight from its request into the pipeline; a part that arrives
// early waits in a file (at most STAGED_AHEAD parts ahead, so staging stays bounded) and follows
// when its turn comes. A part cut off mid-way keeps what it gave: the resent part's first bytes
// are checked against them (sha256) and only the rest is fed. Every part received whole is
// remembered by its sha256, so a resend is answered without feeding anything twice. The hashes
// run on the worker pool (workers/sha256.ts), never on this thread.
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PoolSha256 } from "../../workers/sha256.ts";
import { requestError } from "../errors.ts";

/** Parts accepted ahead of the one being fed; further ones wait for their turn to come closer. */
export const STAGED_AHEAD = 8;

export interface PartPlan {
  numParts: number;
  chunkSize: number;
  narSize: number;
  /** this session's staging folder (created on first use, removed at the end) */
  stagingDir: string;
}

/** A request feeding the current part, read by the NAR stream. */
interface Feeder {
  seq: number;
  body: AsyncIterable<Buffer>;
  started: boolean;
  settle: (err?: unknown) => void;
}

export class PartStream {
  readonly plan: PartPlan;
  /** when a request last brought bytes (ms since epoch) */
  lastActivity = Date.now();
  readonly #received: Uint8Array;
  readonly #hashes: Buffer;
  #next = 0;
  /** bytes of part #next already fed, and their hash */
  #offset = 0;
  #prefix = new PoolSha256();
  readonly #staged = new Map<number, string>();
  readonly #busy = new Set<number>();
  #feeder: Feeder | null = null;
  #finalized = false;
  #failure: Error | null = null;
  #wake: () => void = () => {};
  #changed: Promise<void>;
  #onBytes: (n: number) => void;

  constructor(plan: PartPlan, onBytes: (n: number) => void = () => {}) {
    this.plan = plan;
    this.#received = new Uint8Array(plan.numParts);
    this.#hashes = Buffer.alloc(plan.numParts * 32);
    this.#changed = new Promise((r) => (this.#wake = r));
    this.#onBytes = onBytes;
  }

  partSize(seq: number): number {
    return seq < this.plan.numParts - 1 ? this.plan.chunkSize : this.plan.narSize - this.plan.chunkSize * (this.plan.numParts - 1);
  }

  receivedParts(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.plan.numParts; i++) if (this.#received[i] === 1) out.push(i);
    return out;
  }

  firstMissing(): number | null {
    const i = this.#received.indexOf(0);
    return i < 0 ? null : i;
  }

  /** No more parts: the NAR stream may end (and the upload verify and publish it). */
  finalize(): void {
    this.#finalized = true;
    this.#notify();
  }

  /** Stop: the NAR stream and every waiting part fail with `err`; staged parts are removed. */
  async fail(err: Error): Promise<void> {
    this.#failure ??= err;
    this.#prefix.close();
    this.#feeder?.settle(err);
    this.#notify();
    await rm(this.plan.stagingDir, { recursive: true, force: true });
  }

  /** The NAR, part after part, for the upload pipeline (its last piece held back until finalize). */
  async *nar(): AsyncGenerator<Buffer> {
    let held: Buffer | null = null;
    for await (const piece of this.#pieces()) {
      if (held) yield held;
      held = piece;
    }
    while (!this.#finalized) await this.#wait();
    if (held) yield held;
  }

  /**
   * One part's request: fed when it is the part's turn, staged when early, compared when the
   * part is already here. Resolves once the part is received whole.
   */
  async receive(seq: number, body: AsyncIterable<Buffer>, signal: AbortSignal): Promise<void> {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= this.plan.numParts) throw requestError("Part sequence is out of range");
    for (;;) {
      this.#throwIfFailed();
      signal.throwIfAborted();
      if (this.#received[seq] === 1) return this.#compare(seq, body);
      if (seq === this.#next && this.#feeder === null) return this.#feed(seq, body, signal);
      if (seq > this.#next && seq < this.#next + STAGED_AHEAD && !this.#busy.has(seq)) return this.#stage(seq, body);
      // its turn is far off, or another request is busy with it: wait for things to move
      await this.#waitOr(signal);
    }
  }

  async *#pieces(): AsyncGenerator<Buffer> {
    while (this.#next < this.plan.numParts) {
      this.#throwIfFailed();
      const file = this.#staged.get(this.#next);
      if (file !== undefined) {
        for await (const piece of createReadStream(file, { highWaterMark: 256 * 1024 })) yield piece as Buffer;
        this.#staged.delete(this.#next);
        await rm(file, { force: true });
        this.#advance();
        continue;
      }
      const feeder = this.#feeder;
      if (feeder && !feeder.started) {
        feeder.started = true;
        // stays so only when the pipeline stopped reading (it failed): the session fails next
        let outcome: unknown = new Error("the upload stopped");
        try {
          yield* this.#feedPieces(feeder);
          outcome = undefined;
        } catch (err) {
          // the request failed (cut off, wrong bytes): it answers for itself; wait for a resend
          outcome = err;
          // unless the fed bytes' hash is lost (its worker died): no resend can be checked, the session fails
          if (this.#prefix.broken && !this.#failure) void this.fail(err as Error);
        } finally {
          feeder.settle(outcome);
          if (this.#feeder === feeder) this.#feeder = null;
          this.#notify();
        }
        continue;
      }
      await this.#wait();
    }
  }

  async *#feedPieces(feeder: Feeder): AsyncGenerator<Buffer> {
    const expected = this.partSize(feeder.seq);
    let skip = this.#offset;
    const check = skip > 0 ? new PoolSha256() : null;
    let got = 0;
    try {
      for await (const raw of detached(feeder.body)) {
        this.#throwIfFailed();
        this.lastActivity = Date.now();
        this.#onBytes(raw.length);
        got += raw.length;
        if (got > expected) throw requestError(`Part ${feeder.seq} is larger than its size of ${expected} bytes`);
        let piece = raw;
        if (skip > 0) {
          const n = Math.min(skip, piece.length);
          await check!.update(piece.subarray(0, n));
          skip -= n;
          piece = piece.subarray(n);
          if (skip === 0) {
            const [resent, fed] = await Promise.all([check!.digest(), this.#prefix.peek()]);
            if (!resent.digest.equals(fed)) throw requestError(`Part ${feeder.seq} was resent with different bytes`);
          }
          if (piece.length === 0) continue;
        }
        await this.#prefix.update(piece);
        this.#offset += piece.length;
        yield piece;
      }
    } finally {
      check?.close();
    }
    if (got < expected) throw requestError(`Part ${feeder.seq} is shorter than its size of ${expected} bytes`);
    this.#hashes.set((await this.#prefix.digest()).digest, feeder.seq * 32);
    this.#received[feeder.seq] = 1;
    this.#advance();
  }

  #feed(seq: number, body: AsyncIterable<Buffer>, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const feeder: Feeder = {
        seq,
        body,
        started: false,
        settle: (err) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          if (err === undefined) resolve();
          else reject(err as Error);
        },
      };
      // cut off before the NAR stream took it up: give the turn back
      const onAbort = (): void => {
        if (feeder.started) return;
        if (this.#feeder === feeder) this.#feeder = null;
        feeder.settle(signal.reason);
        this.#notify();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#feeder = feeder;
      this.#notify();
    });
  }

  async #stage(seq: number, body: AsyncIterable<Buffer>): Promise<void> {
    this.#busy.add(seq);
    const file = join(this.plan.stagingDir, `${seq}.part`);
    const temp = `${file}.tmp`;
    const hash = new PoolSha256();
    try {
      await mkdir(this.plan.stagingDir, { recursive: true });
      const size = await this.#measured(seq, body, hash, (pieces) => pipeline(pieces, createWriteStream(temp)));
      if (size < this.partSize(seq)) throw requestError(`Part ${seq} is shorter than its size of ${this.partSize(seq)} bytes`);
      const { digest } = await hash.digest();
      this.#throwIfFailed();
      await rename(temp, file);
      this.#hashes.set(digest, seq * 32);
      this.#staged.set(seq, file);
      this.#received[seq] = 1;
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    } finally {
      hash.close();
      this.#busy.delete(seq);
      this.#notify();
    }
  }

  /** A part received before: the same bytes are fine (a retry), others are refused. */
  async #compare(seq: number, body: AsyncIterable<Buffer>): Promise<void> {
    const hash = new PoolSha256();
    try {
      const size = await this.#measured(seq, body, hash, async (pieces) => {
        for await (const _ of pieces);
      });
      if (size !== this.partSize(seq) || !(await hash.digest()).digest.equals(this.#hashes.subarray(seq * 32, seq * 32 + 32))) {
        throw requestError(`Part ${seq} was already received with different bytes`);
      }
    } finally {
      hash.close();
    }
  }

  /** Run `sink` over the body, hashing and counting it, refusing more than the part's size. */
  async #measured(seq: number, body: AsyncIterable<Buffer>, hash: PoolSha256, sink: (pieces: AsyncIterable<Buffer>) => Promise<unknown>): Promise<number> {
    const expected = this.partSize(seq);
    let size = 0;
    const counted = async function* (this: PartStream): AsyncGenerator<Buffer> {
      for await (const piece of detached(body)) {
        this.lastActivity = Date.now();
        this.#onBytes(piece.length);
        size += piece.length;
        if (size > expected) throw requestError(`Part ${seq} is larger than its size of ${expected} bytes`);
        await hash.update(piece);
        yield piece;
      }
    }.call(this);
    await sink(counted);
    return size;
  }

  #advance(): void {
    this.#next++;
    this.#offset = 0;
    this.#prefix.close();
    this.#prefix = new PoolSha256();
    this.#notify();
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  #wait(): Promise<void> {
    return this.#changed.then(() => this.#throwIfFailed());
  }

  #waitOr(signal: AbortSignal): Promise<void> {
    let onAbort = (): void => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    return Promise.race([this.#wait(), aborted]).finally(() => signal.removeEventListener("abort", onAbort));
  }

  #notify(): void {
    const wake = this.#wake;
    this.#changed = new Promise((r) => (this.#wake = r));
    wake();
  }
}

/**
 * The pieces of a request body, without ever closing it: a part refused half-way stops being
 * read, and the request stays open for the 4xx answer (closing it would reset the connection).
 */
async function* detached(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  for (;;) {
    const r = await it.next();
    if (r.done === true) return;
    yield r.value;
  }
}
