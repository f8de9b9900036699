// Real Nix for the e2e tests (single-user, no daemon): a small test closure built without
// nixpkgs, its path info, and NAR dumps.
//
// NOTE: this file was accidentally overwritten by the client helper and rebuilt from how
// test/e2e/nix-pull.test.ts uses it; its author should check it against the original.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** Options for every Nix command here: no build users (root without nixbld). */
export const NIX_OPTS = ["--option", "build-users-group", ""];

const ENV = (): NodeJS.ProcessEnv => ({ ...process.env, NIX_REMOTE: "" });

/** Runs a Nix command without a daemon; resolves with stdout. */
export async function nix(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await exec(cmd, args, { env: ENV(), maxBuffer: 64 << 20 });
  return stdout;
}

const DRV = (name: string, script: string, deps: Record<string, string> = {}): string =>
  `derivation ({ name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ''${script}'' ]; } // { ${Object.entries(deps)
    .map(([k, v]) => `${k} = ${v};`)
    .join(" ")} })`;

/**
 * Three store paths: `top` → `dep` → `lib`. `dep` has an executable `bin/hello`, a dangling
 * symlink and 1.5 MB of random data (so NARs span several chunks); `top` has a `dep-ref`
 * file naming `dep` and a `hello` symlink into it.
 */
export async function buildTestClosure(): Promise<{ top: string; dep: string; lib: string }> {
  const lib = DRV("attic-test-lib", "mkdir -p $out; echo lib > $out/lib.txt");
  const dep = DRV(
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
  const top = DRV("attic-test-top", 'mkdir -p $out; echo "$dep" > $out/dep-ref; ln -s "$dep/bin/hello" $out/hello', { dep });
  const out = await nix("nix-build", [...NIX_OPTS, "--no-out-link", "-E", `let lib = ${lib}; dep = ${dep}; in ${top}`]);
  const topPath = out.trim().split("\n").pop()!;
  const closure = (await nix("nix-store", ["--query", "--requisites", topPath])).trim().split("\n");
  return {
    top: topPath,
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
  const out = await nix("nix", ["--extra-experimental-features", "nix-command", "path-info", "--json", "--offline", ...(recursive ? ["--recursive"] : []), ...paths]);
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

/** The NAR of a store path, in memory (test closures are small). */
export async function dumpNar(path: string): Promise<Buffer> {
  const { stdout } = await exec("nix-store", ["--dump", path], { env: ENV(), encoding: "buffer", maxBuffer: 256 << 20 });
  return stdout;
}
