// The top self-time functions of each CPU profile in a folder (one .cpuprofile per thread, as
// `node --cpu-prof` writes them; `bench/push.ts --cpu-prof DIR` collects atticd's):
//   node bench/profile-top.ts DIR [--top 12]
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { readProfile, summarize, topLines } from "./lib/cpu-profile.ts";

const { values, positionals } = parseArgs({ options: { top: { type: "string", default: "12" } }, allowPositionals: true });
const dir = positionals[0]!;
for (const name of readdirSync(dir, { recursive: true }).map(String).filter((n) => n.endsWith(".cpuprofile")).sort()) {
  const { total, byFunction } = summarize(readProfile(join(dir, name)));
  console.log(`\n${name}: ${(total / 1e6).toFixed(2)} s busy`);
  for (const line of topLines(byFunction, total, Number(values.top))) console.log(`  ${line}`);
}
