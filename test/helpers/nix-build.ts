// Real Nix for the client and seed-walkthrough tests: build tiny store paths without nixpkgs
// (single-user, no daemon) and run Nix commands with that environment.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Env for Nix commands: no daemon. */
export function nixEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, NIX_REMOTE: "", ...extra };
}

export const NIX_BUILD_OPTIONS = ["--option", "build-users-group", "", "--option", "substituters", ""];

/** A derivation expression writing `text` to $out, depending on `deps` (Nix expressions). */
export function textDrv(name: string, text: string, deps: string[] = []): string {
  const refs = deps.map((d) => `\${${d}}`).join(" ");
  return `derivation { name = ${JSON.stringify(name)}; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${text.replace(/["\\$]/g, "")} ${refs} > $out" ]; PATH = "/usr/bin:/bin"; }`;
}

/** Builds an expression, returning the output paths (one per line of nix-build's output). */
export async function nixBuild(expr: string, options: { outLink?: string } = {}): Promise<string[]> {
  const link = options.outLink === undefined ? ["--no-out-link"] : ["--out-link", options.outLink];
  const { stdout } = await run("nix-build", [...NIX_BUILD_OPTIONS, ...link, "-E", expr], { env: nixEnv(), maxBuffer: 16 << 20 });
  return stdout.split("\n").filter((l) => l !== "");
}

/** Three paths a ← b ← c (c depends on b, b on a), unique to `tag`. */
export async function buildChain(tag: string, options: { outLink?: string } = {}): Promise<{ a: string; b: string; c: string }> {
  const expr = `let a = ${textDrv(`${tag}-a`, `a ${tag}`)}; b = ${textDrv(`${tag}-b`, `b ${tag}`, ["a"])}; in ${textDrv(`${tag}-c`, `c ${tag}`, ["b"])}`;
  const [c] = await nixBuild(expr, options);
  const { stdout } = await run("nix-store", ["--query", "--requisites", c!], { env: nixEnv() });
  const all = stdout.split("\n").filter((l) => l !== "");
  const a = all.find((p) => p.endsWith(`-${tag}-a`))!;
  const b = all.find((p) => p.endsWith(`-${tag}-b`))!;
  return { a, b, c: c! };
}

export async function nixCommand(args: string[], env: NodeJS.ProcessEnv = nixEnv()): Promise<string> {
  const { stdout } = await run("nix", ["--extra-experimental-features", "nix-command", ...args], { env, maxBuffer: 16 << 20 });
  return stdout;
}

export async function nixStore(args: string[], env: NodeJS.ProcessEnv = nixEnv()): Promise<string> {
  const { stdout } = await run("nix-store", args, { env, maxBuffer: 16 << 20 });
  return stdout;
}
