// An npm registry on loopback that serves only what npm's cache already holds (the cache that the
// checkout's `npm ci` filled): each package's cached packument, cut down to the versions whose
// tarballs are in the cache, with its tarball URLs pointing here. Tests that run npm itself (the
// first-hour test: `npm ci`, `npm install -g` of a packed tarball) install through it, so that no
// step waits on the real registry however slow it is, and no step resolves a version the
// checkout's lockfile did not install. A package or version the cache lacks is a 404, listed in
// `misses`: the test fails at once and says what was missing.
//
// The cache is read as npm's cacache stores it: index-v5/<sha256 of the key> holds JSON lines (the
// last one for a key wins) naming the content's integrity; content-v2/<algo>/<hex digest> holds
// the bytes. Packuments are cached under "make-fetch-happen:request-cache:<registry><name>".
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

interface Packument {
  name: string;
  "dist-tags"?: Record<string, string>;
  versions: Record<string, { dist?: { tarball?: string; integrity?: string } }>;
  [key: string]: unknown;
}

export interface CacheRegistry {
  /** the registry URL, ending in / */
  url: string;
  /** what was asked for and not found in the cache */
  readonly misses: string[];
  close(): Promise<void>;
}

/**
 * Serves the packuments and tarballs in `cacheDir` (npm's `cache` setting: the folder that holds
 * `_cacache`), as cached from `upstream` (npm's `registry` setting when the cache was filled).
 */
export async function startCacheRegistry(cacheDir: string, upstream = "https://registry.npmjs.org/"): Promise<CacheRegistry> {
  const cacache = join(cacheDir, "_cacache");
  const packuments = new Map<string, Packument | null>();
  const misses: string[] = [];
  let base = "";

  const contentPath = (integrity: string): string | null => {
    const m = /^(sha512|sha1)-([A-Za-z0-9+/=]+)/.exec(integrity);
    if (!m) return null;
    const hex = Buffer.from(m[2]!, "base64").toString("hex");
    const file = join(cacache, "content-v2", m[1]!, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
    return existsSync(file) ? file : null;
  };

  /** The newest index entry for `key` that names content still in the cache. */
  const cached = (key: string): string | null => {
    const hash = createHash("sha256").update(key).digest("hex");
    const bucket = join(cacache, "index-v5", hash.slice(0, 2), hash.slice(2, 4), hash.slice(4));
    if (!existsSync(bucket)) return null;
    let found: string | null = null;
    for (const line of readFileSync(bucket, "utf8").split("\n")) {
      const json = line.slice(line.indexOf("\t") + 1);
      if (json === "" || line.indexOf("\t") < 0) continue;
      try {
        const entry = JSON.parse(json) as { key: string; integrity: string | null };
        if (entry.key !== key) continue;
        found = entry.integrity === null ? null : contentPath(entry.integrity);
      } catch {
        // a torn line (a write cut off): npm skips it too
      }
    }
    return found;
  };

  const packument = (name: string): Packument | null => {
    if (packuments.has(name)) return packuments.get(name)!;
    const file = cached(`make-fetch-happen:request-cache:${upstream}${name.replace("/", "%2f")}`);
    let doc: Packument | null = null;
    if (file !== null) {
      doc = JSON.parse(readFileSync(file, "utf8")) as Packument;
      for (const [version, manifest] of Object.entries(doc.versions)) {
        const integrity = manifest.dist?.integrity;
        if (integrity === undefined || contentPath(integrity) === null) {
          delete doc.versions[version];
          continue;
        }
        manifest.dist!.tarball = `${base}${name}/-/${name.split("/").at(-1)}-${version}.tgz`;
      }
      for (const [tag, version] of Object.entries(doc["dist-tags"] ?? {})) if (!(version in doc.versions)) delete doc["dist-tags"]![tag];
      if (Object.keys(doc.versions).length === 0) doc = null;
    }
    packuments.set(name, doc);
    return doc;
  };

  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).slice(1);
    // <name> is a packument, <name>/-/<basename>-<version>.tgz a tarball (names may be @scope/name)
    const [name = "", file] = path.split("/-/");
    const doc = /^(?:@[^/]+\/)?[^/@][^/]*$/.test(name) ? packument(name) : null;
    if (doc !== null && file === undefined) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(doc));
      return;
    }
    const prefix = `${name.split("/").at(-1)}-`;
    const version = file?.startsWith(prefix) && file.endsWith(".tgz") ? file.slice(prefix.length, -".tgz".length) : null;
    const tarball = doc !== null && version !== null ? contentPath(doc.versions[version]?.dist?.integrity ?? "") : null;
    if (tarball !== null) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      createReadStream(tarball).pipe(res);
      return;
    }
    misses.push(`${req.method} /${path}`);
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: `not in the npm cache at ${cacheDir}` }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url: base,
    misses,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
