import assert from "node:assert/strict";
import { after, test } from "node:test";
import { ApiClient, apiErrorFrom, parseUploadOutcome, usePreamble, USER_AGENT } from "../../../src/client/api.ts";
import { ApiError, NetworkError } from "../../../src/client/errors.ts";
import { uploadInfoOf } from "../../../src/client/push/upload.ts";
import { freePort } from "../../helpers/ports.ts";
import { fakePath, json, startFakeServer } from "./fakes.ts";

const server = await startFakeServer((req, res) => {
  if (req.url.endsWith("/cache-config/missing")) return json(res, 404, { code: 404, error: "NoSuchCache", message: "The requested cache does not exist." });
  if (req.url.endsWith("/cache-config/plain")) {
    res.writeHead(502);
    return res.end("bad gateway");
  }
  if (req.url.endsWith("/get-missing-paths")) return json(res, 200, { missing_paths: ["x"] });
  if (req.url.endsWith("/upload-path")) return json(res, 200, { kind: "Uploaded", file_size: 10, frac_deduplicated: 0.5 });
  if (req.method === "GET") return json(res, 200, { is_public: false, api_endpoint: "http://elsewhere/" });
  res.end();
});
after(() => server.close());

test("requests carry the user agent, a lowercase bearer token and JSON bodies", async () => {
  const api = new ApiClient(server.url, "tok");
  await api.createCache("hello", { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: ["cache.nixos.org-1"] });
  const req = server.requests.at(-1)!;
  assert.equal(req.method, "POST");
  assert.equal(req.url, "/_api/v1/cache-config/hello");
  assert.equal(req.headers["user-agent"], USER_AGENT);
  assert.equal(req.headers.authorization, "bearer tok");
  assert.equal(req.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(req.body.toString()), { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: ["cache.nixos.org-1"] });

  await new ApiClient(server.url, null).destroyCache("hello");
  assert.equal(server.requests.at(-1)!.headers.authorization, undefined);
  assert.equal(server.requests.at(-1)!.method, "DELETE");
});

test("the endpoint is joined like Url::join: a base path needs its trailing slash", async () => {
  await new ApiClient(`${server.url}/attic/`, null).getCacheConfig("c");
  assert.equal(server.requests.at(-1)!.url, "/attic/_api/v1/cache-config/c");
  await new ApiClient(`${server.url}/attic`, null).getCacheConfig("c");
  assert.equal(server.requests.at(-1)!.url, "/_api/v1/cache-config/c");
  const api = new ApiClient(server.url, null);
  api.setEndpoint(`${server.url}/moved/`);
  await api.getMissingPaths("c", ["h"]);
  assert.equal(server.requests.at(-1)!.url, "/moved/_api/v1/get-missing-paths");
  assert.deepEqual(JSON.parse(server.requests.at(-1)!.body.toString()), { cache: "c", store_path_hashes: ["h"] });
});

test("errors read like upstream's", async () => {
  const api = new ApiClient(server.url, null);
  await assert.rejects(api.getCacheConfig("missing"), (err: unknown) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.message, "NoSuchCache: The requested cache does not exist.");
    assert.equal(err.status, 404);
    assert.equal(err.transient, false);
    return true;
  });
  await assert.rejects(api.getCacheConfig("plain"), { message: "HTTP 502 Bad Gateway: bad gateway" });
  assert.equal(apiErrorFrom(503, "").transient, true);
  const full = apiErrorFrom(507, JSON.stringify({ code: 507, error: "StorageFull", message: "The server's storage is full." }));
  assert.equal(full.message, "StorageFull: The server's storage is full.");
  assert.equal(full.transient, false, "a full storage is not worth sending the NAR again");
  assert.equal(apiErrorFrom(429, "{}").message, "HTTP 429 Too Many Requests: {}");
  const closed = await freePort();
  await assert.rejects(new ApiClient(`http://127.0.0.1:${closed}`, null).getCacheConfig("c"), (err: unknown) => {
    assert.ok(err instanceof NetworkError);
    assert.equal(err.message, `Failed to send the request to http://127.0.0.1:${closed}/_api/v1/cache-config/c: connect ECONNREFUSED 127.0.0.1:${closed}`);
    return true;
  });
  assert.throws(() => new ApiClient("not a url", null), { message: 'Invalid endpoint URL "not a url"' });
});

