// The top self-time functions of each CPU profile in a folder (one .cpuprofile per thread, as
// `node --cpu-prof` writes them; `bench/push.ts --cpu-prof DIR` collects atticd's):
//   node bench/profile-top.ts DIR [--top 12]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ options: { top: { type: "string", default: "12" } }, allowPositionals: true });
const dir = positionals[0]!;
for (const name of readdirSync(dir, { recursive: true }).map(String).filter((n) => n.endsWith(".cpuprofile")).sort()) {
  const p = JSON.parse(readFileSync(join(dir, name), "utf8")) as Profile;
  const byNode = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const n = byNode.get(id)!;
    const f = n.callFrame;
    const file = f.url.replace(/^.*\/(src|node_modules)\//, "$1/").replace(/^node:/, "node:");
    const key = `${f.functionName || "(anonymous)"} ${file}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  const idle = self.get("(idle) ") ?? 0;
  console.log(`\n${name}: ${(total / 1e6).toFixed(2)} s sampled, ${((total - idle) / 1e6).toFixed(2)} s busy`);
  for (const [key, us] of [...self].filter(([k]) => k !== "(idle) ").sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    console.log(`  ${(us / 1e6).toFixed(2).padStart(6)} s  ${((100 * us) / (total - idle)).toFixed(1).padStart(5)} %  ${key}`);
  }
}
