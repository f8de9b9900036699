// Import cycles between files of src/ fail the build (run by `npm test` beside lint and tsc).
// Every static relative import counts, `import type` and re-exports included: a cycle of types is
// still two files that cannot be read or moved one without the other. A dynamic `import()` does
// not: it is how a registry loads its members lazily (client/command-table.ts loads each command
// when it runs, and `attic gen-completions` reads that same table), and it fixes no load order.
// Prints each cycle as a chain of files and exits 1 when there is any.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = join(import.meta.dirname, "..");
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s+["'](\.[^"']+)["']/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** file -> the files of src/ it imports */
export function importGraph(dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(dir)) {
    const text = readFileSync(file, "utf8");
    const targets = [...text.matchAll(IMPORT)].map((m) => resolve(dirname(file), m[1]!));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

if (import.meta.main) {
  const src = resolve(process.argv[2] ?? join(root, "src"));
  const found = cycles(importGraph(src));
  for (const component of found) console.error(`import cycle: ${component.map((f) => relative(root, f)).join(" <-> ")}`);
  if (found.length > 0) {
    console.error(`${found.length} import cycle(s) in src/: give the shared part its own module (see docs/architecture.md)`);
    process.exit(1);
  }
  console.log("no import cycles in src/");
}
