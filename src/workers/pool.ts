// The process's one pool of CPU worker threads (worker.ts): NAR passes of uploads, one-shot
// compressions and downloads' batches of file reads share it. Sized to the cores. A job is placed
// on an idle worker, else a new one while there is room (a batch of reads: only if there is none),
// else the worker with the fewest jobs. A worker that dies (crash or exit) fails its own jobs, and
// only those, and leaves the pool, so the next job spawns a fresh one. Idle workers do not keep
// the process alive.
import { availableParallelism } from "node:os";
import { Worker, type MessagePort } from "node:worker_threads";
import type { FromWorker, ToWorker } from "./protocol.ts";
import { BOOTSTRAP, compileCacheOn, strippedGraph } from "./sources.ts";

// from src/ the worker is the .ts file, from dist/ the emitted .js beside this one
const WORKER_URL = new URL(`./worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

/** What a job does with its worker's messages, and how it learns the worker died. */
export interface JobHandler {
  receive(msg: FromWorker): void;
  fail(err: Error): void;
}

type Transfer = ArrayBuffer | MessagePort;

export interface JobOptions {
  /** a second worker shares the job (an upload's pass: see open) */
  pair?: boolean;
  /**
   * a short job that mostly waits on the disk (a batch of file reads): it shares a busy worker
   * rather than spawn one more (an isolate's memory, some 20 MiB), unless the pool has none. It
   * waits there behind what that worker was already sent (an upload's pass keeps a few pieces
   * in flight: milliseconds), and the pass waits for it in turn: neither starves the other.
   */
  light?: boolean;
}

export interface Job {
  readonly id: number;
  post(msg: ToWorker, transfer?: Transfer[]): void;
  /** a second worker shares this job (asked for with `pair`; none in a pool of one) */
  readonly partnered: boolean;
  postPartner(msg: ToWorker, transfer?: Transfer[]): void;
  /** The job is over: its workers may go idle. */
  end(): void;
}

interface Slot {
  worker: Worker;
  name: string;
  jobs: Map<number, JobHandler>;
}

export interface WorkerPoolOptions {
  /** workers at most (default: the cores) */
  size?: number;
  /** the worker's module (default: worker.ts); a test passes one that crashes */
  url?: URL;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private spawned = 0;
  readonly size: number;
  private readonly url: URL;
  /** run from .ts sources: the worker's graph stripped once (sources.ts); undefined until the first spawn */
  private stripped: [string, string][] | null | undefined;

  constructor(options: WorkerPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? availableParallelism());
    this.url = options.url ?? WORKER_URL;
  }

  /**
   * Start a job on the least busy worker; with `pair`, a second worker shares it (an upload's
   * pass on one, its compression on the other). Either one dying fails the job.
   */
  open(handler: JobHandler, options: JobOptions = {}): Job {
    const slot = this.pick(options.light === true);
    const partner = options.pair ? this.pick(false, slot) : null;
    const id = this.nextId++;
    const slots = partner ? [slot, partner] : [slot];
    for (const s of slots) {
      // a worker with work keeps the process alive until it answers; an idle one does not
      if (s.jobs.size === 0) s.worker.ref();
      s.jobs.set(id, handler);
    }
    let ended = false;
    return {
      id,
      partnered: partner !== null,
      post: (msg, transfer = []) => {
        if (!ended) slot.worker.postMessage(msg, transfer);
      },
      postPartner: (msg, transfer = []) => {
        if (!ended) partner?.worker.postMessage(msg, transfer);
      },
      end: () => {
        if (ended) return;
        ended = true;
        for (const s of slots) if (s.jobs.delete(id) && s.jobs.size === 0) s.worker.unref();
      },
    };
  }

  /** One message in, one answer out (a one-shot job). */
  request(msg: (id: number) => ToWorker, transfer: Transfer[] = [], options: JobOptions = {}): Promise<FromWorker> {
    return new Promise<FromWorker>((resolve, reject) => {
      const handler: JobHandler = {
        receive: (answer) => {
          job.end();
          resolve(answer);
        },
        fail: (err) => {
          job.end();
          reject(err);
        },
      };
      const job = this.open(handler, options);
      job.post(msg(job.id), transfer);
    });
  }

  /** workers alive now */
  get running(): number {
    return this.slots.length;
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /**
   * The least busy worker: an idle one, else a new one while the pool has room (`light`: only
   * when it has none), else the one with the fewest jobs; `besides`: another than that one, if
   * the pool allows.
   */
  private pick(light: boolean): Slot;
  private pick(light: boolean, besides: Slot): Slot | null;
  private pick(light: boolean, besides?: Slot): Slot | null {
    const others = besides ? this.slots.filter((s) => s !== besides) : this.slots;
    const idle = others.find((s) => s.jobs.size === 0);
    if (idle) return idle;
    if (this.slots.length < this.size && !(light && others.length > 0)) return this.spawn();
    if (others.length === 0) return null;
    return others.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
  }

  private spawn(): Slot {
    const name = `attic-worker-${++this.spawned}`;
    // chunk bytes live outside the heap; the heap holds the NAR's listing tree while it is parsed,
    // which grows with the number of files (not measured for huge trees: a generous cap, not a reservation)
    const resourceLimits = { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 2 };
    // run from .ts: with Node's compile cache on (npm start, the tests), each worker takes its
    // modules from the cache, stripped once by whichever process compiled them first, and nobody
    // loads the type stripper again; without it, the main thread strips the graph for them
    if (this.stripped === undefined) this.stripped = this.url.pathname.endsWith(".ts") && !compileCacheOn() ? strippedGraph(this.url) : null;
    const worker = this.stripped
      ? new Worker(BOOTSTRAP, { eval: true, name, resourceLimits, workerData: { entry: this.url.href, sources: this.stripped } })
      : new Worker(this.url, { name, resourceLimits });
    const slot: Slot = { worker, name, jobs: new Map() };
    worker.on("message", (msg: FromWorker) => slot.jobs.get(msg.id)?.receive(msg));
    // A worker that crashes ('error', then 'exit') or exits on its own ('exit' only) fails the
    // jobs it had, and only those; it leaves the pool, so the next job spawns a fresh one.
    const retire = (err: Error) => {
      const at = this.slots.indexOf(slot);
      if (at !== -1) this.slots.splice(at, 1);
      const jobs = [...slot.jobs.values()];
      slot.jobs.clear();
      for (const job of jobs) job.fail(err);
    };
    worker.on("error", (err) => retire(new Error(`${name} crashed: ${err.message}`, { cause: err })));
    worker.on("exit", (code) => retire(new Error(`${name} exited (code ${code})`)));
    // an idle pool must not keep the process alive (after the listeners, which would re-ref it)
    worker.unref();
    this.slots.push(slot);
    return slot;
  }
}

let shared: WorkerPool | null = null;

/** The process-wide pool, created on first use. */
export function workerPool(): WorkerPool {
  shared ??= new WorkerPool();
  return shared;
}

/**
 * Puts `pool` in place of the process-wide pool and returns the one it replaces (null if none
 * was made yet), so a test can run the server on a pool whose workers fail, then put it back.
 */
export function replaceWorkerPool(pool: WorkerPool | null): WorkerPool | null {
  const previous = shared;
  shared = pool;
  return previous;
}
