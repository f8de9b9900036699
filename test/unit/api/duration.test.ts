import { test } from "node:test";
import assert from "node:assert/strict";
import { DurationParseError, formatDuration, parseDuration } from "../../../src/api/duration.ts";

test("parseDuration: every unit with humantime's values", () => {
  const cases: [string, number][] = [
    ["1s", 1],
    ["1sec", 1],
    ["3secs", 3],
    ["1second", 1],
    ["50seconds", 50],
    ["1m", 60],
    ["12min", 720],
    ["2mins", 120],
    ["1minute", 60],
    ["7minutes", 420],
    ["2h", 7200],
    ["7hr", 25200],
    ["7hrs", 25200],
    ["1hour", 3600],
    ["12 hours", 43200],
    ["1d", 86400],
    ["1day", 86400],
    ["2days", 172800],
    ["1w", 604800],
    ["1week", 604800],
    ["7weeks", 4233600],
    ["1M", 2_630_016],
    ["1month", 2_630_016],
    ["3 months", 3 * 2_630_016],
    ["12M", 31_560_192],
    ["1y", 31_557_600],
    ["1year", 31_557_600],
    ["2y", 2 * 31_557_600],
    ["7years", 7 * 31_557_600],
  ];
  for (const [input, seconds] of cases) assert.equal(parseDuration(input), seconds, input);
});

test("parseDuration: combinations, spacing and sub-second truncation", () => {
  assert.equal(parseDuration("1h 30m"), 5400);
  assert.equal(parseDuration("1h30m"), 5400);
  assert.equal(parseDuration("2h 37min"), 9420);
  assert.equal(parseDuration("  20 min 17 nsec "), 1200);
  assert.equal(parseDuration("1500ms"), 1);
  assert.equal(parseDuration("999ms"), 0);
  assert.equal(parseDuration("500ms 500ms"), 1);
  assert.equal(parseDuration("3usec"), 0);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("0s"), 0);
  assert.equal(parseDuration("00"), 0);
});

test("parseDuration: errors say what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["", /value was empty/],
    ["   ", /value was empty/],
    ["5", /time unit needed, for example 5sec or 5ms/],
    ["h", /expected number at 0/],
    ["1h x", /expected number at 3/],
    ["2 fortnights", /unknown time unit "fortnights"/],
    ["1H", /unknown time unit "H"/],
    ["1.5h", /invalid character at 1/],
    ["-1h", /expected number at 0/],
    ["1h,2m", /invalid character at 2/],
    ["100000000000000000000s", /number is too large/],
    ["10000000000y", /number is too large/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseDuration(input), (e: unknown) => e instanceof DurationParseError && message.test(e.message), input);
  }
  assert.throws(() => parseDuration("2 fortnights"), { message: /^invalid duration "2 fortnights": / });
});

test("formatDuration: humantime style, round-trips", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(43200), "12h");
  assert.equal(formatDuration(9420), "2h 37m");
  assert.equal(formatDuration(86400), "1day");
  assert.equal(formatDuration(2 * 86400 + 1), "2days 1s");
  assert.equal(formatDuration(2_630_016), "1month");
  assert.equal(formatDuration(31_557_600 * 2 + 2_630_016 * 3), "2years 3months");
  for (const s of [1, 59, 61, 3599, 3601, 86399, 90061, 2_630_015, 31_557_599, 123_456_789]) {
    assert.equal(parseDuration(formatDuration(s)), s, String(s));
  }
  assert.throws(() => formatDuration(-1), RangeError);
  assert.throws(() => formatDuration(1.5), RangeError);
});
