// The server logger: one level check for every method (pino's numbers), and the level read
// from ATTIC_LOG_LEVEL / RUST_LOG.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, levelFromEnv, LEVELS, type LevelName } from "../../../src/server/log.ts";

/** the methods that write at each configured level */
const WRITES: Record<LevelName, string[]> = {
  trace: ["info", "warn", "error"],
  debug: ["info", "warn", "error"],
  info: ["info", "warn", "error"],
  warn: ["warn", "error"],
  error: ["error"],
  fatal: [],
  silent: [],
};

for (const [level, expected] of Object.entries(WRITES) as [LevelName, string[]][]) {
  test(`level ${level}: writes ${expected.join(", ") || "nothing"}`, () => {
    const lines: string[] = [];
    const log = createLogger(level, { write: (line: string) => lines.push(line) });
    log.info("info", { k: 1 });
    log.warn("warn");
    log.error("error");
    const written = lines.map((l) => JSON.parse(l) as { level: number; msg: "info" | "warn" | "error"; k?: number });
    assert.deepEqual(written.map((l) => l.msg), expected);
    for (const l of written) assert.equal(l.level, LEVELS[l.msg], `${l.msg} is written with pino's number`);
    if (expected.includes("info")) assert.equal(written[0]!.k, 1, "fields are kept");
    assert.equal((log.fastifyOptions() as { level: string }).level, level);
  });
}

test("the level comes from ATTIC_LOG_LEVEL, then RUST_LOG's level word; anything else is info", () => {
  assert.equal(levelFromEnv({}), "info");
  assert.equal(levelFromEnv({ ATTIC_LOG_LEVEL: "WARN" }), "warn");
  assert.equal(levelFromEnv({ RUST_LOG: "error" }), "error");
  assert.equal(levelFromEnv({ ATTIC_LOG_LEVEL: "silent", RUST_LOG: "debug" }), "silent");
  assert.equal(levelFromEnv({ ATTIC_LOG_LEVEL: "loud" }), "info");
  assert.equal(levelFromEnv({ RUST_LOG: "attic=debug" }), "info");
  assert.equal(levelFromEnv({ ATTIC_LOG_LEVEL: "constructor" }), "info");
});
