// The real `atticd` as a child process (src/bin/atticd.ts under this Node), for tests and
// benchmarks that need what only a process has: modes, signals, a crash, its own peak RSS.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { trackPeakRss } from "./peak-rss.ts";
import { freePort } from "./ports.ts";

export const ATTICD = fileURLToPath(new URL("../../src/bin/atticd.ts", import.meta.url));
export const ATTICADM = fileURLToPath(new URL("../../src/bin/atticadm.ts", import.meta.url));

/**
 * Node's compile cache for atticd run from its TypeScript sources, relative to the repository
 * (`npm start` sets the same; test/unit/deploy checks it). Without it, the main thread strips
 * every module's types with Node's type stripper, a WebAssembly module that stays loaded for the
 * process's life: some 17 MiB of RSS that the emitted JavaScript (systemd, Docker) never loads.
 * With it, Node keeps the stripped sources keyed by their content (an edited file is stripped
 * again, never served stale) and, from the second start on, never loads the stripper: a process
 * run from source then weighs what the installed one does.
 */
export const SOURCE_COMPILE_CACHE = "node_modules/.cache/node-compile-cache";
const COMPILE_CACHE_ENV = { NODE_COMPILE_CACHE: fileURLToPath(new URL(`../../${SOURCE_COMPILE_CACHE}`, import.meta.url)) };

/**
 * How atticd's start line (`#!/usr/bin/env -S VAR=value... node --flags`) runs it: tests and
 * benchmarks start atticd exactly so, as an installed `atticd` starts.
 */
export function atticdLaunch(): { env: Record<string, string>; nodeArgs: string[] } {
  const first = readFileSync(ATTICD, "utf8").split("\n", 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S (.+)$/.exec(first);
  if (!m) throw new Error(`unexpected start line in ${ATTICD}: ${first}`);
  const words = m[1]!.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (words[0]?.includes("=")) {
    const [name, ...value] = words.shift()!.split("=");
    env[name!] = value.join("=");
  }
  if (words.shift() !== "node") throw new Error(`atticd's start line does not run node: ${first}`);
  return { env, nodeArgs: words };
}

export interface AtticdProcess {
  child: ChildProcess;
  url: string;
  /** everything written to stderr so far */
  stderr(): string;
  /** peak resident set size so far (VmHWM), in bytes */
  peakRss(): number;
  /** resolves with the exit code (or the signal name) */
  exited: Promise<number | string>;
  /** SIGTERM and wait for the exit */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface SpawnOptions {
  /** a config file path; written from `configToml` into `dir` when given */
  configPath?: string;
  configToml?: string;
  dir?: string;
  mode?: string;
  env?: NodeJS.ProcessEnv;
  /** resolve once this appears on stderr (default: "Listening on" for serving modes) */
  readyText?: string | null;
  extraArgs?: string[];
  listen?: boolean;
  /** listen on this loopback port (a replica restarted where its clients expect it); default a free one */
  port?: number;
}

const READY_TIMEOUT_MS = 60_000;

/**
 * Several atticd processes started at once (replicas, a collector): if one fails to start, the
 * others are stopped before the error is thrown, so no process outlives the test.
 */
export async function spawnAtticdAll(all: SpawnOptions[]): Promise<AtticdProcess[]> {
  const outcomes = await Promise.allSettled(all.map((opts) => spawnAtticd(opts)));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (!failed) return outcomes.map((o) => (o as PromiseFulfilledResult<AtticdProcess>).value);
  await Promise.all(outcomes.map((o) => (o.status === "fulfilled" ? o.value.stop("SIGKILL") : undefined)));
  throw failed.reason;
}

export async function spawnAtticd(opts: SpawnOptions = {}): Promise<AtticdProcess> {
  let configPath = opts.configPath;
  if (opts.configToml !== undefined) {
    if (!opts.dir) throw new Error("dir is needed to write the config");
    configPath = join(opts.dir, "server.toml");
    writeFileSync(configPath, opts.configToml);
  }
  const mode = opts.mode ?? "monolithic";
  const serving = ["monolithic", "api-server"].includes(mode);
  const port = serving && opts.listen !== false ? (opts.port ?? (await freePort())) : 0;
  const launch = atticdLaunch();
  const args = [...launch.nodeArgs, ATTICD, ...(configPath ? ["-f", configPath] : []), "--mode", mode];
  if (port) args.push("-l", `127.0.0.1:${port}`);
  args.push(...(opts.extraArgs ?? []));
  const child = spawn(process.execPath, args, {
    // info at least: readiness is the "Listening on" line, which the logger writes at info
    env: { ...process.env, ...COMPILE_CACHE_ENV, ...launch.env, ATTIC_LOG_LEVEL: /^(trace|debug)$/i.test(process.env.ATTIC_LOG_LEVEL ?? "") ? process.env.ATTIC_LOG_LEVEL : "info", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  child.stdout!.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const readyText = opts.readyText === undefined ? (serving ? "Listening on" : null) : opts.readyText;
  if (readyText) {
    await new Promise<void>((resolve, reject) => {
      // a loaded machine (CI, other test files) can take a while to start three processes; a
      // process that never gets ready is killed, so it cannot keep the test file alive
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`atticd not ready after ${READY_TIMEOUT_MS / 1000} s:\n${err}`));
      }, READY_TIMEOUT_MS);
      // only the new text and the tail it may complete: a long-running server logs a lot
      let seen = 0;
      const check = () => {
        if (err.includes(readyText, Math.max(0, seen - readyText.length))) {
          clearTimeout(timer);
          child.stderr!.off("data", check);
          child.stdout!.off("data", check);
          resolve();
        }
        seen = err.length;
      };
      child.stderr!.on("data", check);
      child.stdout!.on("data", check);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`atticd exited (${code}) before it was ready:\n${err}`));
      });
      check();
    });
  }
  const rss = trackPeakRss(child.pid!, 200);
  void exited.then(() => rss.stop());
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    stderr: () => err,
    peakRss: rss.peak,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs atticd to completion (check-config, db-migrations, garbage-collector-once). */
export async function runAtticd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string; stdout: string }> {
  const launch = atticdLaunch();
  return runNode(ATTICD, args, { ...COMPILE_CACHE_ENV, ...launch.env, ...env }, launch.nodeArgs);
}

export async function runAtticadm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string; stdout: string }> {
  return runNode(ATTICADM, args, env);
}

async function runNode(script: string, args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Promise<{ code: number; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number>((resolve) => child.on("exit", (c) => resolve(c ?? -1)));
  return { code, stderr, stdout };
}
