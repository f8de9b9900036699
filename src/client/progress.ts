// What a push shows. On a terminal: a live multi-line display (cli-progress) with one bar per
// upload in flight (name, bytes, average speed) under an overall line (paths done / total,
// bytes, share deduplicated). Otherwise: only the result lines, one per path, as upstream.
import cliProgress from "cli-progress";
import { humanBytes } from "./human.ts";
import type { PathInfo } from "./nix-path-info.ts";

export type PathResult =
  | { ok: true; deduplicated: boolean; fracDeduplicated: number | null; seconds: number }
  | { ok: false; error: string };

export interface PathBar {
  advance(bytes: number): void;
  /** a retry streams the NAR again from the start */
  restart(): void;
  /**
   * what the upload is doing besides sending bytes (resuming a session, finalizing); `logged`:
   * worth a line of its own when the output is not a terminal
   */
  note?(text: string, logged?: boolean): void;
}

export interface PushReporter {
  /** more paths were planned (each batch of `push --stdin` and `watch-store` adds some) */
  addPlanned(paths: number, bytes: number): void;
  begin(info: PathInfo): PathBar;
  end(info: PathInfo, bar: PathBar, result: PathResult): void;
  /** a status line, printed above the bars */
  line(text: string): void;
  close(): void;
}

export interface PushTotals {
  planned: number;
  plannedBytes: number;
  done: number;
  failed: number;
  doneBytes: number;
  /** NAR bytes the server already had (whole deduplicated paths and shared chunks) */
  dedupBytes: number;
}

/** `✅ <hash-name> (12.34 MiB/s, 45.6% deduplicated)`, `✅ … (deduplicated)`, `❌ …: <error>` */
export function resultLine(info: PathInfo, result: PathResult): string {
  const name = info.path.slice(info.path.lastIndexOf("/") + 1);
  if (!result.ok) return `❌ ${name}: ${result.error}`;
  if (result.deduplicated) return `✅ ${name} (deduplicated)`;
  let detail = `${humanBytes(info.narSize / Math.max(result.seconds, 1e-6))}/s`;
  if (result.fracDeduplicated !== null && result.fracDeduplicated > 0.01) {
    detail += `, ${(result.fracDeduplicated * 100).toFixed(1)}% deduplicated`;
  }
  return `✅ ${name} (${detail})`;
}

abstract class BaseReporter implements PushReporter {
  readonly totals: PushTotals = { planned: 0, plannedBytes: 0, done: 0, failed: 0, doneBytes: 0, dedupBytes: 0 };

  addPlanned(paths: number, bytes: number): void {
    this.totals.planned += paths;
    this.totals.plannedBytes += bytes;
  }

  end(info: PathInfo, _bar: PathBar, result: PathResult): void {
    if (result.ok) {
      this.totals.done++;
      this.totals.doneBytes += info.narSize;
      this.totals.dedupBytes += result.deduplicated ? info.narSize : (result.fracDeduplicated ?? 0) * info.narSize;
    } else {
      this.totals.failed++;
    }
    this.line(resultLine(info, result));
  }

  abstract begin(info: PathInfo): PathBar;
  abstract line(text: string): void;
  abstract close(): void;
}

export class PlainReporter extends BaseReporter {
  readonly #out: NodeJS.WritableStream;

  constructor(out: NodeJS.WritableStream) {
    super();
    this.#out = out;
  }

  begin(info: PathInfo): PathBar {
    const name = info.path.slice(info.path.lastIndexOf("/") + 1);
    // a resumed upload or a smaller part size is worth a line in a CI log; progress notes are not
    return { advance: () => undefined, restart: () => undefined, note: (text, logged) => logged === true && this.line(`↻ ${name}: ${text}`) };
  }

  line(text: string): void {
    this.#out.write(`${text}\n`);
  }

  close(): void {}
}

const CLOCK = ["🕛", "🕐", "🕑", "🕒", "🕓", "🕔", "🕕", "🕖", "🕗", "🕘", "🕙", "🕚"];

interface BarPayload {
  kind: "path" | "overall";
  name: string;
  note?: string;
}

