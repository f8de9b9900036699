// Real Nix store paths for the chaos run: overlapping closures whose NARs share chunks. Built by
// real Nix (so they have real references and can be pulled back by `nix-store -r`):
//   lib<i>    a blob of random bytes
//   small<i>  a few KiB (below the chunking threshold: stored whole)
//   mid<j>    lib<j % libs>'s blob followed by bytes of its own, and a reference to it
//   top<k>    two mids' blobs cut short, its own bytes, references to both mids and a small
// so a mid's NAR shares most chunks with its lib's, and a top's with its mids'. Builds are
// cached by Nix: the same `tag` gives the same paths on the next run.
import { nixBuild, scriptDrv } from "./nix.ts";
import { NixCliStore } from "../../src/client/nix-store.ts";
import type { PathInfo } from "../../src/client/nix-path-info.ts";

export interface ChaosClosures {
  /** the roots that are pushed with their closures */
  tops: string[];
  /** every path, by full store path */
  infos: Map<string, PathInfo>;
  /** the closure (full store paths, the path included) of each path */
  closures: Map<string, string[]>;
}

export interface ClosureShape {
  libs: number;
  mids: number;
  tops: number;
  /** bytes of each lib's blob */
  blobBytes: number;
}

export const DEFAULT_SHAPE: ClosureShape = { libs: 6, mids: 12, tops: 16, blobBytes: 900_000 };

export async function buildChaosClosures(tag: string, shape: ClosureShape = DEFAULT_SHAPE): Promise<ChaosClosures> {
  if (!/^[a-z0-9-]+$/.test(tag)) throw new Error(`bad tag ${tag}`);
  const own = (bytes: number) => `head -c ${bytes} /dev/urandom`;
  const bindings: string[] = [];
  for (let i = 0; i < shape.libs; i++) {
    bindings.push(`lib${i} = ${scriptDrv(`${tag}-lib${i}`, `mkdir $out; ${own(shape.blobBytes)} > $out/blob`)};`);
  }
  for (let i = 0; i < shape.tops; i++) {
    bindings.push(`small${i} = ${scriptDrv(`${tag}-small${i}`, `mkdir $out; ${own(4000 + 500 * i)} > $out/data`)};`);
  }
  for (let j = 0; j < shape.mids; j++) {
    const script = `mkdir $out; cat $lib/blob > $out/blob; ${own(100_000)} >> $out/blob; echo $lib > $out/ref`;
    bindings.push(`mid${j} = ${scriptDrv(`${tag}-mid${j}`, script, { lib: `lib${j % shape.libs}` })};`);
  }
  const tops: string[] = [];
  for (let k = 0; k < shape.tops; k++) {
    const script = `mkdir $out; cat $a/blob $b/blob | head -c ${Math.floor(shape.blobBytes * 0.7)} > $out/blob; ${own(50_000)} >> $out/blob; echo $a $b $s > $out/refs`;
    const deps = { a: `mid${k % shape.mids}`, b: `mid${(k + 3) % shape.mids}`, s: `small${k}` };
    bindings.push(`top${k} = ${scriptDrv(`${tag}-top${k}`, script, deps)};`);
    tops.push(`top${k}`);
  }
  const built = await nixBuild(`let ${bindings.join("\n")} in [ ${tops.join(" ")} ]`);
  const store = new NixCliStore({ ...process.env, NIX_REMOTE: "" });
  const infos = new Map((await store.closurePathInfos(built)).map((i) => [i.path, i]));
  const closures = new Map<string, string[]>();
  const closureOf = (path: string): string[] => {
    const known = closures.get(path);
    if (known) return known;
    const set = new Set([path]);
    for (const ref of infos.get(path)!.references) if (ref !== path) for (const p of closureOf(ref)) set.add(p);
    closures.set(path, [...set]);
    return [...set];
  };
  for (const path of infos.keys()) closureOf(path);
  return { tops: built, infos, closures };
}