async function* chunksOf(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

test("small upload info travels in the header, with a streamed body and no content-length", async () => {
  const info = uploadInfoOf(fakePath("a", "hello", { narSize: 6, references: ["/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep"] }), "c");
  const outcome = await new ApiClient(server.url, "t").uploadPath(info, chunksOf("NA", "RNAR"));
  assert.deepEqual(outcome, { deduplicated: false, fileSize: 10, fracDeduplicated: 0.5 });
  const req = server.requests.at(-1)!;
  assert.equal(req.method, "PUT");
  assert.equal(req.headers["content-length"], undefined);
  assert.equal(req.headers["transfer-encoding"], "chunked");
  assert.equal(req.headers["content-type"], undefined);
  assert.equal(req.headers["x-attic-nar-info-preamble-size"], undefined);
  assert.equal(req.body.toString(), "NARNAR");
  const sent = JSON.parse(String(req.headers["x-attic-nar-info"]));
  assert.deepEqual(Object.keys(sent), ["cache", "store_path_hash", "store_path", "references", "system", "deriver", "sigs", "ca", "nar_hash", "nar_size"]);
  assert.deepEqual(sent.references, ["bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep"]);
  assert.equal(sent.store_path_hash, "a".repeat(32));
  assert.equal(sent.system, null);
  assert.equal(sent.deriver, null);
});

test("large or forced upload info goes in a preamble", async () => {
  const refs = Array.from({ length: 80 }, (_, i) => `/nix/store/${String(i % 10).repeat(32)}-dependency-number-${i}`);
  const big = uploadInfoOf(fakePath("a", "big", { references: refs }), "c");
  assert.ok(JSON.stringify(big).length >= 4096);
  await new ApiClient(server.url, null).uploadPath(big, chunksOf("NAR"));
  let req = server.requests.at(-1)!;
  const size = Number(req.headers["x-attic-nar-info-preamble-size"]);
  assert.equal(req.headers["x-attic-nar-info"], undefined);
  assert.deepEqual(JSON.parse(req.body.subarray(0, size).toString()), big);
  assert.equal(req.body.subarray(size).toString(), "NAR");

  const small = uploadInfoOf(fakePath("a", "small"), "c");
  await new ApiClient(server.url, null).uploadPath(small, chunksOf("N"), { forcePreamble: true });
  req = server.requests.at(-1)!;
  assert.equal(Number(req.headers["x-attic-nar-info-preamble-size"]), Buffer.byteLength(JSON.stringify(small)));
});

test("the preamble threshold is 4096 bytes, and non-ASCII info never goes in a header", () => {
  assert.equal(usePreamble("x".repeat(4095), false), false);
  assert.equal(usePreamble("x".repeat(4096), false), true);
  assert.equal(usePreamble("{}", true), true);
  assert.equal(usePreamble('{"a":"é"}', false), true);
});

test("upload replies are read tolerantly", () => {
  assert.deepEqual(parseUploadOutcome('{"kind":"Deduplicated","frac_deduplicated":null}'), { deduplicated: true, fileSize: null, fracDeduplicated: null });
  assert.deepEqual(parseUploadOutcome('{"kind":"Uploaded","file_size":5,"frac_deduplicated":null}'), { deduplicated: false, fileSize: 5, fracDeduplicated: null });
  assert.deepEqual(parseUploadOutcome('{"kind":"SomethingNew"}'), { deduplicated: false, fileSize: null, fracDeduplicated: null });
  assert.deepEqual(parseUploadOutcome(""), { deduplicated: false, fileSize: null, fracDeduplicated: null });
  assert.deepEqual(parseUploadOutcome("null"), { deduplicated: false, fileSize: null, fracDeduplicated: null });
});
