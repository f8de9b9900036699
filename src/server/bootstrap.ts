// Declarative bootstrap (ours, issue 18): the `[[caches]]` and `[bootstrap]` of server.toml,
// applied at start. Idempotent: a cache is created when missing and only the declared keys that
// differ are set; a declared subject revocation is added once. Returns one line per change, for
// the log. Nothing undeclared is touched unless `prune-caches` says so.
import { readFile } from "node:fs/promises";
import type { Db } from "../db/connect.ts";
import { createCache, getCacheByName, hardDeleteCache, listCaches, softDeleteCache, updateCache, type CachePatch } from "../db/queries/caches.ts";
import { hasSubjectRevocation, insertRevocation } from "../db/queries/revocations.ts";
import { SigningKeypair } from "../nix/signing.ts";
import type { Config, DeclaredCache } from "./config/types.ts";
import { listUpstreams, setUpstreams } from "../db/queries/upstreams.ts";
import { checkUpstreams } from "./pull-through/allowlist.ts";
import { ServerError } from "./errors.ts";

/** A declaration that cannot be applied; atticd refuses to start with it. */
export class BootstrapError extends Error {
  readonly userFacing = true;
  override name = "BootstrapError";
}

async function keypairOf(cache: DeclaredCache): Promise<SigningKeypair | null> {
  if (cache.keypairFile === undefined) return null;
  let text: string;
  try {
    text = await readFile(cache.keypairFile, "utf8");
  } catch (error) {
    throw new BootstrapError(`caches "${cache.name}": cannot read keypair-file ${cache.keypairFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return SigningKeypair.parse(text.trim());
  } catch (error) {
    // the message says what is wrong with the key, never the key itself
    throw new BootstrapError(`caches "${cache.name}": keypair-file ${cache.keypairFile} is not a Nix secret key: ${(error as Error).message}`);
  }
}

/** The declared upstreams, checked as the cache-config API checks them. */
function upstreamsOf(cache: DeclaredCache, allowed: readonly string[]): ReturnType<typeof checkUpstreams> | undefined {
  if (cache.upstreams === undefined) return undefined;
  try {
    return checkUpstreams(cache.upstreams, allowed);
  } catch (error) {
    if (error instanceof ServerError) throw new BootstrapError(`caches "${cache.name}": ${error.message}`);
    throw error;
  }
}

/** Set the declared upstreams when they differ; a line for the log, or null. */
async function applyUpstreams(db: Db, cacheId: number, name: string, want: ReturnType<typeof checkUpstreams> | undefined): Promise<string | null> {
  if (want === undefined) return null;
  const have = await listUpstreams(db, cacheId);
  if (JSON.stringify(have) === JSON.stringify(want)) return null;
  await setUpstreams(db, cacheId, want);
  return `configured cache "${name}": upstreams = ${want.map((u) => u.url).join(", ") || "none"}`;
}

export async function applyDeclarations(db: Db, config: Pick<Config, "declared" | "softDeleteCaches"> & { pullThrough?: Pick<Config["pullThrough"], "allowedUpstreams"> }): Promise<string[]> {
  const { declared } = config;
  const changes: string[] = [];
  for (const want of declared.caches) {
    const keypair = await keypairOf(want);
    const upstreams = upstreamsOf(want, config.pullThrough?.allowedUpstreams ?? []);
    const existing = await getCacheByName(db, want.name, { includeDeleted: true });
    if (existing?.deleted_at) throw new BootstrapError(`caches "${want.name}": the name belongs to a soft-deleted cache; free it with atticadm purge-cache ${want.name}`);
    if (!existing) {
      const created = await createCache(db, {
        name: want.name,
        keypair: (keypair ?? SigningKeypair.generate(want.name)).toString(),
        is_public: want.isPublic ?? false,
        store_dir: want.storeDir ?? "/nix/store",
        priority: want.priority ?? 41,
        upstream_cache_key_names: JSON.stringify(want.upstreamCacheKeyNames ?? ["cache.nixos.org-1"]),
        retention_period: want.retentionPeriod ?? null,
        max_size: want.maxSize ?? null,
      });
      // another replica starting at the same time created it first: compare with its row below
      if (created) {
        changes.push(`created cache "${want.name}"`);
        const row = await getCacheByName(db, want.name);
        const line = row ? await applyUpstreams(db, row.id, want.name, upstreams) : null;
        if (line) changes.push(line);
        continue;
      }
    }
    const row = existing ?? (await getCacheByName(db, want.name));
    if (!row) continue;
    const upstreamLine = await applyUpstreams(db, row.id, want.name, upstreams);
    if (upstreamLine) changes.push(upstreamLine);
    const patch: CachePatch = {};
    const set: string[] = [];
    const change = <K extends keyof CachePatch>(key: K, value: CachePatch[K], label: string): void => {
      patch[key] = value;
      set.push(label);
    };
    if (want.isPublic !== undefined && want.isPublic !== row.is_public) change("is_public", want.isPublic, `public = ${want.isPublic}`);
    if (want.priority !== undefined && want.priority !== row.priority) change("priority", want.priority, `priority = ${want.priority}`);
    if (want.storeDir !== undefined && want.storeDir !== row.store_dir) change("store_dir", want.storeDir, `store-dir = ${JSON.stringify(want.storeDir)}`);
    const upstream = want.upstreamCacheKeyNames === undefined ? undefined : JSON.stringify(want.upstreamCacheKeyNames);
    if (upstream !== undefined && upstream !== row.upstream_cache_key_names) change("upstream_cache_key_names", upstream, `upstream-cache-key-names = ${upstream}`);
    if (want.retentionPeriod !== undefined && want.retentionPeriod !== row.retention_period) change("retention_period", want.retentionPeriod, `retention-period = ${want.retentionPeriod} s`);
    if (want.maxSize !== undefined && want.maxSize !== row.max_size) change("max_size", want.maxSize, `max-size = ${want.maxSize}`);
    if (keypair && keypair.toString() !== row.keypair) change("keypair", keypair.toString(), "keypair from keypair-file");
    if (set.length > 0) {
      await updateCache(db, row.id, patch);
      changes.push(`configured cache "${want.name}": ${set.join(", ")}`);
    }
  }
  if (declared.pruneCaches) {
    const names = new Set(declared.caches.map((c) => c.name));
    for (const cache of await listCaches(db)) {
      if (names.has(cache.name)) continue;
      const gone = config.softDeleteCaches ? await softDeleteCache(db, cache.id) : await hardDeleteCache(db, cache.id);
      if (gone) changes.push(`destroyed undeclared cache "${cache.name}" (bootstrap.prune-caches)`);
    }
  }
  for (const sub of declared.revokeSubjects) {
    if (await hasSubjectRevocation(db, sub)) continue;
    await insertRevocation(db, { sub, issuedBefore: new Date(), reason: "declared in server.toml (bootstrap.revoke-subjects)" });
    changes.push(`revoked the tokens of subject "${sub}"`);
  }
  return changes;
}
