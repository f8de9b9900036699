import { test } from "node:test";
import assert from "node:assert/strict";
test("services are provided by the runner", () => {
  assert.ok(process.env.ATTIC_TEST_PG_URL?.startsWith("postgres://"));
  assert.ok(process.env.ATTIC_TEST_S3_ENDPOINT?.startsWith("http://"));
});
