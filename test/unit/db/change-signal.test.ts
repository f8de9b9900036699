// Which of this process's own writes make it forget what it kept at once (db/change-signal.ts,
// mayChangeWatched): those the triggers would signal, and nothing that every download or upload
// step writes. Compiled against PostgreSQL's query compiler, no database needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql, type Compilable, type RawBuilder } from "kysely";
import type { Database } from "../../../src/db/schema.ts";
import { mayChangeWatched, postgresChangeSignalDdl } from "../../../src/db/change-signal.ts";

const k = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

const raw = (q: RawBuilder<unknown>): Compilable<unknown> => ({ compile: () => q.compile(k) });

const cases: [string, Compilable<unknown>, boolean][] = [
  ["a select", k.selectFrom("object").selectAll(), false],
  ["a download's last access", k.updateTable("object").set({ last_accessed_at: new Date(), download_count: 1 }).where("id", "=", 1), false],
  ["an object's signatures", k.updateTable("object").set({ sigs: "[]" }).where("id", "=", 1), true],
  ["an upload's NAR holders", k.updateTable("nar").set({ holders_count: 1, held_at: new Date() }).where("id", "=", 1), false],
  ["a NAR made valid", k.updateTable("nar").set({ state: "V" }).where("id", "=", 1), true],
  ["an upload's chunk links", k.insertInto("chunkref").values({ nar_id: 1, seq: 0, chunk_id: 1 }), false],
  ["a chunk marked lost", k.updateTable("chunkref").set({ chunk_id: null }).where("chunk_id", "in", [1]), true],
  ["a new object", k.insertInto("object").values({ cache_id: 1, nar_id: 1, store_path_hash: "h", store_path: "p", references: "[]", sigs: "[]", created_at: new Date() }), true],
  ["a deleted object", k.deleteFrom("object").where("id", "=", 1), true],
  ["a deleted chunk", k.deleteFrom("chunk").where("id", "=", 1), false],
  ["a cache reconfigured", k.updateTable("cache").set({ priority: 1 }).where("id", "=", 1), true],
  ["a revocation", k.insertInto("attic_ts_revocation").values({ jti: "j", sub: null, issued_before: null, expires_at: null, created_at: new Date(), reason: null }), true],
  ["raw SQL", raw(sql`UPDATE object SET sigs = '[]'`), true],
];

for (const [what, query, expected] of cases) {
  test(`${what}: ${expected ? "forgets" : "keeps"} what was kept`, () => {
    assert.equal(mayChangeWatched(query.compile().query), expected);
  });
}

test("every watched table has its trigger", () => {
  const ddl = postgresChangeSignalDdl().join("\n");
  for (const table of ["cache", "object", "nar", "chunkref", "attic_ts_revocation"]) assert.match(ddl, new RegExp(`AFTER .* ON "${table}" FOR EACH STATEMENT`));
  assert.doesNotMatch(ddl, /last_accessed_at|holders_count|held_at|download_count/);
});
