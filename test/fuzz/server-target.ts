// Fuzzing a live atticd (buildApp on loopback, any backend of test/helpers/server.ts) with raw
// HTTP: random methods and routes, hostile path segments, forged and expired tokens, lying
// Content-Length, garbage upload info, mutated and truncated NARs. Each answer is checked
// (in time, no 5xx, Attic's JSON error shape or one of upstream's plain-text rejections) and
// `finalChecks` looks for anything half-written once the run is over.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { createCacheViaApi, startServer, type Backend, type TestServer } from "../helpers/server.ts";
import { sendRaw, type RawOutcome, type RawRequest } from "./http.ts";
import {
  badToken, cacheName, encodeSegment, mutateNar, mutateObject, mutateText, narOf, nastyString, randomJson, randomTree, storePathHash,
  UPLOAD_INFO_FIELDS, uploadInfoFor, validStorePathHash,
} from "./inputs.ts";
import { Finding, type Target } from "./parser-targets.ts";
import type { Rng } from "./rng.ts";

/**
 * The 4xx answers that are plain text on purpose, as upstream's axum extractors answer them
 * (docs/errors.md lists them). Everything else in 4xx must be `{"code","error","message"}`.
 */
export const PLAIN_TEXT_REJECTIONS: readonly { status: number; text: RegExp; why: string }[] = [
  { status: 400, text: /^Invalid URL: /, why: "a path segment is not a valid cache name" },
  { status: 415, text: /^Expected request with `Content-Type: application\/json`$/, why: "a JSON route without a JSON content type" },
  { status: 400, text: /^Failed to parse the request body as JSON: /, why: "malformed JSON" },
  { status: 422, text: /^Failed to deserialize the JSON body into the target type: /, why: "JSON of the wrong shape" },
  { status: 413, text: /^Failed to buffer the request body: length limit exceeded$/, why: "a JSON body over 2 MiB" },
];

const KEEP = "keep-known-good";
const CACHES = ["fuzz-a", "fuzz-pub", "fuzz-b"];

export interface ServerFuzz {
  target: Target;
  server: TestServer;
  /** checks after the run: nothing half-written, the known-good path still served intact */
  finalChecks(): Promise<string[]>;
  stop(): Promise<void>;
}

interface Known {
  nar: Buffer;
  hash: string;
}

