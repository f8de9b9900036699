import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { presignedRedirectGuard } from "../../../src/server/download/redirect-policy.ts";

const S3_URL = "http://127.0.0.1:9000/bucket/x.chunk?X-Amz-Signature=abc";

test("no redirect at all: disabled, a private cache, or any Authorization header", () => {
  const anon: IncomingHttpHeaders = { host: "cache.example" };
  assert.equal(presignedRedirectGuard(false, { headers: anon }, true), null);
  assert.equal(presignedRedirectGuard(true, { headers: anon }, false), null);
  for (const authorization of ["Bearer x", "Basic OnRva2Vu", ""]) {
    assert.equal(presignedRedirectGuard(true, { headers: { ...anon, authorization } }, true), null, authorization);
  }
});

test("a public cache without credentials is redirected unless the URL names the host the client asked", () => {
  const cases: [IncomingHttpHeaders, string, boolean][] = [
    [{ host: "cache.example" }, S3_URL, true],
    [{ host: "127.0.0.1:8080" }, S3_URL, false], // netrc matches the host name whatever the port
    [{ host: "127.0.0.1" }, S3_URL, false],
    [{ host: "CACHE.example:443" }, "https://cache.example./b/k", false], // case and a trailing dot do not hide it
    [{ host: "[::1]:8080" }, "http://[::1]:9000/b/k", false],
    [{ host: "[::1]:8080" }, S3_URL, true],
    [{ host: "10.0.0.5:8080", "x-forwarded-host": "cache.example" }, "https://cache.example:9000/b/k", false],
    [{ host: "10.0.0.5:8080", "x-forwarded-host": "proxy.example, cache.example" }, "https://cache.example/b/k", false],
    [{ host: "cache.example" }, "not a url", false],
  ];
  for (const [headers, url, redirect] of cases) {
    const guard = presignedRedirectGuard(true, { headers }, true);
    assert.ok(guard, JSON.stringify(headers));
    assert.equal(guard(url), redirect, `${JSON.stringify(headers)} → ${url}`);
  }
});
