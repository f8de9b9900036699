// The server logger: one level check for every method (pino's numbers), and the level read
// from ATTIC_LOG_LEVEL / RUST_LOG.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, formatFromEnv, levelFromEnv, LEVELS, type LevelName } from "../../../src/server/log.ts";

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

test("format: pretty on a terminal, JSON elsewhere; ATTIC_LOG_FORMAT overrides", () => {
  assert.equal(formatFromEnv({}, { isTTY: true }), "pretty");
  assert.equal(formatFromEnv({}, {}), "json");
  assert.equal(formatFromEnv({ ATTIC_LOG_FORMAT: "json" }, { isTTY: true }), "json");
  assert.equal(formatFromEnv({ ATTIC_LOG_FORMAT: "PRETTY" }, {}), "pretty");
  assert.equal(formatFromEnv({ ATTIC_LOG_FORMAT: "xml" }, {}), "json");
});

test("pretty lines: time, level, message, key=value fields; fastify's records look the same", () => {
  const lines: string[] = [];
  const log = createLogger("info", { write: (line: string) => lines.push(line) }, "pretty");
  log.info("Listening on [::]:8080...", { mode: "monolithic", gc: { chunks: 2 }, note: "two words" });
  log.debug("not written");
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}INFO Listening on \[::\]:8080\.\.\. mode=monolithic gc\.chunks=2 note="two words"\n$/);
  // what pino hands to the stream fastify gets
  const stream = (log.fastifyOptions() as { stream: { write(line: string): void } }).stream;
  stream.write(JSON.stringify({ level: 50, time: 0, msg: "request failed", req: { method: "GET", url: "/x" }, err: { message: "boom", stack: "Error: boom\n    at f" } }) + "\n");
  assert.equal(lines[1], '1970-01-01T00:00:00.000Z ERROR request failed req.method=GET req.url=/x err.message=boom\n    Error: boom\n        at f\n');
});
