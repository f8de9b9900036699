// /metrics kept off the public listener (issue 19): behind `metrics.token`, or on a listener of
// its own with `metrics.listen` (then absent from the main one). Refusals in Attic's JSON shape.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startMetricsListener } from "../../src/server/metrics-listener.ts";
import { startServer } from "../helpers/server.ts";

test("metrics.token: /metrics answers only its bearer token", async () => {
  const s = await startServer({ top: `[metrics]\ntoken = "scrape-me"` });
  try {
    const refused = await s.fetch("/metrics");
    assert.equal(refused.status, 401);
    assert.deepEqual(await refused.json(), { code: 401, error: "Unauthorized", message: "Unauthorized." });
    assert.equal((await s.fetch("/metrics", { token: "wrong" })).status, 401);
    await s.fetch("/healthz");
    const ok = await s.fetch("/metrics", { token: "scrape-me" });
    assert.equal(ok.status, 200);
    const text = await ok.text();
    assert.match(text, /^attic_http_request_duration_seconds_count\{route="\/healthz",method="GET",status="200"\} 1$/m);
    assert.match(text, /^attic_db_up 1$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
  } finally {
    await s.stop();
  }
});

test("metrics.listen: /metrics only on its own address, with the token when both are set", async () => {
  const s = await startServer({ top: `[metrics]\nlisten = "127.0.0.1:9"\ntoken = "t"` });
  const listener = await startMetricsListener(s.app.metrics, { host: "127.0.0.1", port: 0 }, s.config.metrics.token);
  try {
    assert.equal((await s.fetch("/metrics")).status, 404, "not on the public listener");
    const addr = listener.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    const url = `http://127.0.0.1:${addr.port}`;
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    assert.equal((await fetch(`${url}/`, { headers: { authorization: "Bearer t" } })).status, 404);
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: "Bearer t" } });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(await ok.text(), /^# TYPE attic_http_request_duration_seconds histogram$/m);
  } finally {
    await new Promise((resolve) => listener.close(resolve));
    await s.stop();
  }
});
