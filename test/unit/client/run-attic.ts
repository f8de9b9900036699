// Runs the real `attic` entry point as a child process (async, so that a fake server in the
// test process keeps answering).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

const ATTIC = join(import.meta.dirname, "..", "..", "..", "src", "bin", "attic.ts");

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runAttic(args: string[], options: { env: NodeJS.ProcessEnv; input?: string; cwd?: string; onSpawn?: (child: ChildProcess) => void }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ATTIC, ...args], { env: options.env, cwd: options.cwd, stdio: ["pipe", "pipe", "pipe"] });
    options.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    // attic exiting before it reads its input closes the pipe first: its exit code says how it went
    child.stdin.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") reject(err);
    });
    child.stdin.end(options.input ?? "");
  });
}
