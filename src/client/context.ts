// What a command may touch of the outside world. main.ts builds it from `process`; tests can
// build their own. Status lines go to stderr as upstream's `eprintln!`; data (closures,
// completions) goes to stdout.
import type { Readable, Writable } from "node:stream";

export interface Ctx {
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  /** aborted on SIGINT/SIGTERM */
  signal: AbortSignal;
}

/** Options of a command: positional arguments and flags, camelCased, as parsed by commander. */
export type CommandOptions = Record<string, unknown>;

export interface CommandModule {
  // Method syntax on purpose: each command declares its own, narrower options type.
  run(options: CommandOptions, ctx: Ctx): Promise<void>;
}

export function say(ctx: Ctx, line: string): void {
  ctx.stderr.write(`${line}\n`);
}

export function print(ctx: Ctx, line: string): void {
  ctx.stdout.write(`${line}\n`);
}

export function processCtx(signal: AbortSignal): Ctx {
  return {
    env: process.env,
    cwd: process.cwd(),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    signal,
  };
}
