// docs/errors.md lists the plain-text rejections the fuzzer allows (PLAIN_TEXT_REJECTIONS):
// the page and the list cannot drift apart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PLAIN_TEXT_REJECTIONS } from "../../fuzz/server-target.ts";

test("docs/errors.md has one table row per plain-text rejection the fuzzer allows", () => {
  const doc = readFileSync(join(import.meta.dirname, "../../../docs/errors.md"), "utf8");
  // a cell is `text` or, when the text holds a backtick, `` text `` (padded by one space each side)
  const rows = [...doc.matchAll(/^\| (\d{3}) \| (`+)(.*?)\2 \|/gm)].map((m) => ({ status: Number(m[1]), text: m[2]!.length > 1 ? m[3]!.slice(1, -1) : m[3]! }));
  assert.equal(rows.length, PLAIN_TEXT_REJECTIONS.length, JSON.stringify(rows));
  for (const r of PLAIN_TEXT_REJECTIONS) {
    // a row gives the start of the message; the rest is the detail
    assert.ok(rows.some((row) => row.status === r.status && (r.text.test(row.text) || r.text.test(`${row.text}detail`))), `no row for ${r.status} ${String(r.text)}`);
  }
});
