// scripts/check-cycles.ts (run by `npm test`): it finds a cycle when there is one, lets lazy
// `import()` through, and src/ has none.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { cycles, importGraph } from "../../../scripts/check-cycles.ts";

test("a cycle through type-only imports and re-exports is found; a lazy import() is not one", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "attic-cycles-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "a.ts"), `import type { B } from "./b.ts";\nexport type A = { b: B };\n`);
  writeFileSync(join(dir, "b.ts"), `export { c } from "./c.ts";\nexport type B = number;\n`);
  writeFileSync(join(dir, "c.ts"), `import type { A } from "./a.ts";\nexport const c = (a: A) => a;\n`);
  writeFileSync(join(dir, "registry.ts"), `export const load = () => import("./member.ts");\n`);
  writeFileSync(join(dir, "member.ts"), `import { load } from "./registry.ts";\nexport const again = load;\n`);
  const found = cycles(importGraph(dir)).map((c) => c.map((f) => basename(f)));
  assert.deepEqual(found, [["a.ts", "b.ts", "c.ts"]]);
});

test("src/ has no import cycle", () => {
  assert.deepEqual(cycles(importGraph(join(import.meta.dirname, "../../../src"))), []);
});
