// The upload request (node:http + pipeline) against a real listening server: the body is pulled
// only as fast as the server reads, an early answer ends the body, a failing body and an abort
// reject with their own errors, and the upload's errors read as the JSON calls' do.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { ApiClient } from "../../../src/client/api.ts";
import { NetworkError, NixError } from "../../../src/client/errors.ts";
import { uploadInfoOf } from "../../../src/client/push/upload.ts";
import { BodyError, streamRequest } from "../../../src/client/stream-request.ts";
import { freePort } from "../../helpers/ports.ts";
import { waitFor } from "../../helpers/wait.ts";
import { fakePath } from "./fakes.ts";

const MiB = 2 ** 20;

let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
const server = createServer((req, res) => handler(req, res));
server.listen(0, "127.0.0.1");
await once(server, "listening");
const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/_api/v1/upload-path`);
after(() => {
  server.closeAllConnections();
  server.close();
});

/** 1 MiB pieces, `total` of them (endless when Infinity); counts what was pulled and whether it was closed. */
function source(total: number): { body: AsyncIterable<Uint8Array>; pulled(): number; closed(): boolean } {
  let pulled = 0;
  let closed = false;
  const piece = Buffer.alloc(MiB, 1);
  async function* body(): AsyncIterable<Uint8Array> {
    try {
      for (let i = 0; i < total; i++) {
        pulled += piece.length;
        yield piece;
      }
    } finally {
      closed = true;
    }
  }
  return { body: body(), pulled: () => pulled, closed: () => closed };
}

async function drain(req: IncomingMessage): Promise<number> {
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) n += chunk.length;
  return n;
}

test("the body is pulled only as fast as the server reads it", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrived = false;
  handler = (req, res) => {
    arrived = true;
    void released.then(async () => res.end(JSON.stringify({ received: await drain(req) })));
  };
  const src = source(96);
  const sent = streamRequest(url, { method: "PUT", headers: {}, body: src.body });
  // the request is at the server and the pulling has stopped (the same count over 10 polls, 250 ms)
  let last = -1;
  let still = 0;
  await waitFor(() => {
    still = arrived && src.pulled() > 0 && src.pulled() === last ? still + 1 : 0;
    last = src.pulled();
    return still >= 10;
  }, { what: "the client to stop pulling the body", intervalMs: 25 });
  // socket buffers and stream high-water marks, nowhere near the 96 MiB offered
  assert.ok(src.pulled() < 32 * MiB, `${src.pulled() / MiB} MiB pulled while the server read nothing`);
  release();
  const reply = await sent;
  assert.equal(reply.status, 200);
  assert.deepEqual(JSON.parse(reply.text), { received: 96 * MiB });
});

test("an answer before the end of the body resolves, and the body is closed", async () => {
  handler = (_req, res) => {
    res.writeHead(403, { "content-type": "application/json" });
    res.end('{"code":403,"error":"AccessError","message":"no"}');
  };
  const src = source(Infinity);
  const reply = await streamRequest(url, { method: "PUT", headers: {}, body: src.body });
  assert.equal(reply.status, 403);
  assert.equal(reply.text, '{"code":403,"error":"AccessError","message":"no"}');
  await waitFor(() => src.closed(), { what: "the body to be closed", timeoutMs: 10_000 });
});

test("a failing body rejects with its own error; through ApiClient, a NixError stays one", async () => {
  handler = (req, res) => void drain(req).then(() => res.end("{}"), () => undefined);
  async function* failing(): AsyncIterable<Uint8Array> {
    yield Buffer.alloc(MiB);
    throw new NixError("nix-store --dump /nix/store/x failed: boom");
  }
  await assert.rejects(streamRequest(url, { method: "PUT", headers: {}, body: failing() }), (err: unknown) => {
    assert.ok(err instanceof BodyError);
    assert.ok(err.cause instanceof NixError);
    return true;
  });
  const api = new ApiClient(url.origin, null);
  await assert.rejects(api.uploadPath(uploadInfoOf(fakePath("a", "x"), "c"), failing()), (err: unknown) => err instanceof NixError && err.message.endsWith("boom"));
});

test("aborting rejects with the signal's reason and closes the body", async () => {
  handler = () => undefined; // never reads, never answers
  const src = source(Infinity);
  const abort = new AbortController();
  const sent = streamRequest(url, { method: "PUT", headers: {}, body: src.body, signal: abort.signal });
  await waitFor(() => src.pulled() > 0, { what: "the body to be read" });
  abort.abort(new DOMException("Interrupted", "AbortError"));
  await assert.rejects(sent, { name: "AbortError", message: "Interrupted" });
  await waitFor(() => src.closed(), { what: "the body to be closed", timeoutMs: 10_000 });
});

test("upload errors read as the JSON calls' do: refused connections, server errors", async () => {
  const info = uploadInfoOf(fakePath("a", "x"), "c");
  const closed = await freePort();
  await assert.rejects(new ApiClient(`http://127.0.0.1:${closed}`, null).uploadPath(info, source(1).body), (err: unknown) => {
    assert.ok(err instanceof NetworkError);
    assert.equal(err.message, `Failed to send the request to http://127.0.0.1:${closed}/_api/v1/upload-path: connect ECONNREFUSED 127.0.0.1:${closed}`);
    return true;
  });
  handler = (req, res) =>
    void drain(req).then(() => {
      res.writeHead(502);
      res.end("bad gateway");
    });
  await assert.rejects(new ApiClient(url.origin, null).uploadPath(info, source(2).body), (err: unknown) => {
    assert.equal((err as Error).message, "HTTP 502 Bad Gateway: bad gateway");
    assert.equal((err as { transient?: boolean }).transient, true);
    return true;
  });
  // a connection cut mid-body is a network error (retried by the pusher)
  handler = (req) => req.once("data", () => req.socket.destroy());
  await assert.rejects(new ApiClient(url.origin, null).uploadPath(info, source(64).body), NetworkError);
});
