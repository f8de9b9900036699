// Presigned S3 redirects against a real server and the shared S3 server (both on 127.0.0.1):
// which NAR downloads get a 307 and which are streamed (docs/decisions.md), and
// `storage.public-endpoint`, which changes only the host of the presigned URL.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createCacheViaApi, startServer, type ServerOptions, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar } from "../helpers/nar.ts";

const S3 = { db: "sqlite", storage: "s3" } as const;
// every NAR is one chunk, the only kind that is redirected
const NO_CHUNKING = { threshold: 0, min: 16384, avg: 65536, max: 262144 };

/** A NAR uploaded to `cache` through the API: its download path and bytes (compression none: served as stored). */
async function pushNar(s: TestServer, cache: string, seed: number, size = 100_000): Promise<{ path: string; nar: Buffer }> {
  const fx = narFixture(seededBytes(size, seed));
  const res = await uploadNar(s, fx, { cache, token: s.rootToken() });
  assert.equal(res.status, 200, await res.text());
  return { path: `/${cache}/nar/${fx.storePathHash}.nar`, nar: fx.nar };
}

/** GET without following redirects; `host` replaces 127.0.0.1 in the URL the client asks. */
function get(s: TestServer, path: string, opts: { host?: string; token?: string } = {}): Promise<Response> {
  const base = opts.host ? s.url.replace("127.0.0.1", opts.host) : s.url;
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  return fetch(base + path, { headers, redirect: "manual" });
}

async function streamed(res: Response, nar: Buffer): Promise<void> {
  assert.equal(res.status, 200, `streamed, not redirected (location: ${res.headers.get("location")})`);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(nar));
}

/** `packs`: small NARs go into packs, which are never redirected (docs/decisions.md); default: one object each */
async function serverWith(opts: ServerOptions, packs = false): Promise<TestServer> {
  const storageExtra = `packs = ${packs}\n${opts.storageExtra ?? ""}`;
  const s = await startServer({ backend: S3, chunking: NO_CHUNKING, compression: { type: "none" }, ...opts, storageExtra });
  await createCacheViaApi(s, "pub", { is_public: true });
  await createCacheViaApi(s, "priv");
  return s;
}

describe("presigned redirects: only where no credentials can follow them", () => {
  let s: TestServer;
  before(async () => {
    s = await serverWith({});
  });
  after(async () => s.stop());

  test("a public cache asked without credentials on another host name: 307 to a working presigned URL", async () => {
    const { path, nar } = await pushNar(s, "pub", 1);
    const res = await get(s, path, { host: "localhost" });
    assert.equal(res.status, 307);
    const location = new URL(res.headers.get("location")!);
    assert.equal(location.host, new URL(process.env.ATTIC_TEST_S3_ENDPOINT!).host);
    assert.ok(location.searchParams.has("X-Amz-Signature"));
    const fromBucket = await fetch(location);
    assert.equal(fromBucket.status, 200);
    assert.ok(Buffer.from(await fromBucket.arrayBuffer()).equals(nar));
  });

  test("the bucket on the host name the client asked (another port): streamed", async () => {
    const { path, nar } = await pushNar(s, "pub", 2);
    await streamed(await get(s, path), nar);
  });

  test("any Authorization header: streamed, even for a public cache on another host name", async () => {
    const { path, nar } = await pushNar(s, "pub", 3);
    await streamed(await get(s, path, { host: "localhost", token: s.token({ pub: { r: 1 } }) }), nar);
    const basic = await fetch(s.url.replace("127.0.0.1", "localhost") + path, {
      headers: { authorization: `Basic ${Buffer.from(`:${s.token({ pub: { r: 1 } })}`).toString("base64")}` },
      redirect: "manual",
    });
    await streamed(basic, nar);
  });

  test("a private cache: streamed", async () => {
    const { path, nar } = await pushNar(s, "priv", 4);
    await streamed(await get(s, path, { host: "localhost", token: s.token({ priv: { r: 1 } }) }), nar);
  });
});

describe("storage.public-endpoint", () => {
  const s3 = () => new URL(process.env.ATTIC_TEST_S3_ENDPOINT!);

  test("presigned URLs name the public endpoint, and the bucket answers them there", async () => {
    const publicEndpoint = `http://localhost:${s3().port}`;
    const s = await serverWith({ storageExtra: `public-endpoint = ${JSON.stringify(publicEndpoint)}` });
    try {
      assert.equal(s.config.storage.type === "s3" && s.config.storage.publicEndpoint, publicEndpoint);
      const { path, nar } = await pushNar(s, "pub", 5);
      // the client asks 127.0.0.1, the URL names localhost: another host name, so a redirect
      const res = await get(s, path);
      assert.equal(res.status, 307);
      const location = new URL(res.headers.get("location")!);
      assert.equal(location.host, `localhost:${s3().port}`);
      const fromBucket = await fetch(location);
      assert.equal(fromBucket.status, 200, await fromBucket.clone().text());
      assert.ok(Buffer.from(await fromBucket.arrayBuffer()).equals(nar));
    } finally {
      await s.stop();
    }
  });

  test("atticd itself reads and writes through storage.endpoint, never the public one", async () => {
    // nothing listens at the public endpoint: uploads and streamed downloads must not need it
    const s = await serverWith({ storageExtra: `public-endpoint = "http://s3.invalid:9"` });
    try {
      const { path, nar } = await pushNar(s, "pub", 6);
      const res = await get(s, path);
      assert.equal(res.status, 307);
      assert.equal(new URL(res.headers.get("location")!).host, "s3.invalid:9");
      await streamed(await get(s, path, { token: s.token({ pub: { r: 1 } }) }), nar);
      const priv = await pushNar(s, "priv", 7);
      await streamed(await get(s, priv.path, { token: s.token({ priv: { r: 1 } }) }), priv.nar);
    } finally {
      await s.stop();
    }
  });
});

describe("presigned redirects with packs", () => {
  test("a NAR inside a pack is streamed even where a redirect would apply; a whole object over 4 MiB is still redirected", async () => {
    const s = await serverWith({}, true);
    try {
      const small = await pushNar(s, "pub", 11);
      await streamed(await get(s, small.path, { host: "localhost" }), small.nar);
      const large = await pushNar(s, "pub", 12, 5 * 1024 * 1024);
      const res = await get(s, large.path, { host: "localhost" });
      assert.equal(res.status, 307);
      const fromBucket = await fetch(new URL(res.headers.get("location")!));
      assert.ok(Buffer.from(await fromBucket.arrayBuffer()).equals(large.nar));
    } finally {
      await s.stop();
    }
  });
});