export class TtyReporter extends BaseReporter {
  readonly #multi: cliProgress.MultiBar;
  readonly #overall: cliProgress.SingleBar;
  #streamedBytes = 0;

  constructor(out: NodeJS.WritableStream) {
    super();
    this.#multi = new cliProgress.MultiBar({
      stream: out,
      format: (options, params, payload: BarPayload) => this.#format(options, params, payload),
      barsize: 30,
      hideCursor: true,
      clearOnComplete: true,
      gracefulExit: false,
      fps: 8,
    });
    this.#overall = this.#multi.create(1, 0, { kind: "overall", name: "" } satisfies BarPayload);
  }

  override addPlanned(paths: number, bytes: number): void {
    super.addPlanned(paths, bytes);
    this.#overall.setTotal(Math.max(1, this.totals.plannedBytes));
  }

  begin(info: PathInfo): PathBar {
    const name = info.path.slice(info.path.lastIndexOf("/") + 1 + 33);
    const bar = this.#multi.create(Math.max(1, info.narSize), 0, { kind: "path", name } satisfies BarPayload);
    let sent = 0;
    const handle: PathBar & { bar: cliProgress.SingleBar } = {
      bar,
      advance: (bytes) => {
        sent += bytes;
        this.#streamedBytes += bytes;
        bar.increment(bytes);
        this.#overall.update(this.#streamedBytes);
      },
      restart: () => {
        this.#streamedBytes -= sent;
        sent = 0;
        bar.start(Math.max(1, info.narSize), 0, { kind: "path", name } satisfies BarPayload);
      },
      note: (text) => bar.update({ kind: "path", name, note: text } satisfies BarPayload),
    };
    return handle;
  }

  override end(info: PathInfo, bar: PathBar, result: PathResult): void {
    super.end(info, bar, result);
    const single = (bar as PathBar & { bar?: cliProgress.SingleBar }).bar;
    if (single !== undefined) this.#multi.remove(single);
    this.#overall.update(this.#streamedBytes);
  }

  line(text: string): void {
    this.#multi.log(`${text}\n`);
  }

  close(): void {
    // stop() clears the bars but drops lines still buffered by log(): flush them first.
    this.#multi.update();
    this.#multi.stop();
  }

  #format(options: cliProgress.Options, params: cliProgress.Params, payload: BarPayload): string {
    const size = options.barsize ?? 30;
    const filled = Math.round(Math.min(1, params.progress) * size);
    const bar = "█".repeat(filled) + " ".repeat(size - filled);
    if (payload.kind === "overall") {
      const t = this.totals;
      const dedup = t.doneBytes > 0 ? ` · ${((t.dedupBytes / t.doneBytes) * 100).toFixed(1)}% deduplicated` : "";
      const failed = t.failed > 0 ? ` · ${t.failed} failed` : "";
      return `📦 ${t.done + t.failed}/${t.planned} paths ${bar} ${humanBytes(this.#streamedBytes)} / ${humanBytes(t.plannedBytes)}${dedup}${failed}`;
    }
    const elapsed = (Date.now() - params.startTime) / 1000;
    const spinner = CLOCK[Math.floor(elapsed * 4) % CLOCK.length]!;
    const speed = elapsed > 0 ? `${humanBytes(params.value / elapsed)}/s` : "-";
    const note = payload.note === undefined ? "" : ` ${payload.note}`;
    return `${spinner} ${payload.name.slice(0, 20).padEnd(20)} ${bar} ${humanBytes(params.value).padStart(10)} (${speed})${note}`;
  }
}

/**
 * The live display is drawn on stderr (as upstream's indicatif), and only when both stderr and
 * stdout are terminals: output captured to a file or a pipe gets plain result lines.
 */
export function createReporter(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  env: NodeJS.ProcessEnv,
  stdout: { isTTY?: boolean } = out,
): PushReporter {
  return out.isTTY === true && stdout.isTTY === true && env.TERM !== "dumb" ? new TtyReporter(out) : new PlainReporter(out);
}
