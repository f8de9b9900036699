// docs/errors.md has one row per error of the catalogue, with its status: the page and
// ERROR_CATALOGUE cannot drift apart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ERROR_CATALOGUE } from "../../../src/server/errors.ts";

test("docs/errors.md lists every catalogue error with its HTTP status, and nothing else", () => {
  const doc = readFileSync(join(import.meta.dirname, "../../../docs/errors.md"), "utf8");
  const rows = [...doc.matchAll(/^\| `([A-Za-z]+)` \| (\d{3}) \| (.+) \|$/gm)].map((m) => ({ error: m[1]!, status: Number(m[2]), when: m[3]!.trim() }));
  const expected = Object.entries(ERROR_CATALOGUE).map(([error, { status }]) => ({ error, status }));
  assert.deepEqual(
    rows.map(({ error, status }) => ({ error, status })).sort((a, b) => a.error.localeCompare(b.error)),
    expected.sort((a, b) => a.error.localeCompare(b.error)),
  );
  for (const row of rows) assert.ok(row.when.length > 0, `${row.error}: say when it happens`);
});