export async function startServerFuzz(backend: Backend, timeoutMs: number): Promise<ServerFuzz> {
  const server = await startServer({ backend, chunking: { threshold: 32768, min: 4096, avg: 16384, max: 65536 } });
  for (const c of [KEEP, ...CACHES]) await createCacheViaApi(server, c, { is_public: c === "fuzz-pub" });
  const port = Number(new URL(server.url).port);
  const root = server.rootToken();
  const tokens = [root, server.token({ "fuzz-a": { r: 1 } }), server.token({ "fuzz-*": { r: 1, w: 1 } }), server.token({ "fuzz-b": { cr: 1, cq: 1 } })];

  // the known-good path, uploaded before the storm and checked after it
  const keep: Known = { nar: narOf({ type: "regular", executable: false, contents: Buffer.alloc(100_000, "known good ") }), hash: validStorePathHashOf("keep") };
  const up = await upload(port, root, KEEP, keep, timeoutMs);
  if (up.kind !== "response" || up.status !== 200) throw new Error(`uploading the known-good path failed: ${describeOutcome(up)}`);

  const uploaded: Known[] = [keep];
  const target: Target = {
    name: `server-${backend.db}-${backend.storage}`,
    async run(rng) {
      const { req, route, nar } = generate(rng, port, tokens, server.secret, uploaded);
      const out = await sendRaw(port, req, timeoutMs);
      checkOutcome(req, route, out);
      if (nar && out.kind === "response" && out.status === 200 && uploaded.length < 200) uploaded.push({ nar, hash: "" });
    },
  };

  async function finalChecks(): Promise<string[]> {
    const problems: string[] = [];
    const k = server.db.kysely;
    const broken = await sql<{ id: number; reason: string }>`
      SELECT o.id, 'nar not valid' AS reason FROM object o JOIN nar n ON n.id = o.nar_id WHERE n.state <> 'V'
      UNION ALL
      SELECT o.id, 'chunk count' FROM object o JOIN nar n ON n.id = o.nar_id
        WHERE n.num_chunks <> (SELECT COUNT(*) FROM chunkref r WHERE r.nar_id = n.id)
      UNION ALL
      SELECT o.id, 'chunk missing or not valid' FROM object o JOIN chunkref r ON r.nar_id = o.nar_id
        LEFT JOIN chunk c ON c.id = r.chunk_id WHERE c.id IS NULL OR c.state <> 'V'`.execute(k);
    for (const r of broken.rows) problems.push(`object ${r.id}: ${r.reason}`);
    // a request the fuzzer gave up on (its timeout) may still be cleaning up on the server: rows
    // must be released soon after, not at the very instant the last response arrived
    const pendingRows = async () =>
      Number(
        (
          await sql<{ n: number | string }>`
      SELECT (SELECT COUNT(*) FROM nar WHERE state = 'P' OR holders_count <> 0) + (SELECT COUNT(*) FROM chunk WHERE state = 'P' OR holders_count <> 0) AS n`.execute(k)
        ).rows[0]?.n ?? 0,
      );
    let pending = await pendingRows();
    for (const deadline = Date.now() + 30_000; pending !== 0 && Date.now() < deadline; pending = await pendingRows()) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (pending !== 0) problems.push(`${pending} NAR or chunk rows still pending or held 30 s after every request finished`);
    if (backend.storage === "local") {
      const leftovers = walk(join(server.dir, "storage")).filter((f) => f.includes(".tmp"));
      if (leftovers.length > 0) problems.push(`temporary files left in the storage: ${leftovers.slice(0, 5).join(", ")}`);
    }
    // the known-good path is served intact
    const info = await server.fetch(`/${KEEP}/${keep.hash}.narinfo`, { token: root });
    if (info.status !== 200) problems.push(`known-good narinfo: ${info.status}`);
    else {
      const parsed = parseNarInfo(await info.text());
      const nar = await server.fetch(`/${KEEP}/${parsed.url}`, { token: root });
      const body = Buffer.from(await nar.arrayBuffer());
      const plain = await decompressWithCli(parsed.compression ?? "none", body);
      if (nar.status !== 200 || !plain.equals(keep.nar)) problems.push(`known-good NAR: ${nar.status}, ${plain.length} bytes, not the uploaded NAR`);
    }
    const health = await server.fetch("/healthz");
    if (health.status !== 200) problems.push(`/healthz: ${health.status}`);
    return problems;
  }

  return { target, server, finalChecks, stop: () => server.stop() };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

function validStorePathHashOf(word: string): string {
  return word.replace(/[^0-9a-df-np-sv-z]/g, "0").padEnd(32, "0").slice(0, 32);
}

function upload(port: number, token: string, cache: string, k: Known, timeoutMs: number): Promise<RawOutcome> {
  const info = JSON.stringify(uploadInfoFor(cache, k.nar, k.hash));
  return sendRaw(port, {
    method: "PUT",
    path: "/_api/v1/upload-path",
    headers: [["Host", "127.0.0.1"], ["Connection", "close"], ["Authorization", `Bearer ${token}`], ["X-Attic-Nar-Info", info], ["Content-Length", String(k.nar.length)]],
    body: k.nar,
  }, timeoutMs);
}

// ---- generation ------------------------------------------------------------------------------

type Route = "cache-config" | "missing" | "upload" | "nix-cache-info" | "narinfo" | "nar" | "attic-cache-info" | "misc";
const ROUTE_METHOD: Record<Route, string> = {
  "cache-config": "GET", missing: "POST", upload: "PUT", "nix-cache-info": "GET", narinfo: "GET", nar: "GET", "attic-cache-info": "GET", misc: "GET",
};

/** A path segment, now and then encoded, double-encoded or with a traversal attempt. */
function segment(rng: Rng, s: string): string {
  switch (rng.int(8)) {
    case 0:
      return encodeSegment(s);
    case 1:
      return encodeSegment(encodeSegment(s));
    case 2:
      return rng.pick(["..%2F", "%2e%2e/", "../", "..%5c", "%2F"]) + s;
    case 3:
      return s.replace(/[^\x21-\x7e]/g, (c) => encodeSegment(c));
    default:
      return /^[\x21-\x7e]*$/.test(s) ? s : encodeSegment(s);
  }
}

function pathFor(rng: Rng, route: Route): string {
  const cache = segment(rng, cacheName(rng, CACHES));
  const hash = segment(rng, storePathHash(rng));
  switch (route) {
    case "cache-config":
      return `/_api/v1/cache-config/${cache}`;
    case "missing":
      return "/_api/v1/get-missing-paths";
    case "upload":
      return "/_api/v1/upload-path";
    case "nix-cache-info":
      return `/${cache}/nix-cache-info`;
    case "narinfo":
      return `/${cache}/${hash}${rng.pick([".narinfo", ".narinfo", ".nar", "", ".narinfo/", ".narinfo?x=1", ".narinfo%00"])}`;
    case "nar":
      return `/${cache}/nar/${hash}${rng.pick([".nar", ".nar", ".nar.zst", "", ".narinfo", ".nar/.."])}`;
    case "attic-cache-info":
      return `/${cache}/attic-cache-info`;
    default:
      return rng.pick([
        "/", "/healthz", "/metrics", "/_api", "/_api/", "/_api/v1", "/_api/v1/", `/_api/v1/${segment(rng, nastyString(rng))}`,
        `/_api/v1/cache-config/`, `/_api/v1/cache-config/${cache}/extra`, `//${cache}`, `/${cache}//nix-cache-info`,
        `/${segment(rng, nastyString(rng))}`, `/${"a/".repeat(rng.range(1, 300))}`, `/_api/v1/upload-path/${cache}`, "*", "/%", "/%zz",
        `/_api/v1/cache-config/${"a".repeat(rng.pick([50, 51, 499, 500, 501, 5000]))}`,
      ]);
  }
}

function jsonBodyFor(rng: Rng, route: Route): Buffer {
  let value: unknown;
  if (route === "missing") {
    const o: Record<string, unknown> = { cache: cacheName(rng, CACHES), store_path_hashes: Array.from({ length: rng.int(5) }, () => storePathHash(rng)) };
    if (rng.chance(0.5)) mutateObject(rng, o, ["cache", "store_path_hashes"]);
    value = o;
  } else if (route === "cache-config") {
    const o: Record<string, unknown> = {
      keypair: rng.pick(["Generate", { Keypair: nastyString(rng) }, "Generate"]),
      is_public: rng.chance(0.5), store_dir: rng.pick(["/nix/store", nastyString(rng)]), priority: rng.pick([41, -1, 2 ** 31, 1.5]),
      upstream_cache_key_names: [], retention_period: rng.pick(["Global", { Period: rng.pick([0, 60, 2 ** 32, -1]) }, null, "x"]),
      max_size: rng.pick([null, 0, 1000, -1, 2 ** 53]),
    };
    if (rng.chance(0.5)) mutateObject(rng, o, Object.keys(o));
    value = o;
  } else value = randomJson(rng);
  let text = JSON.stringify(value) ?? "null";
  if (rng.chance(0.15)) text = mutateText(rng, text);
  if (rng.chance(0.02)) text = `[${"1,".repeat(800_000)}1]`; // over the 2 MiB JSON limit
  return Buffer.from(text);
}

function uploadBodyAndInfo(rng: Rng, uploaded: readonly Known[]): { body: Buffer; info: string; preamble: boolean; nar: Buffer } {
  let nar: Buffer;
  const r = rng.int(10);
  if (r < 2 && uploaded.length > 0) nar = rng.pick(uploaded).nar; // dedup of a NAR the server has
  else if (r < 4) nar = narOf({ type: "regular", executable: false, contents: rng.bytes(rng.range(20_000, 200_000)) }); // chunked
  else nar = narOf(randomTree(rng));
  const info = uploadInfoFor(cacheName(rng, CACHES), nar, validStorePathHash(rng), rng.chance(0.9) ? "fuzz" : nastyString(rng));
  if (rng.chance(0.3)) mutateObject(rng, info, UPLOAD_INFO_FIELDS);
  let body = nar;
  if (rng.chance(0.5)) body = mutateNar(rng, nar); // hash or structure no longer match
  let infoText = JSON.stringify(info);
  if (rng.chance(0.1)) infoText = mutateText(rng, infoText);
  const preamble = rng.chance(0.3);
  if (preamble) body = Buffer.concat([Buffer.from(infoText), body]);
  return { body, info: infoText, preamble, nar };
}

function generate(
  rng: Rng, port: number, tokens: readonly string[], secret: Buffer, uploaded: readonly Known[],
): { req: RawRequest; route: Route; nar?: Buffer } {
  const routes: Route[] = ["cache-config", "missing", "upload", "upload", "upload", "nix-cache-info", "narinfo", "narinfo", "nar", "nar", "attic-cache-info", "misc"];
  const route = rng.pick(routes);
  const method = rng.chance(0.75) ? ROUTE_METHOD[route] : rng.pick(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO", "get"]);
  const headers: [string, string][] = [];
  if (rng.chance(0.97)) headers.push(["Host", rng.chance(0.95) ? `127.0.0.1:${port}` : nastyString(rng).replace(/[\r\n]/g, "")]);
  headers.push(["Connection", "close"]);

  const auth = rng.int(10);
  if (auth < 4) headers.push(["Authorization", `Bearer ${rng.pick(tokens)}`]);
  else if (auth < 5) headers.push(["Authorization", `Basic ${Buffer.from(`u:${rng.pick(tokens)}`).toString("base64")}`]);
  else if (auth < 8) headers.push(["Authorization", `${rng.pick(["Bearer", "Basic", "bearer", "Token"])} ${badToken(rng, secret)}`]);

  let body: Buffer | undefined;
  let nar: Buffer | undefined;
  if (route === "upload" && method === "PUT") {
    const u = uploadBodyAndInfo(rng, uploaded);
    body = u.body;
    nar = u.nar;
    if (u.preamble) headers.push(["X-Attic-Nar-Info-Preamble-Size", rng.chance(0.9) ? String(Buffer.byteLength(u.info)) : nastyString(rng)]);
    else if (rng.chance(0.95)) headers.push(["X-Attic-Nar-Info", rng.chance(0.9) ? u.info : nastyString(rng)]);
    if (rng.chance(0.2)) headers.push(["Content-Type", rng.pick(["application/octet-stream", "application/json", "text/plain", nastyString(rng)])]);
  } else if (method === "POST" || method === "PATCH" || (method !== "GET" && method !== "HEAD" && rng.chance(0.3))) {
    body = jsonBodyFor(rng, route);
    const ct = rng.int(10);
    if (ct < 7) headers.push(["Content-Type", "application/json"]);
    else if (ct < 8) headers.push(["Content-Type", rng.pick(["application/json; charset=utf-8", "application/vnd.x+json", "APPLICATION/JSON"])]);
    else if (ct < 9) headers.push(["Content-Type", nastyString(rng)]);
  } else if (rng.chance(0.1)) body = rng.bytes(rng.size(5000));

  let shortBody = false;
  if (body !== undefined) {
    const cl = rng.int(20);
    if (cl < 15) headers.push(["Content-Length", String(body.length)]);
    else if (cl < 16) headers.push(["Content-Length", String(rng.int(body.length))]); // shorter than the body
    else if (cl < 18) {
      headers.push(["Content-Length", String(body.length + rng.range(1, 100_000))]); // longer, and we hang up
      shortBody = true;
    } else if (cl < 19) {
      headers.push(["Transfer-Encoding", "chunked"]);
      const complete = rng.chance(0.9);
      body = chunked(rng, body, complete);
      shortBody = !complete;
    } else {
      headers.push(["Content-Length", rng.pick(["-1", "abc", "1e3", "18446744073709551616", " 5", "5, 6", "99999"])]);
      shortBody = true; // the server may take the garbage as a length and wait for the rest
    }
  }
  if (rng.chance(0.05)) headers.push([rng.pick(["X-Forwarded-Proto", "X-Attic-Nar-Info", "Range", "Accept-Encoding", "Expect"]), nastyString(rng).replace(/[\r\n]/g, "")]);
  // header values must be latin1 on the wire: anything else becomes raw bytes, as a hostile client sends them
  return { req: { method, path: pathFor(rng, route), headers, ...(body && { body }), shortBody }, route, ...(nar && { nar }) };
}

function chunked(rng: Rng, body: Buffer, complete: boolean): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < body.length; ) {
    const n = Math.min(body.length - pos, rng.range(1, 70_000));
    parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(pos, pos + n), Buffer.from("\r\n"));
    pos += n;
  }
  if (complete) parts.push(Buffer.from("0\r\n\r\n"));
  return Buffer.concat(parts);
}

