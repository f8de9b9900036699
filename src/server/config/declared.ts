// `[[caches]]` and `[bootstrap]` (ours, issue 18): what atticd declares at start (bootstrap.ts).
import { isValidCacheName } from "../../api/v1.ts";
import type { ConfigReader } from "./reader.ts";
import { isTable, readEntry } from "./table-arrays.ts";
import type { Config, DeclaredCache } from "./types.ts";

export function readDeclared(r: ConfigReader): Config["declared"] {
  const caches: DeclaredCache[] = [];
  const raw = r.raw.get("caches");
  if (raw !== undefined && (!Array.isArray(raw) || !raw.every(isTable))) r.problem("caches", "expected an array of tables ([[caches]])");
  else if (raw !== undefined) {
    raw.forEach((body, i) => {
      const where = `caches[${i}]`;
      const v = readEntry(r, "caches", where, body, ["upstreams"]);
      const upstreams = readUpstreams(r, where, body.upstreams);
      const name = v.get("name") as string | undefined;
      if (name === undefined) return;
      if (!isValidCacheName(name)) return r.problem(`${where}.name`, `invalid cache name "${name}"`);
      if (caches.some((c) => c.name === name)) return r.problem(`${where}.name`, `the cache "${name}" is declared twice`);
      caches.push({
        name,
        isPublic: v.get("public") as boolean | undefined,
        priority: v.get("priority") as number | undefined,
        storeDir: v.get("store-dir") as string | undefined,
        upstreamCacheKeyNames: v.get("upstream-cache-key-names") as readonly string[] | undefined,
        retentionPeriod: v.get("retention-period") as number | undefined,
        maxSize: v.get("max-size") as number | undefined,
        keypairFile: v.get("keypair-file") as string | undefined,
        ...(upstreams && { upstreams }),
      });
    });
  }
  const revokeSubjects = r.read<readonly string[]>("bootstrap.revoke-subjects") ?? [];
  const pruneCaches = r.read<boolean>("bootstrap.prune-caches") ?? false;
  return { caches, revokeSubjects, pruneCaches };
}

/** `[[caches.upstreams]]` of one cache: undefined when not declared. */
function readUpstreams(r: ConfigReader, where: string, raw: unknown): DeclaredCache["upstreams"] {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw) || !raw.every(isTable)) {
    r.problem(`${where}.upstreams`, "expected an array of tables ([[caches.upstreams]])");
    return undefined;
  }
  const list: { url: string; keys: readonly string[] }[] = [];
  raw.forEach((body, j) => {
    const v = readEntry(r, "caches.upstreams", `${where}.upstreams[${j}]`, body, []);
    const url = v.get("url") as string | undefined;
    const keys = v.get("keys") as readonly string[] | undefined;
    if (url !== undefined && keys !== undefined) list.push({ url, keys });
  });
  return list;
}
