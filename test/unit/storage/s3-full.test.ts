// S3 answers that mean "no room": the driver turns the AWS SDK's errors for them into a
// StorageFullError (naming the bucket) and leaves every other error as it is. The answers come
// from a loopback server speaking S3's XML errors, so the error objects are the SDK's own.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { after, before, test } from "node:test";
import { S3Storage } from "../../../src/storage/s3.ts";
import { s3FullReason } from "../../../src/storage/s3-full.ts";
import { StorageFullError } from "../../../src/storage/types.ts";
import { storageFull } from "../../../src/server/errors.ts";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let handler: Handler = (_req, res) => res.end();
const seen: string[] = [];
const server = createServer((req, res) => {
  seen.push(`${req.method} ${req.url}`);
  req.resume();
  req.on("end", () => handler(req, res));
});

function s3Error(status: number, code?: string): Handler {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "application/xml" });
    res.end(code === undefined ? "" : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>from the test</Message></Error>`);
  };
}

let storage: S3Storage;
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  storage = new S3Storage(
    { region: "us-east-1", bucket: "bkt", endpoint, credentials: { access_key_id: "id", secret_access_key: "secret" } },
    { partSize: 5 * 1024 * 1024 },
  );
});
after(async () => {
  await storage.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const put = (bytes: number) => {
  const { remoteFile } = storage.remoteFileFor("0f3a2b1c-1d2e-4f5a-8b9c-0d1e2f3a4b5c.chunk");
  return storage.put(remoteFile, Readable.from([Buffer.alloc(bytes, 1)]));
};

for (const [status, code, reason] of [
  [507, "XMinioStorageFull", "XMinioStorageFull"],
  [500, "XMinioStorageFull", "XMinioStorageFull"],
  [400, "XMinioAdminBucketQuotaExceeded", "XMinioAdminBucketQuotaExceeded"],
  [403, "QuotaExceeded", "QuotaExceeded"],
  [507, undefined, "HTTP 507"],
] as const) {
  test(`PutObject answered ${status} ${code ?? "(no body)"}: StorageFullError (${reason}) naming the bucket`, async () => {
    handler = s3Error(status, code);
    seen.length = 0;
    await assert.rejects(put(1000), (err: unknown) => {
      assert.ok(err instanceof StorageFullError, String(err));
      assert.equal(err.storage, "s3:us-east-1/bkt");
      assert.equal(err.reason, reason);
      assert.equal(s3FullReason(err.cause), reason, "the SDK's error is kept as the cause");
      assert.deepEqual(storageFull(err), { storage: "s3:us-east-1/bkt", reason });
      return true;
    });
    // a 507 is not one of the SDK's transient statuses: one request, no retries
    if (status === 507) assert.equal(seen.length, 1, seen.join("\n"));
  });
}

test("a multipart part refused as full: StorageFullError, and the multipart upload is aborted", async () => {
  seen.length = 0;
  handler = (req, res) => {
    if (req.method === "POST" && req.url?.includes("uploads")) {
      res.writeHead(200, { "content-type": "application/xml" });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>`);
    } else if (req.method === "PUT") {
      s3Error(507, "XMinioStorageFull")(req, res);
    } else if (req.method === "DELETE") {
      res.writeHead(204).end();
    } else {
      s3Error(400, "Unexpected")(req, res);
    }
  };
  await assert.rejects(put(12 * 1024 * 1024), (err: unknown) => err instanceof StorageFullError && err.reason === "XMinioStorageFull");
  assert.ok(seen.some((r) => r.startsWith("DELETE ") && r.includes("uploadId=up-1")), seen.join("\n"));
});

test("other S3 errors are not storage full and pass through unchanged", async () => {
  for (const [status, code] of [[403, "AccessDenied"], [404, "NoSuchBucket"], [400, "EntityTooLarge"]] as const) {
    handler = s3Error(status, code);
    await assert.rejects(put(1000), (err: unknown) => {
      assert.ok(!(err instanceof StorageFullError));
      assert.equal((err as Error).name, code);
      assert.equal(s3FullReason(err), null);
      assert.equal(storageFull(err), null);
      return true;
    });
  }
  assert.equal(s3FullReason(new Error("QuotaExceeded")), null, "only SDK errors (with $metadata) are classified");
});
