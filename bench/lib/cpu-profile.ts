// A `--cpu-prof` profile summarized: self time by function and by where the code lives (our
// rooms, each dependency, Node's internals, GC, idle), so that a bench can say where the
// microseconds of a request go.
//   node bench/lib/cpu-profile.ts FILE.cpuprofile [--top 25] [--requests N]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function readProfile(file: string): Profile {
  return JSON.parse(readFileSync(file, "utf8")) as Profile;
}

/** Where a function lives: `src/<room>`, a package, a Node internal module, or V8's own (GC, idle). */
export function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const src = /\/(src\/[^/]+)\//.exec(url);
  if (src) return src[1]!;
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/").slice(0, 2).join("/")}`;
  return url.replace(/^file:\/\/.*\//, "");
}

/**
 * Self time (µs) by function and by area; `total` leaves idle out. With `window` (monotonic µs,
 * V8's clock is hrtime's on Linux) only the samples taken inside it count.
 */
export function summarize(
  profile: Profile,
  window?: { from: number; to: number },
): { total: number; byFunction: Map<string, number>; byArea: Map<string, number> } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (window && (t < window.from || t > window.to)) continue;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
    const name = `${functionName || "(anonymous)"} ${url ? `${url.replace(/^file:\/\/.*?\/(src|node_modules)\//, "$1/")}:${lineNumber + 1}` : ""}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const area = areaOf(url, functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    if (functionName !== "(idle)") total += us;
  }
  return { total, byFunction, byArea };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "25" }, requests: { type: "string" } } });
  for (const file of positionals) {
    const { total, byFunction, byArea } = summarize(readProfile(file));
    const requests = values.requests ? Number(values.requests) : null;
    const fmt = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %${requests ? ` ${(us / requests).toFixed(1).padStart(6)} µs/req` : ""}`;
    console.log(`${file}: busy ${(total / 1000).toFixed(0)} ms${requests ? `, ${(total / requests).toFixed(1)} µs per request` : ""}`);
    console.log("by area:");
    for (const [k, v] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 16)) if (k !== "(idle)") console.log(`  ${fmt(v)}  ${k}`);
    console.log("top self time:");
    for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) if (!k.startsWith("(idle)")) console.log(`  ${fmt(v)}  ${k}`);
  }
}

/** The `top` functions of a summary by self time, one line each (idle left out). */
export function topLines(byFunction: Map<string, number>, total: number, top: number): string[] {
  return [...byFunction]
    .filter(([k]) => !k.startsWith("(idle)"))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => `${(us / 1e3).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
}
