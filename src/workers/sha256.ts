// SHA-256 of bytes the main thread has but does not otherwise hand to a NAR's pass, computed on a
// worker of the pool (pool.ts): an upload session's parts (each part's hash answers resends),
// a proof of possession's body, a `nix copy` NAR file's FileHash (read by the worker from the
// file itself). The main thread's only per-byte work is one copy into pieces it moves to the
// worker (request bodies are views of socket buffers it cannot move), which moves each back once
// hashed to be filled again; at most PIECES_IN_FLIGHT pieces are there, so memory stays bounded
// however slowly the worker hashes. A worker that dies fails the hashes it held, and only those.
import { workerPool, type Job, type WorkerPool } from "./pool.ts";
import type { FromWorker } from "./protocol.ts";

const PIECE_SIZE = 512 * 1024;
const PIECES_IN_FLIGHT = 4;

export interface Sha256Result {
  digest: Buffer;
  size: number;
}

interface Waiter {
  resolve(r: Sha256Result): void;
  reject(err: Error): void;
}

/** One running SHA-256 on the pool: `update` as bytes come, `peek` (the hash so far) or `digest` (the end). */
export class PoolSha256 {
  private job: Job | null = null;
  private readonly pool: () => WorkerPool;
  private piece: Buffer | null = null;
  /** pieces the worker moved back, to fill again */
  private readonly spare: Buffer[] = [];
  private filled = 0;
  private inFlight = 0;
  private wakeWriter: (() => void) | null = null;
  /** answers asked for, in order (the worker answers in order) */
  private readonly asked: Waiter[] = [];
  private error: Error | null = null;
  private ended = false;

  constructor(pool: () => WorkerPool = workerPool) {
    this.pool = pool;
  }

  /** The hash failed (its worker died, or it was closed): no answer will come. */
  get broken(): boolean {
    return this.error !== null;
  }

  /** Adds `bytes` (copied: the caller keeps them); resolves once the worker has room for more. */
  async update(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      this.check();
      this.piece ??= this.spare.pop() ?? Buffer.allocUnsafeSlow(PIECE_SIZE);
      const n = Math.min(bytes.length - at, PIECE_SIZE - this.filled);
      this.piece.set(at === 0 && n === bytes.length ? bytes : bytes.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === PIECE_SIZE) await this.send();
    }
  }

  /** The hash of the bytes so far (more may follow). */
  peek(): Promise<Buffer> {
    return this.ask(false).then((r) => r.digest);
  }

  /** The hash and size of all the bytes; the worker forgets this hash. */
  async digest(): Promise<Sha256Result> {
    try {
      return await this.ask(true);
    } finally {
      this.close();
    }
  }

  /** Stop (the bytes are not wanted any more): the worker forgets this hash. Idempotent. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.piece = null;
    this.spare.length = 0;
    if (this.job) {
      this.job.post({ kind: "sha256-close", id: this.job.id });
      this.job.end();
    }
    this.fail(new Error("the hash was closed"));
  }

  private async ask(final: boolean): Promise<Sha256Result> {
    this.check();
    this.flush();
    const job = this.open();
    const answer = new Promise<Sha256Result>((resolve, reject) => this.asked.push({ resolve, reject }));
    job.post({ kind: "sha256-digest", id: job.id, final });
    return answer;
  }

  private open(): Job {
    this.job ??= this.pool().open({ receive: (msg) => this.receive(msg), fail: (err) => this.fail(err) });
    return this.job;
  }

  /** Moves the piece being filled (if any) to the worker. */
  private flush(): void {
    const piece = this.piece;
    if (!piece || this.filled === 0) return;
    const job = this.open();
    const bytes = new Uint8Array(piece.buffer, piece.byteOffset, this.filled);
    this.piece = null;
    this.filled = 0;
    this.inFlight++;
    job.post({ kind: "sha256-data", id: job.id, piece: bytes }, [bytes.buffer as ArrayBuffer]);
  }

  private async send(): Promise<void> {
    this.flush();
    while (this.inFlight >= PIECES_IN_FLIGHT) {
      this.check();
      await new Promise<void>((resolve) => (this.wakeWriter = resolve));
    }
  }

  private receive(msg: FromWorker): void {
    if (msg.kind === "sha256-took") {
      this.inFlight--;
      if (!this.ended && msg.piece.buffer.byteLength === PIECE_SIZE) this.spare.push(Buffer.from(msg.piece.buffer));
      this.wake();
    } else if (msg.kind === "sha256") {
      this.asked.shift()?.resolve({ digest: Buffer.from(msg.digest, "hex"), size: msg.size });
    } else if (msg.kind === "error") {
      this.fail(new Error(msg.message));
    }
  }

  private fail(err: Error): void {
    this.error ??= err;
    for (const w of this.asked.splice(0)) w.reject(this.error);
    this.wake();
  }

  private wake(): void {
    const w = this.wakeWriter;
    this.wakeWriter = null;
    w?.();
  }

  private check(): void {
    if (this.error) throw this.error;
  }
}

/** SHA-256 and length of a whole stream, hashed on the pool. */
export async function sha256OfStream(source: AsyncIterable<Uint8Array>): Promise<Sha256Result> {
  const hash = new PoolSha256();
  try {
    for await (const piece of source) await hash.update(piece);
    return await hash.digest();
  } finally {
    hash.close();
  }
}

/** SHA-256 and length of a file, read and hashed by a worker of the pool (no byte of it comes here). */
export async function sha256OfFile(path: string): Promise<Sha256Result> {
  const answer = await workerPool().request((id) => ({ kind: "sha256-file", id, path }));
  if (answer.kind === "sha256") return { digest: Buffer.from(answer.digest, "hex"), size: answer.size };
  throw new Error(answer.kind === "error" ? answer.message : `unexpected answer ${answer.kind} to a file's hash`);
}
