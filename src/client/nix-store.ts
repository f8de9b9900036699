// The local Nix store, through the real Nix tools as child processes: closures with
// `nix-store --query --requisites`, metadata with `nix path-info --json` (with `--recursive`,
// closure and metadata in one call, the push planner's case), NARs streamed from
// `nix-store --dump` (stdout is a pipe, so a slow upload pauses nix-store: bounded memory).
// Long path lists are split so that no command line grows past the argv limit.
import { spawn } from "node:child_process";
import { batches, mapLimit } from "../util/concurrency.ts";
import { NixError } from "./errors.ts";
import { parsePathInfoJson, type PathInfo } from "./nix-path-info.ts";

/** What push, watch-store and get-closure need of a store; tests substitute fakes. */
export interface LocalStore {
  readonly storeDir: string;
  /** The closure of `paths` (full store paths), each path once. */
  closure(paths: string[], options?: { includeOutputs?: boolean }): Promise<string[]>;
  /** Metadata of every path; an invalid path is an error. */
  pathInfos(paths: string[]): Promise<PathInfo[]>;
  /** Metadata of every path in the closure of `paths`, each path once. */
  closurePathInfos(paths: string[]): Promise<PathInfo[]>;
  /** Those of `paths` that are valid (registered) store paths. */
  validPaths(paths: string[]): Promise<string[]>;
  /** The NAR serialisation of `path`, streamed; aborting `signal` stops the producer. */
  nar(path: string, signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

const BATCH = 1000;
const PARALLEL_QUERIES = 4;
const NIX_COMMAND = ["--extra-experimental-features", "nix-command"];

export function defaultStoreDir(env: NodeJS.ProcessEnv): string {
  const dir = env.NIX_STORE_DIR;
  return dir !== undefined && dir !== "" ? dir.replace(/\/+$/, "") : "/nix/store";
}

export class NixCliStore implements LocalStore {
  readonly storeDir: string;
  readonly #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.#env = env;
    this.storeDir = defaultStoreDir(env);
  }

  async closure(paths: string[], options: { includeOutputs?: boolean } = {}): Promise<string[]> {
    const flags = ["--query", "--requisites", ...(options.includeOutputs === true ? ["--include-outputs"] : [])];
    const outputs = await mapLimit(batches(paths, BATCH), PARALLEL_QUERIES, (batch) => this.#run("nix-store --query", "nix-store", [...flags, ...batch]));
    const seen = new Set<string>();
    for (const out of outputs) for (const line of out.split("\n")) if (line !== "") seen.add(line);
    return [...seen];
  }

  pathInfos(paths: string[]): Promise<PathInfo[]> {
    return this.#pathInfos(paths, []);
  }

  closurePathInfos(paths: string[]): Promise<PathInfo[]> {
    return this.#pathInfos(paths, ["--recursive"]);
  }

  async #pathInfos(paths: string[], flags: string[]): Promise<PathInfo[]> {
    const unique = [...new Set(paths)];
    const results = await mapLimit(batches(unique, BATCH), PARALLEL_QUERIES, async (batch) => {
      // --offline: an invalid path must not send Nix asking substituters (slow retries).
      const out = await this.#run("nix path-info", "nix", [...NIX_COMMAND, "path-info", "--json", "--offline", ...flags, ...batch]);
      return parsePathInfoJson(out, this.storeDir);
    });
    const invalid = results.flatMap((r) => r.invalid);
    if (invalid.length > 0) throw new NixError(`path '${invalid[0]}' is not valid`);
    // Closures of different batches overlap.
    const byPath = new Map<string, PathInfo>();
    for (const info of results.flatMap((r) => r.infos)) byPath.set(info.path, info);
    return [...byPath.values()];
  }

  async validPaths(paths: string[]): Promise<string[]> {
    const outputs = await mapLimit(batches(paths, BATCH), PARALLEL_QUERIES, (batch) =>
      this.#run("nix-store --check-validity", "nix-store", ["--check-validity", "--print-invalid", ...batch]),
    );
    const invalid = new Set(outputs.flatMap((o) => o.split("\n")));
    return paths.filter((p) => !invalid.has(p));
  }

  async *nar(path: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    signal?.throwIfAborted();
    const child = spawn("nix-store", ["--dump", path], { env: this.#env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once("error", (err) => reject(spawnError("nix-store", err)));
      child.once("close", (code) => resolve(code));
    });
    exited.catch(() => undefined);
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    };
    signal?.addEventListener("abort", kill, { once: true });
    try {
      for await (const chunk of child.stdout) yield chunk as Buffer;
      const code = await exited;
      if (code !== 0) throw new NixError(`nix-store --dump ${path} failed${describeStderr(stderr)}`);
    } finally {
      signal?.removeEventListener("abort", kill);
      kill();
    }
  }

  #run(what: string, cmd: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { env: this.#env, stdio: ["ignore", "pipe", "pipe"] });
      const out: Buffer[] = [];
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => out.push(d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
      child.once("error", (err) => reject(spawnError(cmd, err)));
      child.once("close", (code) => {
        if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
        else reject(new NixError(`${what} failed${describeStderr(stderr)}`));
      });
    });
  }
}

function spawnError(cmd: string, err: Error): NixError {
  if ((err as NodeJS.ErrnoException).code === "ENOENT") return new NixError(`Could not run \`${cmd}\`: is Nix installed and on PATH?`);
  return new NixError(`Could not run \`${cmd}\`: ${err.message}`);
}

/** Nix's `error:` lines when there are any (the lines before them are context), else the last lines. */
function describeStderr(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("warning:"));
  const errors = lines.filter((l) => l.startsWith("error:"));
  const shown = errors.length > 0 ? errors : lines.slice(-3);
  return shown.length === 0 ? "" : `: ${shown.map((l) => l.replace(/^error: /, "").trim()).join(" ")}`;
}
