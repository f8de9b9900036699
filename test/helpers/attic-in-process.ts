// The real `attic` shell and commands run in the test process with their own environment and
// output streams: the command table, flag parsing and commands as a user runs them, without the
// seconds a child process costs here. Tests of exit codes and signals use run-attic.ts instead.
import { PassThrough, Readable } from "node:stream";
import { buildProgram } from "../../src/client/main.ts";
import type { Ctx } from "../../src/client/context.ts";

export async function attic(args: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): Promise<{ stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = new PassThrough().setEncoding("utf8").on("data", (d: string) => (stdout += d));
  const err = new PassThrough().setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const ctx: Ctx = { env, cwd, stdin: Readable.from([]), stdout: out, stderr: err, signal: new AbortController().signal };
  await buildProgram(ctx).parseAsync(["node", "attic", ...args]);
  await new Promise((r) => setImmediate(r));
  return { stdout, stderr };
}
