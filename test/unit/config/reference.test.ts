import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderConfigReference } from "../../../src/server/config/reference.ts";
import { KEYS } from "../../../src/server/config/schema.ts";

const docPath = join(import.meta.dirname, "..", "..", "..", "docs", "config-reference.md");

test("docs/config-reference.md is generated from the schema and up to date", () => {
  assert.equal(
    readFileSync(docPath, "utf8"),
    renderConfigReference(),
    "docs/config-reference.md is stale: run `node src/server/config/reference.ts > docs/config-reference.md`",
  );
});

test("the reference names every key, its env var and marks our additions", () => {
  const doc = renderConfigReference();
  for (const spec of KEYS) {
    const name = spec.key.split(".").at(-1)!;
    assert.ok(doc.includes(`| \`${name}\` |`), spec.key);
    if (spec.env) assert.ok(doc.includes(spec.env), spec.env);
  }
  for (const ours of ["presigned-redirects", "pool-size", "stale-grace-period", "max-size"]) {
    assert.match(doc, new RegExp(`\\| \`${ours}\` \\|[^\\n]*\\*\\(ours\\)\\*`), ours);
  }
});
