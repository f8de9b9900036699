// Real Nix for the tests (single-user as root, no daemon, no build users, no network): running
// its commands, tiny store paths built without nixpkgs, path info and NAR dumps.
import { execFile } from "node:child_process";

/** Env for Nix commands: no daemon. */
export function nixEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, NIX_REMOTE: "", ...extra };
}

/**
 * Options for Nix commands here: root without nixbld users, no substituters (no network; a later
 * `--option substituters` wins), and no narinfo cache, so every lookup reaches the server under test.
 */
export const NIX_OPTS = [
  "--option", "build-users-group", "",
  "--option", "substituters", "",
  "--option", "narinfo-cache-positive-ttl", "0",
  "--option", "narinfo-cache-negative-ttl", "0",
];

/** What the `nix` command needs before its subcommands on Nix 2.8. */
export const NIX_COMMAND = ["--extra-experimental-features", "nix-command"];

export interface NixResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface NixRunOptions {
  /** written to stdin */
  input?: Buffer;
  env?: NodeJS.ProcessEnv;
}

/** Runs a Nix tool and resolves with its exit code and output; rejects only when it could not run. */
export function runNix(cmd: string, args: string[], options: NixRunOptions = {}): Promise<NixResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: options.env ?? nixEnv(), encoding: "buffer", maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      if (code === -1) reject(err);
      else resolve({ code, stdout, stderr: stderr.toString() });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** The stdout of a Nix tool that must succeed (its stderr is in the error when it does not). */
export async function nixOut(cmd: string, args: string[], options: NixRunOptions = {}): Promise<Buffer> {
  const r = await runNix(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The same, as trimmed text. */
export async function nix(cmd: string, args: string[], options: NixRunOptions = {}): Promise<string> {
  return (await nixOut(cmd, args, options)).toString("utf8").trim();
}

export const nixStore = (args: string[], env?: NodeJS.ProcessEnv): Promise<string> => nix("nix-store", args, { env });
export const nixCommand = (args: string[], env?: NodeJS.ProcessEnv): Promise<string> => nix("nix", [...NIX_COMMAND, ...args], { env });

/** The NAR of a store path (or any file tree), in memory (test paths are small). */
export const dumpNar = (path: string): Promise<Buffer> => nixOut("nix-store", ["--dump", path]);

/**
 * A derivation expression running `script` with /bin/sh; `deps` become attributes (so env
 * variables of the build) holding Nix expressions, typically store paths of other derivations.
 */
export function scriptDrv(name: string, script: string, deps: Record<string, string> = {}): string {
  const attrs = Object.entries(deps).map(([k, v]) => `${k} = ${v};`).join(" ");
  return `derivation ({ name = ${JSON.stringify(name)}; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ''${script}'' ]; } // { ${attrs} })`;
}

/** A derivation writing `text` to $out, followed by the paths of `deps` (names bound by an enclosing `let`). */
export function textDrv(name: string, text: string, deps: string[] = []): string {
  const refs = deps.map((d) => `\${${d}}`).join(" ");
  return scriptDrv(name, `echo ${text.replace(/["'\\$]/g, "")} ${refs} > $out`);
}

/** Builds an expression, returning the output paths (one per line of nix-build's output). */
export async function nixBuild(expr: string, options: { outLink?: string } = {}): Promise<string[]> {
  const link = options.outLink === undefined ? ["--no-out-link"] : ["--out-link", options.outLink];
  const out = await nix("nix-build", [...NIX_OPTS, ...link, "-E", expr]);
  return out.split("\n").filter((l) => l !== "");
}

async function requisites(path: string): Promise<string[]> {
  return (await nixStore(["--query", "--requisites", path])).split("\n").filter((l) => l !== "");
}

/** Three paths a ← b ← c (c depends on b, b on a), unique to `tag`. */
export async function buildChain(tag: string, options: { outLink?: string } = {}): Promise<{ a: string; b: string; c: string }> {
  const expr = `let a = ${textDrv(`${tag}-a`, `a ${tag}`)}; b = ${textDrv(`${tag}-b`, `b ${tag}`, ["a"])}; in ${textDrv(`${tag}-c`, `c ${tag}`, ["b"])}`;
  const [c] = await nixBuild(expr, options);
  const all = await requisites(c!);
  return { a: all.find((p) => p.endsWith(`-${tag}-a`))!, b: all.find((p) => p.endsWith(`-${tag}-b`))!, c: c! };
}

/**
 * Three store paths: `top` → `dep` → `lib`. `dep` has an executable `bin/hello`, a dangling
 * symlink and 1.5 MB of random data (so NARs span several chunks); `top` has a `dep-ref`
 * file naming `dep` and a `hello` symlink into it.
 */
export async function buildTestClosure(): Promise<{ top: string; dep: string; lib: string }> {
  const lib = scriptDrv("attic-test-lib", "mkdir -p $out; echo lib > $out/lib.txt");
  const dep = scriptDrv(
    "attic-test-dep",
    [
      "mkdir -p $out/bin $out/share",
      'printf "#!/bin/sh\\n# uses %s\\necho hello\\n" "$lib" > $out/bin/hello',
      "chmod +x $out/bin/hello",
      "ln -s /nonexistent/target $out/dangling",
      "head -c 1500000 /dev/urandom > $out/share/random.bin",
    ].join("; "),
    { lib },
  );
  const top = scriptDrv("attic-test-top", 'mkdir -p $out; echo "$dep" > $out/dep-ref; ln -s "$dep/bin/hello" $out/hello', { dep });
  const [topPath] = await nixBuild(`let lib = ${lib}; dep = ${dep}; in ${top}`);
  const closure = await requisites(topPath!);
  return {
    top: topPath!,
    dep: closure.find((p) => p.endsWith("-attic-test-dep"))!,
    lib: closure.find((p) => p.endsWith("-attic-test-lib"))!,
  };
}

export interface PathInfo {
  path: string;
  /** as Nix prints it (SRI or `sha256:<nix32>`) */
  narHash: string;
  narSize: number;
  /** full store paths */
  references: string[];
  signatures: string[];
  ca: string | null;
  deriver: string | null;
}

/** `nix path-info --json` of `paths` (and their closure with `recursive`), in Nix 2.8 or newer format. */
export async function pathInfo(paths: string[], recursive = false): Promise<PathInfo[]> {
  const out = await nixCommand(["path-info", "--json", "--offline", ...(recursive ? ["--recursive"] : []), ...paths]);
  const doc = JSON.parse(out) as unknown;
  const entries: [string, Record<string, unknown>][] = Array.isArray(doc)
    ? (doc as Record<string, unknown>[]).map((e) => [String(e.path), e])
    : Object.entries(doc as Record<string, Record<string, unknown>>);
  return entries.map(([path, e]) => ({
    path,
    narHash: String(e.narHash),
    narSize: Number(e.narSize),
    references: (e.references as string[] | undefined) ?? [],
    signatures: (e.signatures as string[] | undefined) ?? [],
    ca: typeof e.ca === "string" ? e.ca : null,
    deriver: typeof e.deriver === "string" ? e.deriver : null,
  }));
}
