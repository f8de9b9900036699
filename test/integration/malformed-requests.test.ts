// Requests the fuzzer (test/fuzz) found answered in a shape that is neither Attic's JSON error
// nor one of upstream's plain-text rejections: malformed JSON, undecodable or over-long path
// segments, and requests Node's HTTP parser refuses. Raw sockets, since fetch will not send them.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { sendRaw, type RawOutcome, type RawRequest } from "../fuzz/http.ts";
import { narFixture, uploadNar } from "../helpers/nar.ts";

let s: TestServer;
let port: number;
before(async () => {
  s = await startServer();
  port = Number(new URL(s.url).port);
  await createCacheViaApi(s, "c");
});
after(async () => s.stop());

function send(method: string, path: string, headers: [string, string][] = [], body?: string): Promise<RawOutcome> {
  const req: RawRequest = { method, path, headers: [["Host", "127.0.0.1"], ["Connection", "close"], ...headers], ...(body !== undefined && { body: Buffer.from(body) }) };
  return sendRaw(port, req, 20_000);
}

function answer(o: RawOutcome): { status: number; type: string; text: string } {
  assert.equal(o.kind, "response");
  if (o.kind !== "response") throw new Error("unreachable");
  return { status: o.status, type: o.headers.get("content-type") ?? "", text: o.body.toString("utf8") };
}

test("malformed JSON is upstream's plain-text 400 `Failed to parse the request body as JSON: …`", async () => {
  const body = '{"cache": "c", "store_path_hashes": [';
  const a = answer(await send("POST", "/_api/v1/get-missing-paths", [["Authorization", `Bearer ${s.rootToken()}`], ["Content-Type", "application/json"], ["Content-Length", String(body.length)]], body));
  assert.equal(a.status, 400);
  assert.match(a.type, /^text\/plain/);
  assert.match(a.text, /^Failed to parse the request body as JSON: /);
});

test("a path segment that does not decode, or is over-long, is upstream's plain-text 400 `Invalid URL: …`", async () => {
  for (const path of ["/_api/v1/cache-config/%zz", "/c/%E0%A4%A.narinfo", `/_api/v1/cache-config/${"a".repeat(600)}`, `/${"a".repeat(600)}/nix-cache-info`]) {
    const a = answer(await send("GET", path));
    assert.equal(a.status, 400, path);
    assert.match(a.type, /^text\/plain/, path);
    assert.match(a.text, /^Invalid URL: /, path);
  }
});

test("a request Node's HTTP parser refuses gets a bare 400 with no body, as hyper answers (not fastify's JSON)", async () => {
  for (const length of ["18446744073709551616", "abc", "-1"]) {
    const o = await send("PUT", "/_api/v1/upload-path", [["Content-Length", length]], "x");
    const a = answer(o);
    assert.equal(a.status, 400, length);
    assert.equal(a.text, "", length);
    assert.equal(a.type, "", length);
  }
  // the server is still there
  assert.equal((await s.fetch("/healthz")).status, 200);
});

test("upload info with a line break in a field that becomes a narinfo line is a 400, nothing stored (found while fuzzing)", async () => {
  const fx = narFixture(Buffer.from("line break"));
  const cases: Record<string, unknown>[] = [
    { store_path: `${fx.storePath}\nURL: nar/evil.nar` },
    { references: [`${fx.storePath.slice(11)}\r\nSig: x`] },
    { sigs: ["c:abc\nCompression: none"] },
    { ca: "fixed:r:sha256:x\n" },
    // PostgreSQL refused the NUL with a 500 (found by the fuzzer on postgres+s3, seed 777)
    { store_path: `${fx.storePath}\u0000` },
    { system: "x86_64-linux\u0000" },
  ];
  for (const extraInfo of cases) {
    const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken(), extraInfo });
    assert.equal(res.status, 400, JSON.stringify(extraInfo));
    assert.equal(((await res.json()) as { error: string }).error, "RequestError");
  }
  assert.equal((await s.fetch(`/c/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status, 404);
});

test("a NUL in a cache's store_dir is a 400 RequestError on create and configure, not a database error", async () => {
  const body = { keypair: "Generate", is_public: false, store_dir: "/nix/store\u0000", priority: 41, upstream_cache_key_names: [] };
  const headers = { "content-type": "application/json" };
  const create = await s.fetch("/_api/v1/cache-config/nul", { method: "POST", token: s.rootToken(), headers, body: JSON.stringify(body) });
  assert.equal(create.status, 400);
  const patch = await s.fetch("/_api/v1/cache-config/c", { method: "PATCH", token: s.rootToken(), headers, body: JSON.stringify({ store_dir: "/x\u0000" }) });
  assert.equal(patch.status, 400);
});
