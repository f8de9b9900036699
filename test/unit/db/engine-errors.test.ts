// Only db/ knows which engine runs: each engine classes its own errors (unavailable, full), and a lint
// rule keeps engine error codes out of every other room.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { ESLint } from "eslint";
import { classifyDatabaseError } from "../../../src/db/engines/index.ts";

const root = join(import.meta.dirname, "..", "..", "..");

/** A real SQLITE_FULL from node:sqlite: a database that may not grow past its current pages. */
function realSqliteFull(): unknown {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("CREATE TABLE t (v BLOB)");
    const pages = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    db.exec(`PRAGMA max_page_count = ${pages}`);
    db.prepare("INSERT INTO t VALUES (?)").run(Buffer.alloc(1 << 20));
  } catch (err) {
    return err;
  } finally {
    db.close();
  }
  assert.fail("SQLite wrote past max_page_count");
}

/** pg's DatabaseError carries the SQLSTATE in `code`; its pool's own errors only a message. */
function pgError(code: string | undefined, message = "pg error"): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

test("engines class their own errors: full, unavailable, or nothing", () => {
  assert.deepEqual(classifyDatabaseError(realSqliteFull()), { kind: "full", reason: "SQLITE_FULL" });
  assert.deepEqual(classifyDatabaseError(pgError("53100")), { kind: "full", reason: "disk_full (53100)" });
  for (const code of ["57P01", "57P02", "57P03", "08006", "08001"]) assert.equal(classifyDatabaseError(pgError(code))?.kind, "unavailable", code);
  assert.equal(classifyDatabaseError(pgError(undefined, "Connection terminated unexpectedly"))?.kind, "unavailable");
  for (const other of [pgError("23505"), pgError("42P01"), new Error("boom"), null, "text", { code: 8006 }]) assert.equal(classifyDatabaseError(other), null);
});

test("the lint rule refuses an engine's error code outside src/db, and allows it inside", async () => {
  const eslint = new ESLint({ cwd: root });
  const outside = 'export const gone = (e: { code?: string }) => e.code === "57P01";\n';
  const [server] = await eslint.lintText(outside, { filePath: join(root, "src/server/probe.ts") });
  assert.ok(server!.messages.some((m) => m.ruleId === "no-restricted-syntax"), JSON.stringify(server!.messages));
  const sqlite = 'export const full = (e: { errcode?: number }) => e.errcode === 13;\n';
  const [gc] = await eslint.lintText(sqlite, { filePath: join(root, "src/gc/probe.ts") });
  assert.ok(gc!.messages.some((m) => m.ruleId === "no-restricted-syntax"), JSON.stringify(gc!.messages));
  const [db] = await eslint.lintText(outside, { filePath: join(root, "src/db/engines/probe.ts") });
  assert.deepEqual(db!.messages.filter((m) => m.ruleId === "no-restricted-syntax"), []);
});