// ---- checks ----------------------------------------------------------------------------------

function describeOutcome(o: RawOutcome): string {
  if (o.kind !== "response") return `${o.kind} after ${Math.round(o.ms)} ms${"error" in o && o.error ? ` (${o.error})` : ""}`;
  return `${o.status} ${JSON.stringify(o.body.subarray(0, 300).toString("utf8"))}`;
}

function describeRequest(req: RawRequest): string {
  const headers = req.headers.map(([k, v]) => `${k}: ${v.length > 200 ? `${v.slice(0, 200)}…` : v}`).join(" | ");
  return `${req.method} ${req.path.slice(0, 300)} [${headers}] body ${req.body?.length ?? 0} bytes${req.shortBody ? " (cut short)" : ""}`;
}

/**
 * Node's HTTP layer refusing the request before the app sees it: a bare status, no body (a
 * malformed request, headers too large, an `Expect` other than 100-continue).
 */
function fromHttpParser(o: Extract<RawOutcome, { kind: "response" }>): boolean {
  return [400, 408, 413, 414, 417, 431, 505].includes(o.status) && o.body.length === 0 && !o.headers.has("content-type");
}

export function checkOutcome(req: RawRequest, route: Route, o: RawOutcome): void {
  const fail = (what: string): never => {
    throw new Finding(`${what}\n  request: ${describeRequest(req)}\n  answer: ${describeOutcome(o)}`);
  };
  if (o.kind === "timeout") fail("no answer in time");
  // a request we cut short may be dropped without an answer; anything else must be answered
  if (o.kind === "closed") {
    if (!req.shortBody) fail("connection closed without an answer");
    return;
  }
  if (o.kind !== "response") return;
  if (o.status >= 500) fail(`${o.status} with every backend up`);
  if (o.status < 400) {
    if (o.headers.get("content-type") === "text/x-nix-narinfo" && req.method === "GET") {
      try {
        parseNarInfo(o.body.toString("utf8"));
      } catch (e) {
        fail(`served a narinfo that does not parse: ${(e as Error).message}`);
      }
    }
    return;
  }
  if (fromHttpParser(o)) return;
  if (req.method === "HEAD") return; // no body to check
  const text = o.body.toString("utf8");
  const type = o.headers.get("content-type") ?? "";
  if (type.startsWith("application/json")) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      fail("4xx with a JSON content type and a body that is not JSON");
    }
    const e = v as { code?: unknown; error?: unknown; message?: unknown };
    if (typeof e !== "object" || e === null || e.code !== o.status || typeof e.error !== "string" || typeof e.message !== "string" || Object.keys(e).length !== 3) {
      fail("4xx JSON is not Attic's {code, error, message} shape");
    }
    return;
  }
  if (PLAIN_TEXT_REJECTIONS.some((p) => p.status === o.status && p.text.test(text))) return;
  fail(`4xx that is neither Attic's JSON error nor one of upstream's plain-text rejections`);
}
